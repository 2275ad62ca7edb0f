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


def scan(source: str) -> tuple[str, str, int | None] | None:
    """None if `source` is acceptable, else (error type, message, line). SyntaxError -> compile_error."""
    try:
        tree = ast.parse(source, filename="solution.py")
    except SyntaxError as e:
        return "compile_error", f"SyntaxError: {e.msg}", e.lineno
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if not module_allowed(a.name):
                    return (
                        "forbidden_import",
                        f"import of {a.name!r} is not allowed (only {ALLOWED_MODULES})",
                        node.lineno,
                    )
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level or not module_allowed(mod):
                return "forbidden_import", f"import from {mod!r} is not allowed (only {ALLOWED_MODULES})", node.lineno
            if mod == "neuronxcc" and any(a.name != "nki" for a in node.names):
                return "forbidden_import", "only neuronxcc.nki may be imported from neuronxcc", node.lineno
        elif isinstance(node, ast.Attribute) and (
            (node.attr.startswith("_") and node.attr not in _ALLOWED_DUNDERS) or node.attr in _INTERNAL_ATTRS
        ):
            return "forbidden_import", f"access to attribute {node.attr!r} is not allowed in kernel code", node.lineno
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            # `np.isclose = ...` would change what the simulator itself computes with (the runner also checks
            # afterwards that no module was altered); kernels have no need to set attributes.
            return (
                "forbidden_import",
                f"setting or deleting attribute {node.attr!r} is not allowed in kernel code (modules are read-only)",
                node.lineno,
            )
        elif isinstance(node, ast.Call) and _format_fields(node):
            return (
                "forbidden_import",
                "str.format may only use plain fields ({}, {0}, {name}) in kernel code",
                node.lineno,
            )
        elif isinstance(node, ast.Name) and node.id in _BANNED_NAMES:
            return "forbidden_import", f"use of {node.id!r} is not allowed in kernel code", node.lineno
    return None


def _format_fields(call: ast.Call) -> bool:
    """True for `x.format(...)` where x is not a literal, or a literal with `{a.b}` / `{a[b]}` fields:
    str.format reads attributes and items by name, out of sight of the AST check."""
    f = call.func
    if not (isinstance(f, ast.Attribute) and f.attr == "format"):
        return False
    if not (isinstance(f.value, ast.Constant) and isinstance(f.value.value, str)):
        return True
    try:
        fields = [(name, spec) for _, name, spec, _ in string.Formatter().parse(f.value.value) if name is not None]
    except ValueError:
        return True
    return any("." in n or "[" in n or "{" in (s or "") for n, s in fields)


def safe_builtins(importer) -> dict:
    """Builtins for the exec namespace: no file, eval or import machinery; `__import__` is the allow-list hook."""
    b = {k: v for k, v in vars(builtins).items() if k not in _BANNED_NAMES}
    b["__import__"] = importer
    b["__build_class__"] = builtins.__build_class__  # class statements need it
    return b
