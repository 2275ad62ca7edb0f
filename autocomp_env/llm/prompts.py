"""Autocomp's two-phase prompts, written for our simulators: planning (pick one optimization) and
implementation (rewrite the code for the plan), plus repair and edit variants.

Every random choice (menu dropout, which feedback lines appear, the instruction variant) is drawn from the
numpy Generator passed in, so a seeded run builds the same prompts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from autocomp_env import targets
from autocomp_env.core import Feedback, Kernel, Plan

Messages = list[dict[str, str]]

VARIANTS = ("pick", "invent", "different", "forced")


@dataclass(frozen=True)
class PromptOptions:
    """Prompt knobs, with Autocomp's defaults (research/autocomp.md §1.2, §1.5)."""

    menu_keep: float = 0.25  # probability of keeping each applicable menu item
    score_feedback: float = 1.0  # probability of showing the parent's latency
    util_feedback: float = 0.0  # ... its utilization
    hw_feedback: float = 0.0  # ... its hardware counters
    instruction_variants: bool = False  # 10% invent-new / 10% think-different / 80% pick-one
    include_history: bool = False  # show the plans (and latencies) from the root to the parent
    phases: int = 8  # N in the "phase i of N" reminder
    use_edits: bool = False  # ask for JSON edits instead of a full rewrite
    include_isa: bool = True  # planning prompts: the target's ISA/architecture summary (off for small-context models)
    expand_menu_actions: bool = True  # a bare menu item given to implement() is first planned (forced option)
    max_error_line: int = 400  # repair prompts: characters kept per error-output line
    max_error_chars: int = 6000  # ... and in all

    def __post_init__(self) -> None:
        for name in ("menu_keep", "score_feedback", "util_feedback", "hw_feedback"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"PromptOptions.{name} must be a probability in [0, 1], got {v}")
        if self.phases < 1:
            raise ValueError("PromptOptions.phases must be >= 1")

    @property
    def stochastic(self) -> bool:
        """True when two prompts for the same parent can differ (then each plan sample gets its own prompt)."""
        probs = (self.score_feedback, self.util_feedback, self.hw_feedback)
        return self.menu_keep < 1.0 or self.instruction_variants or any(0.0 < p < 1.0 for p in probs)


def drop_menu(indices: list[int], keep: float, rng: np.random.Generator) -> list[int]:
    """Keep each index independently with probability `keep` (Autocomp's menu dropout; may return [])."""
    if keep >= 1.0:
        return list(indices)
    draws = rng.random(len(indices))
    return [i for i, u in zip(indices, draws, strict=True) if u < keep]


def _fmt(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() and abs(x) >= 1 else f"{x:.6g}"


@dataclass(frozen=True)
class _Texts:
    """The target's prompt texts for one kernel (`Target.prompts`, `Target.lang`)."""

    isa: str
    signature: str
    rules: tuple[str, ...]
    lang: str
    role: str


def _texts(kernel: Kernel) -> _Texts:
    t = targets.target(kernel.target)
    p = t.prompts
    return _Texts(p.isa(kernel), p.signature(kernel), tuple(p.rules), t.lang, p.role)


def _header(kernel: Kernel, t: _Texts) -> str:
    return f"{t.isa}\n# Kernel\nKernel: {kernel.name}\n{t.signature}\n"


def _fence(code: str, lang: str) -> str:
    return f"```{lang}\n{code.rstrip()}\n```"


_MARKER_RULE = "Leave out the `autocomp-schedule:` comment in the code you write: it describes the old code, not yours."


def _rules(items: tuple[str, ...] | list[str], code: str = "") -> str:
    items = list(items)
    if "autocomp-schedule:" in code:  # our generated code carries its schedule; a rewrite makes it stale
        items.insert(-1, _MARKER_RULE)
    return "# Rules\n" + "\n".join(f"{n}. {r}" for n, r in enumerate(items, 1))


def _hw_lines(counters: dict[str, Any], limit: int = 48) -> list[str]:
    """Numeric counters as "- name: value" lines; nested dicts one level deep (e.g. instructions.tensor)."""
    flat: dict[str, Any] = {}
    for key, v in counters.items():
        if isinstance(v, dict):
            flat.update({f"{key}.{k}": x for k, x in v.items()})
        else:
            flat[key] = v
    lines = []
    for key in sorted(flat):
        v = flat[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            continue
        lines.append(f"- {key}: {_fmt(v)}")
    return lines[:limit]


def _parent_section(
    kernel: Kernel, code: str, fb: Feedback, t: _Texts, o: PromptOptions, rng: np.random.Generator
) -> str:
    out = ["# Current code"]
    if o.include_history and fb.history:
        out.append("Optimizations applied so far, from the starting code:")
        for n, (plan, lat) in enumerate(fb.history, 1):
            lat_s = f" -> {_fmt(lat)} {fb.unit}" if lat is not None else ""
            out.append(f"{n}. {plan.strip()}{lat_s}")
    # One draw per line type, always in the same order, so the rng stream does not depend on the feedback.
    show_score, show_util, show_hw = rng.random(3) < (o.score_feedback, o.util_feedback, o.hw_feedback)
    if show_score and fb.latency is not None:
        out.append(f"The latency of this code is {_fmt(fb.latency)} {fb.unit or kernel.unit}.")
    if show_util and fb.utilization is not None:
        out.append(f"Its utilization of the compute array is {100 * fb.utilization:.1f}% of peak.")
    if show_hw and fb.counters:
        hw = _hw_lines(fb.counters)
        if hw:
            out.append("Hardware feedback from the simulator:\n" + "\n".join(hw))
    out.append(_fence(code, t.lang))
    return "\n".join(out)


def _instruction(variant: str, t: _Texts, forced: int | None = None) -> str:
    if variant == "forced":
        return (
            f"You are {t.role}. Explain how to apply option {forced} from the menu above to the current code. "
            f"Start your answer with 'Option {forced}:'."
        )
    if variant == "invent":
        return (
            f"You are {t.role}. Invent one new optimization, inspired by the menu above but not in it, and plan how "
            "to apply it to the current code. Start your answer with 'Option new:'."
        )
    if variant == "different":
        return (
            f"You are {t.role}. Think of one optimization that is different from everything in the menu above and "
            "plan how to apply it to the current code. Start your answer with 'Option new:'."
        )
    return (
        f"You are {t.role}. Pick exactly one optimization from the menu above and plan how to apply it to the "
        "current code. Start your answer with 'Option N:' where N is the number of the option you picked."
    )


def planning_messages(
    kernel: Kernel,
    code: str,
    feedback: Feedback,
    menu: tuple[str, ...],
    mask: np.ndarray | None,
    rng: np.random.Generator,
    opts: PromptOptions = PromptOptions(),
    forced: int | None = None,
    answer: str = "plan",
) -> tuple[Messages, list[int], str]:
    """The planning prompt, the menu indices it shows (after dropout) and the instruction variant.

    Menu numbers in the prompt are the item's index + 1 in the full menu, so an answer maps back to the
    action. If dropout leaves nothing, one applicable item is kept so the menu is never empty. `forced` (a
    menu index) shows only that item and asks how to apply it (Autocomp's forced option; no dropout).
    `answer="code"` is Autocomp's `skip_planning` form: the same prompt, but the model names its choice in one
    line and then writes the complete new code (one call instead of plan + implementation).
    """
    if answer not in ("plan", "code"):
        raise ValueError(f"answer must be 'plan' or 'code', got {answer!r}")
    t = _texts(kernel)
    applicable = [i for i in range(len(menu)) if mask is None or bool(mask[i])] or list(range(len(menu)))
    if forced is not None:
        if not 0 <= forced < len(menu):
            raise ValueError(f"forced menu index {forced} is out of range [0, {len(menu)})")
        shown, applicable = [forced], [forced]
    else:
        shown = drop_menu(applicable, opts.menu_keep, rng)
    if not shown and applicable:
        shown = [applicable[int(rng.integers(len(applicable)))]]
    variant = "forced" if forced is not None else "pick"
    if opts.instruction_variants and forced is None:
        u = rng.random()
        variant = "invent" if u < 0.1 else "different" if u < 0.2 else "pick"
    parent = _parent_section(kernel, code, feedback, t, opts, rng)
    items = "\n".join(f"{i + 1}. {menu[i]}" for i in shown)
    step = len(feedback.history) + 1
    if answer == "plan":
        task = (
            " Make the plan specific to this code: name the loops, tile sizes, buffers and addresses it changes and "
            "say why it will be faster. Write a plan, not the full code."
        )
        rules = _rules(list(t.rules) + ["Limit the plan to the one optimization you chose."])
    else:
        task = (
            " After that first line, say in one or two sentences what you change and why it will be faster, then "
            "write the complete new code that applies it."
        )
        last = f"Return the complete new code in one ```{t.lang} fenced block."
        rules = _rules(list(t.rules) + ["Apply only the one optimization you chose.", last], code)
    header = _header(kernel, t) if opts.include_isa else f"# Kernel\nKernel: {kernel.name}\n{t.signature}\n"
    body = "\n\n".join(
        [
            header,
            parent,
            "# Optimization menu\nLook for inefficiencies in the current code. These optimizations may help:\n"
            f"<optimizations>\n{items}\n</optimizations>",
            "# Task\n" + _instruction(variant, t, None if forced is None else forced + 1) + task,
            rules,
            f"This is phase {step} of {max(opts.phases, step)} of the optimization.",
        ]
    )
    system = f"You are {t.role}. " + (
        "You write short, concrete optimization plans." if answer == "plan" else "You write correct, fast code."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": body}], shown, variant


_OPTION = re.compile(r"^\W*option\s*(\d+|new)\b\s*[:.)-]?\s*", re.I)


def parse_plan(text: str, shown: list[int], max_chars: int = 6000) -> Plan | None:
    """A Plan from a planning answer, or None for an empty one. `menu_index` is set when the answer names an
    option that was shown."""
    text = text.strip()
    if not text:
        return None
    m = _OPTION.match(text)
    index = None
    if m and m.group(1).isdigit() and int(m.group(1)) - 1 in shown:
        index = int(m.group(1)) - 1
    return Plan(text=text[:max_chars], menu_index=index)


def _edit_rule(lang: str) -> str:
    return (
        'Answer with one JSON object only: {"plan": "<one sentence>", "edits": [{"old_str": "...", "new_str": "..."}]}. '
        "Each old_str is copied exactly from the current code and occurs there once; edits apply in order."
    )


def implementation_messages(
    kernel: Kernel, code: str, plan: Plan, feedback: Feedback, opts: PromptOptions = PromptOptions()
) -> Messages:
    """The implementation prompt: target, parent code, the plan, the rules, and the answer format."""
    t = _texts(kernel)
    lat = (
        f"\nThe latency of this code is {_fmt(feedback.latency)} {feedback.unit or kernel.unit}."
        if feedback.latency is not None
        else ""
    )
    last = _edit_rule(t.lang) if opts.use_edits else f"Return the complete new code in one ```{t.lang} fenced block."
    body = "\n\n".join(
        [
            _header(kernel, t),
            f"# Current code{lat}\n{_fence(code, t.lang)}",
            f"# Plan\nYou are {t.role}. Rewrite the current code according to this plan:\n<plan>\n{plan.text.strip()}\n</plan>",
            _rules(list(t.rules) + [last], code),
        ]
    )
    system = f"You are {t.role}." + (" You reply with JSON only." if opts.use_edits else "")
    return [{"role": "system", "content": system}, {"role": "user", "content": body}]


def _clip_error(error_text: str, opts: PromptOptions) -> str:
    lines = [
        ln if len(ln) <= opts.max_error_line else ln[: opts.max_error_line] + " ..." for ln in error_text.splitlines()
    ]
    text = "\n".join(lines)
    return text if len(text) <= opts.max_error_chars else text[: opts.max_error_chars] + "\n... (truncated)"


def repair_messages(
    kernel: Kernel, code: str, plan: Plan, error_text: str, opts: PromptOptions = PromptOptions()
) -> Messages:
    """One repair attempt: the failed candidate, its error output, the plan it was implementing."""
    t = _texts(kernel)
    body = "\n\n".join(
        [
            _header(kernel, t),
            f"# Failed code\nThis code was written to implement the plan below, but it failed.\n{_fence(code, t.lang)}",
            f"<plan>\n{plan.text.strip()}\n</plan>",
            f"# Error output\n<error>\n{_clip_error(error_text, opts)}\n</error>",
            f"# Task\nYou are {t.role}. Fix the code so that it is correct, keeping the optimization of the plan.",
            _rules(list(t.rules) + [f"Return the complete fixed code in one ```{t.lang} fenced block."], code),
        ]
    )
    return [{"role": "system", "content": f"You are {t.role}."}, {"role": "user", "content": body}]
