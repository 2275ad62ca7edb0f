"""Static checks on candidate NKI source, run before anything executes (host side and again in the runner)."""

from __future__ import annotations

import ast
import builtins

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
    "tofile",
    "memmap",
    "fromfile",
    "genfromtxt",
    "loadtxt",
    "fromregex",
    "DataSource",
    "open_memmap",
}
_INTERNAL_ATTRS = _ESCAPE_ATTRS | {
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
        elif isinstance(node, ast.Name) and node.id in _BANNED_NAMES:
            return "forbidden_import", f"use of {node.id!r} is not allowed in kernel code", node.lineno
    return None


def safe_builtins(importer) -> dict:
    """Builtins for the exec namespace: no file, eval or import machinery; `__import__` is the allow-list hook."""
    b = {k: v for k, v in vars(builtins).items() if k not in _BANNED_NAMES}
    b["__import__"] = importer
    b["__build_class__"] = builtins.__build_class__  # class statements need it
    return b
