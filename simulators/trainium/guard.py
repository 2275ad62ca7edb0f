"""Static checks on candidate NKI source, run before anything executes (host side and again in the runner)."""

from __future__ import annotations

import ast
import builtins
import string

ALLOWED_MODULES = ("neuronxcc.nki", "numpy", "math")
# Dunder attributes that open the usual escapes (frames, globals, subclasses, the import machinery).
_ALLOWED_DUNDERS = {"__name__", "__doc__", "__init__", "__call__", "__len__", "__getitem__"}
_BANNED_NAMES = {
    "__import__",
    "__builtins__",
    "__loader__",
    "__spec__",
    "open",
    "exec",
    "eval",
    "compile",
    "globals",
    "locals",
    "vars",
    "breakpoint",
    "input",
    "memoryview",
    "__build_class__",
    "getattr",
    "setattr",
    "delattr",
    "dir",
}
# Attributes of the simulator's own objects (tensors, kernels, modules): reaching them could alter the timing.
# Also module attributes that lead out of numpy into the OS or the file system (np.lib.npyio.os, np.save, ...).
_ESCAPE_ATTRS = {
    "os",
    "sys",
    "subprocess",
    "builtins",
    "ctypes",
    "importlib",
    "environ",
    "system",
    "modules",
    "lib",
    "ctypeslib",
    "testing",
    "f2py",
    "distutils",
    "save",
    "savez",
    "savez_compressed",
    "savetxt",
    "dump",  # ndarray.dump pickles to a file
    "dumps",
    "tofile",
    "memmap",
    "fromfile",
    "genfromtxt",
    "loadtxt",
    "fromregex",
    "DataSource",
    "open_memmap",
    # Standard modules numpy and the shim import, reachable as attributes (np.ma.core.inspect, nki.types, ...):
    # inspect and operator read any attribute (frames, globals), types builds functions with chosen globals.
    "inspect",
    "operator",
    "functools",
    "types",
    "warnings",
    "abc",
    "re",
    "textwrap",
    "numbers",
    "itertools",
    "collections",
    "contextlib",
    "ast",
}
# Frames, code objects and tracebacks of generators, coroutines and exceptions: through them a kernel reaches the
# runner's frames, its locals (spec, arguments, result nonce) and the real builtins.
_FRAME_ATTRS = {
    "gi_frame",
    "gi_code",
    "gi_yieldfrom",
    "cr_frame",
    "cr_code",
    "cr_await",
    "cr_origin",
    "ag_frame",
    "ag_code",
    "ag_await",
    "f_back",
    "f_globals",
    "f_locals",
    "f_builtins",
    "f_code",
    "f_trace",
    "tb_frame",
    "tb_next",
    "co_code",
    "co_consts",
    "cell_contents",
    "func_globals",
    "func_closure",
    "func_code",
    "func_dict",
    "im_func",
    "im_self",
    "with_traceback",
    "format_map",  # str.format_map reads attributes the AST does not show (see _format_fields)
}
_INTERNAL_ATTRS = (
    _ESCAPE_ATTRS
    | _FRAME_ATTRS
    | {
        "alloc",
        "sess",
        "tl",
        "acc",
        "key",
        "box",
        "cfg",
        "pending",
        "fresh",
        "updated",
        "func",
        "last_session",
        "session",
        "emit",
        "dma",
        "spill",
        "runtime",
        "timeline",
        "api",
    }
)


def module_allowed(name: str) -> bool:
    return name in ("neuronxcc", "neuronxcc.nki", "numpy", "math") or name.startswith("neuronxcc.nki.")


def attribute_allowed(name: str) -> bool:
    """Whether kernel code may name this attribute: `x.name`, `from m import name`, a class pattern's keyword, a
    kernel tensor's attribute (the recorder asks too)."""
    if name.startswith("_"):
        return name in _ALLOWED_DUNDERS
    return name not in _INTERNAL_ATTRS


def scan(source: str) -> tuple[str, str, int | None] | None:
    """None if `source` is acceptable, else (error type, message, line). SyntaxError -> compile_error."""
    try:
        try:
            tree = ast.parse(source, filename="solution.py")
        except SystemError:  # CPython 3.11's AST converter can leave its (global) depth count off: parse again
            tree = ast.parse(source, filename="solution.py")
    except SyntaxError as e:
        return "compile_error", f"SyntaxError: {e.msg}", e.lineno
    except (ValueError, RecursionError, MemoryError) as e:  # null bytes, absurd nesting
        return "compile_error", f"{type(e).__name__}: {str(e)[:200]}", None
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        bad = _check(node, id(node) in calls)
        if bad:
            return "forbidden_import", bad, getattr(node, "lineno", None)
    return None


def _check(node: ast.AST, called: bool) -> str | None:
    """Why `node` is not allowed in kernel code, or None. `called`: node is the function of a call."""
    if isinstance(node, ast.Import):
        for a in node.names:
            if not module_allowed(a.name):
                return f"import of {a.name!r} is not allowed (only {ALLOWED_MODULES})"
    elif isinstance(node, ast.ImportFrom):
        mod = node.module or ""
        if node.level or not module_allowed(mod):
            return f"import from {mod!r} is not allowed (only {ALLOWED_MODULES})"
        if mod == "neuronxcc" and any(a.name != "nki" for a in node.names):
            return "only neuronxcc.nki may be imported from neuronxcc"
        for a in node.names:  # `from numpy import __builtins__` reads an attribute of the module
            if a.name == "*" and not mod.startswith("neuronxcc.nki"):
                return f"`from {mod} import *` is not allowed in kernel code"
            if a.name != "*" and not attribute_allowed(a.name):
                return f"importing {a.name!r} from {mod} is not allowed in kernel code"
    elif isinstance(node, ast.MatchClass):
        # `case object(__globals__=g)` reads attributes with no attribute node, positional patterns read the
        # attributes a class names in __match_args__: kernels have no use for class patterns.
        return "class patterns in `match` are not allowed in kernel code"
    elif isinstance(node, ast.Attribute):
        if not attribute_allowed(node.attr):
            return f"access to attribute {node.attr!r} is not allowed in kernel code"
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            # `np.isclose = ...` changes what the simulator itself computes with; kernels never need it.
            return f"setting or deleting attribute {node.attr!r} is not allowed in kernel code (modules are read-only)"
        if node.attr == "format" and not (called and _plain_format(node)):
            return "str.format may only be called on a string literal with plain fields ({}, {0}, {name})"
    elif isinstance(node, ast.Name) and node.id in _BANNED_NAMES:
        return f"use of {node.id!r} is not allowed in kernel code"
    return None


def _plain_format(f: ast.Attribute) -> bool:
    """`"literal".format` with only plain fields: str.format reads attributes and items named in its fields
    (`{0.gi_frame}`, `{0[k]}`), out of sight of the attribute check, so only a literal it can inspect passes."""
    if not (isinstance(f.value, ast.Constant) and isinstance(f.value.value, str)):
        return False
    try:
        fields = [(name, spec) for _, name, spec, _ in string.Formatter().parse(f.value.value) if name is not None]
    except ValueError:
        return False
    return not any("." in n or "[" in n or "{" in (s or "") for n, s in fields)


def safe_builtins(importer) -> dict:
    """Builtins for the exec namespace: no file, eval or import machinery; `__import__` is the allow-list hook."""
    b = {k: v for k, v in vars(builtins).items() if k not in _BANNED_NAMES}
    b["__import__"] = importer
    b["__build_class__"] = builtins.__build_class__  # class statements need it
    return b
