"""Getting code out of a model's answer: fenced blocks, brace/indent matching, and structured edits.

Everything here returns None (or an error string) instead of guessing: a reply without recognizable code is a
failed sample, never code.
"""

from __future__ import annotations

import json
import re
from typing import Any

_LANGS = {"c": {"c", "cpp", "c++", "cc", "h"}, "python": {"python", "py", "python3"}}
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+#.-]*)\s*$")


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """All fenced blocks as (language tag lowercased, body). A final unclosed fence runs to the end of the
    text (answers cut off by max_tokens)."""
    blocks: list[tuple[str, str]] = []
    lang, body, fence = None, [], ""
    for line in text.splitlines():
        m = _FENCE.match(line)
        if fence and m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2):
            blocks.append((lang or "", "\n".join(body)))
            lang, body, fence = None, [], ""
        elif fence:
            body.append(line)
        elif m:
            fence, lang, body = m.group(1), m.group(2).lower(), []
    if fence:
        blocks.append((lang or "", "\n".join(body)))
    return blocks


def _brace_function(text: str, start: int) -> str | None:
    open_at = text.find("{", start)
    if open_at < 0:
        return None
    depth, i, n = 0, open_at, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":  # skip string and char literals
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j
        elif text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            i = text.find("*/", i + 2)
            i = n if i < 0 else i + 1
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
        i += 1
    return None


def _c_function(text: str) -> str | None:
    m = re.search(r"\bvoid\s+solution\s*\(", text)
    return _brace_function(text, m.start()) if m else None


def _python_function(text: str) -> str | None:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"\s*@nki\.jit\b", line)), None)
    if start is None:
        return None
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    seen_def = False
    while end < len(lines):
        line = lines[end]
        stripped = line.strip()
        cur = len(line) - len(line.lstrip())
        if stripped.startswith("def ") and cur == indent:
            seen_def = True
        elif stripped and cur <= indent and seen_def and not stripped.startswith((")", "@")):
            break
        end += 1
    body = "\n".join(lines[start:end]).rstrip()
    return body if seen_def else None


def _has_solution(code: str, lang: str) -> bool:
    if lang == "c":
        return re.search(r"\bsolution\s*\(", code) is not None
    return re.search(r"@nki\.jit", code) is not None or re.search(r"\bdef\s+\w+\s*\(", code) is not None


def extract_code(text: str, lang: str) -> str | None:
    """The code in a model answer, or None.

    Order: the last fenced block tagged with `lang` (or untagged) that holds the solution (a `solution(`
    call/definition in C, a function in Python); else, anywhere in the text, the `void solution` function by brace matching (C) or the `@nki.jit` function
    by indentation (Python).
    """
    if lang not in _LANGS:
        raise ValueError(f"unknown code language {lang!r}")
    blocks = [body for tag, body in fenced_blocks(text) if tag in _LANGS[lang] or tag == ""]
    blocks = [b for b in blocks if b.strip()]
    for body in reversed(blocks):
        if _has_solution(body, lang):
            return body.strip("\n") + "\n"
    found = _c_function(text) if lang == "c" else _python_function(text)
    return found.strip("\n") + "\n" if found else None


# --- structured edits ----------------------------------------------------------------------------------------


def parse_edits(text: str) -> tuple[str, list[dict[str, str]]] | None:
    """{"plan": str, "edits": [{"old_str", "new_str"}]} from an answer (bare JSON or in a fence), or None."""
    candidates = [body for _, body in reversed(fenced_blocks(text))] + [text]
    i, j = text.find("{"), text.rfind("}")
    if 0 <= i < j:
        candidates.append(text[i : j + 1])
    for cand in candidates:
        try:
            obj: Any = json.loads(cand)
        except (json.JSONDecodeError, ValueError):
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("edits"), list):
            continue
        edits = obj["edits"]
        if all(
            isinstance(e, dict) and isinstance(e.get("old_str"), str) and isinstance(e.get("new_str"), str)
            for e in edits
        ):
            plan = obj.get("plan") if isinstance(obj.get("plan"), str) else ""
            return plan, [{"old_str": e["old_str"], "new_str": e["new_str"]} for e in edits]
    return None


def _norm(line: str) -> str:
    return " ".join(line.split())


def apply_edit(code: str, old: str, new: str) -> tuple[str | None, str]:
    """Apply one edit: an exact unique match first, then a unique match of whole lines with whitespace
    normalized. Returns (new code, "") or (None, reason)."""
    if not old.strip():
        return None, "edit has an empty old_str"
    count = code.count(old)
    if count == 1:
        return code.replace(old, new, 1), ""
    if count > 1:
        return None, f"old_str occurs {count} times; it must be unique"
    lines = code.split("\n")
    want = [_norm(x) for x in old.strip("\n").split("\n")]
    k = len(want)
    hits = [i for i in range(len(lines) - k + 1) if [_norm(x) for x in lines[i : i + k]] == want]
    if len(hits) != 1:
        return None, "old_str not found in the code" if not hits else f"old_str matches {len(hits)} places"
    i = hits[0]
    # Keep the code's indentation when the model's old_str lost (part of) it.
    old_first = old.strip("\n").split("\n")[0]
    have, had = _indent(lines[i]), _indent(old_first)
    extra = have[len(had) :] if have.startswith(had) else ""
    new_lines = [extra + x if x.strip() else x for x in new.strip("\n").split("\n")]
    return "\n".join(lines[:i] + new_lines + lines[i + k :]), ""


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def apply_edits(code: str, edits: list[dict[str, str]]) -> tuple[str | None, str]:
    """Apply edits in order; the first failing edit fails the whole answer."""
    if not edits:
        return None, "no edits"
    for n, e in enumerate(edits):
        out, why = apply_edit(code, e["old_str"], e["new_str"])
        if out is None:
            return None, f"edit {n}: {why}"
        code = out
    return code, ""
