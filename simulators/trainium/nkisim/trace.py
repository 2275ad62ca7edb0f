"""A kernel's NKI calls as data: recorded where the candidate runs, replayed where the reward is decided.

NKI kernels are traced: their Python runs once, without data, and only the NKI calls it makes matter. In the
sandbox, a `Recorder` runs the candidate on input tensors without data and writes down every call it makes into
the public API (`nl.*`, `nisa.*`, tensor methods and operators, loop iteration), with its arguments as plain values
(numbers, strings, slices, numpy arrays, dtypes, API names) or references to objects that earlier calls returned.
Outside the sandbox, a `Program` checks that record and replays it: the same calls, through the same API
implementation, on inputs and in a session of its own. A forged record is therefore just another program: it is
executed and timed like any other, and cannot claim a latency or an output it does not compute.

The kernel only ever holds `Handle`s; the API implementation only ever sees its own objects. Only outermost calls
are recorded (calls the API makes to itself are its implementation, replayed by calling it again), so a function
added to the public modules is recorded with no change here.

Record entries (JSON lists): ["c", function name, line, args, kwargs, ids, outcome] for a public function,
["m", [object, method], ...] for a method or operator of an API object, ["g", [object, attribute], ...] for an
attribute read that returned an API object, ["x", object] when the kernel released a loop iterator. `ids` number
the API objects in the result, in order; `outcome` is 0 (returned), 1 (StopIteration) or 2 (raised, and the kernel
caught it).
"""

from __future__ import annotations

import enum
import gc
import json
import sys
import types

import numpy as np

from .runtime import ConstraintError, NkiError

MAGIC = b"NKIREC1\n"
SOLUTION = "solution.py"
# Python operators a handle forwards when the object behind it defines them (recorded as method calls).
_OPS = frozenset(
    f"__{n}__"
    for n in (
        "add radd iadd sub rsub isub mul rmul imul truediv rtruediv itruediv floordiv rfloordiv ifloordiv mod rmod "
        "imod pow rpow ipow matmul rmatmul imatmul and rand iand or ror ior xor rxor ixor lshift rlshift ilshift "
        "rshift rrshift irshift neg pos abs invert lt le gt ge eq ne getitem setitem delitem len iter next "
        "contains reversed bool int float index call enter exit round trunc floor ceil"
    ).split()
)
_PURE = ("__repr__", "__str__", "__format__")  # forwarded, not recorded: printing changes nothing
# numpy callables a kernel may pass as an op= (ufuncs are allowed by type).
_NP_FUNCS = ("sum", "max", "min", "amax", "amin", "prod", "mean", "var", "std", "all", "any")
_BUILTIN_TYPES = {"bool": bool, "int": int, "float": float}
MAX_DEPTH = 64  # nesting of one argument (tuples of tuples ...)
_API_PACKAGE = __name__.rsplit(".", 1)[0] + "."  # a recorded call is to a function of this package
_SCALARS = (bool, int, float, str)


class TraceError(NkiError):
    """A record that is not a program of API calls (malformed, or not what the API returns)."""

    type = "sandbox_violation"


def attribute_allowed(name: str) -> bool:
    """What kernel code may read (the guard's rule: no underscores, no simulator internals)."""
    from ..guard import attribute_allowed as allowed

    return allowed(name)


def _dtype(name) -> np.dtype:
    """A number dtype by name (what a record may name)."""
    try:
        dt = np.dtype(str(name))
    except TypeError:
        raise TraceError(f"unknown dtype {str(name)[:40]!r}") from None
    if not _numeric_dtype(dt):
        raise TraceError(f"dtype {dt} is not a number type")
    return dt


def _numeric_dtype(dt: np.dtype) -> bool:
    return (dt.kind in "biuf" or dt.type.__module__.startswith("ml_dtypes")) and dt.itemsize <= 16


# -- the public namespace -------------------------------------------------------------------------------------------
class Names:
    """What a record may name: the public functions, classes and enum members of the NKI modules, numpy ufuncs and
    reductions. Built from the public (shim) modules, so it follows whatever they export."""

    def __init__(self, modules: dict[str, types.ModuleType]) -> None:
        self.by_name: dict[str, object] = {}
        self.by_id: dict[int, str] = {}
        self.objects: set[type] = set()  # classes of the API whose instances are always API objects (a fast path)
        for mname, mod in modules.items():
            for k, v in vars(mod).items():
                if k.startswith("_") or not isinstance(v, (types.FunctionType, type, enum.Enum)):
                    continue
                self.add(f"{mname}.{k}", v)
                if isinstance(v, enum.EnumMeta):
                    for m in v:
                        self.add(f"{mname}.{k}.{m.name}", m)
        for k, v in vars(np).items():
            if isinstance(v, np.ufunc) or k in _NP_FUNCS:
                self.add(f"numpy.{k}", v)

    def add(self, name: str, obj) -> None:
        self.by_name.setdefault(name, obj)
        self.by_id.setdefault(id(obj), name)

    def get(self, name) -> object:
        try:
            return self.by_name[name]
        except (KeyError, TypeError):
            raise TraceError(f"the record names {str(name)[:80]!r}, which is not part of the NKI API") from None

    def plain(self, v) -> bool:
        """A value the kernel gets as it is (not an API object behind a handle). Containers are not plain: their
        items are looked at one by one."""
        t = type(v)
        if t in _SCALARS or v is None:
            return True
        if t in self.objects:
            return False
        if v is NotImplemented or v is Ellipsis:
            return True
        if isinstance(v, (np.ndarray, np.generic, np.dtype)) or id(v) in self.by_id:
            return True
        if isinstance(v, type) and (issubclass(v, np.generic) or v in (bool, int, float)):
            return True
        if isinstance(v, _SCALARS) and id(t) in self.by_id:  # e.g. nl.par_dim(128)
            return True
        if t.__module__.startswith(_API_PACKAGE) and not issubclass(t, (enum.Enum, *_SCALARS, tuple, list, type)):
            self.objects.add(t)  # a tensor, a loop range, ...: no instance of it is ever a plain value
        return False


def _objects(v, names: Names, out: list, depth: int = 0) -> bool:
    """Append the API objects in a result to `out`, in the order the recorder numbers them; True if any."""
    t = type(v)
    if t in names.objects:
        out.append(v)
        return True
    if isinstance(v, (tuple, list)) and depth < MAX_DEPTH:
        found = False
        for x in v:
            found = _objects(x, names, out, depth + 1) or found
        return found
    if names.plain(v):
        return False
    out.append(v)
    return True


# -- recording (inside the sandbox) ---------------------------------------------------------------------------------
class Handle:
    """What the kernel holds instead of an API object: reads are forwarded, calls are recorded."""

    __slots__ = ("_o", "_i", "__weakref__")

    def __init__(self, obj, i: int) -> None:
        self._o = obj
        self._i = i

    def __getattr__(self, name: str):
        if not attribute_allowed(name):
            raise AttributeError(f"access to attribute {name!r} is not allowed in kernel code")
        v = getattr(self._o, name)
        if callable(v) and not isinstance(v, type):
            return _Bound(self, name)
        rec = _active[0]
        if rec is None or rec.depth or rec.names.plain(v) or (isinstance(v, tuple) and not _objects(v, rec.names, [])):
            return v
        return rec.invoke("g", [self._i, name], getattr, (self._o, name), None, raw=True)

    def _call(self, name: str, args, kwargs):
        rec = _active[0]
        fn = getattr(self._o, name)
        if rec is None or rec.depth:
            return fn(*args, **kwargs)
        return rec.invoke("m", [self._i, name], fn, args, kwargs)


class _Loop(Handle):
    """A handle on a generator (a loop's iterator): its release is recorded, because closing a generator runs its
    `finally` in the API (the loop ends)."""

    __slots__ = ()

    def __del__(self) -> None:
        rec = _active[0]
        if rec is not None:
            rec._append(["x", self._i], [self._i])


class _Bound:
    __slots__ = ("h", "name")

    def __init__(self, h: Handle, name: str) -> None:
        self.h, self.name = h, name

    def __call__(self, *args, **kwargs):
        return self.h._call(self.name, args, kwargs)

    def __repr__(self) -> str:
        return f"<method {self.name} of {self.h!r}>"


def _forward(name: str):
    def op(self, *args, **kwargs):
        return self._call(name, args, kwargs or None)

    op.__name__ = name
    return op


def _pure(name: str):
    def op(self, *args):
        return getattr(self._o, name)(*args)

    op.__name__ = name
    return op


_handle_types: dict[tuple[type, bool], type] = {}


def handle_type(t: type, loop: bool) -> type:
    """The handle class for objects of type `t`: it has exactly the operators `t` has."""
    ht = _handle_types.get((t, loop))
    if ht is None:
        ns: dict = {"__slots__": ()}
        for name in _OPS | set(_PURE):
            impl = getattr(t, name, None)
            if impl is not None and impl is not getattr(object, name, None):
                ns[name] = _pure(name) if name in _PURE else _forward(name)
        if "__eq__" in ns:  # a class defining __eq__ loses its hash unless it defines one
            ns["__hash__"] = None if getattr(t, "__hash__", None) is None else Handle.__hash__
        ns["__array_priority__"] = getattr(t, "__array_priority__", 0.0)  # numpy defers to tensors, as before
        ht = _handle_types[(t, loop)] = type(t.__name__, (_Loop if loop else Handle,), ns)
    return ht


_active: list[Recorder | None] = [None]


def caller_line() -> int:
    """The candidate's line making the current call (the innermost frame of solution.py)."""
    f = sys._getframe(1)
    while f is not None:
        if f.f_code.co_filename == SOLUTION:
            return f.f_lineno
        f = f.f_back
    return 0


class Recorder:
    """Records the outermost API calls of one kernel run: `with Recorder(names) as rec: ...`."""

    def __init__(self, names: Names) -> None:
        self.names = names
        self.entries: list = []
        self.n = 0  # API objects numbered so far
        self.depth = 0  # > 0 while the API runs (its calls to itself are not recorded)
        self.handles: dict[int, Handle] = {}  # id(API object) -> its handle (which keeps the object alive)
        self.arrays: dict[tuple, int] = {}
        self.array_meta: list = []
        self.blob: list[bytes] = []
        self.blob_len = 0
        self.params: list = []
        self.ret = None
        self.used: list[int] = []  # objects the call being recorded refers to
        self.last: dict[int, int] = {}  # object -> the last entry that refers to it

    def __enter__(self) -> Recorder:
        _active[0] = self
        return self

    def __exit__(self, *exc) -> None:
        _active[0] = None

    # -- values ----------------------------------------------------------------------------------------------------
    def enc(self, v, depth: int = 0):
        """(JSON form, the object the API gets) of one argument."""
        t = type(v)
        if v is None or t in _SCALARS:
            return v, v
        if depth > MAX_DEPTH:
            raise ConstraintError("an argument of an NKI call is nested too deeply")
        if isinstance(v, Handle):
            self.used.append(v._i)
            return ["r", v._i], v._o
        if isinstance(v, (tuple, list)):
            js, real = [], []
            for x in v:
                j, r = self.enc(x, depth + 1)
                js.append(j)
                real.append(r)
            return (["l", js], real) if isinstance(v, list) else (["t", js], tuple(real))
        if t is dict:
            items, real = [], {}
            for k, x in v.items():
                if type(k) is not str:
                    raise ConstraintError("dict arguments of NKI calls need string keys")
                e, real[k] = self.enc(x, depth + 1)
                items.append([k, e])
            return ["k", items], real
        if t is slice:
            parts = [self.enc(x, depth + 1) for x in (v.start, v.stop, v.step)]
            return ["s", *(p[0] for p in parts)], slice(*(p[1] for p in parts))
        if v is Ellipsis:
            return ["e"], v
        if t is np.ndarray:
            if not _numeric_dtype(v.dtype):
                raise ConstraintError(f"a numpy array of {v.dtype} cannot be passed to an NKI call")
            return ["a", self._array(v)], v
        if isinstance(v, np.generic):
            if not _numeric_dtype(v.dtype):
                raise ConstraintError(f"a numpy {v.dtype} value cannot be passed to an NKI call")
            return ["ns", v.dtype.name, v.item()], v
        if isinstance(v, np.dtype):
            if not _numeric_dtype(v):
                raise ConstraintError(f"dtype {v} cannot be passed to an NKI call")
            return ["d", v.name], v
        if isinstance(v, type) and issubclass(v, np.generic):
            return ["dt", np.dtype(v).name], v
        if isinstance(v, type) and v in (bool, int, float):
            return ["bt", v.__name__], v
        name = self.names.by_id.get(id(v))
        if name is not None:
            return ["n", name], self.names.by_name[name]
        cls = self.names.by_id.get(id(t))
        if cls is not None and isinstance(v, _SCALARS):
            base = next(b for b in _SCALARS[1:] if isinstance(v, b))
            return ["i", cls, base(v)], v
        raise ConstraintError(f"a {t.__name__} cannot be passed to an NKI call (only tensors and plain values)")

    def _array(self, v: np.ndarray) -> int:
        data = np.ascontiguousarray(v).tobytes()
        key = (v.dtype.name, v.shape, data)  # by content: the kernel may change an array between two calls
        i = self.arrays.get(key)
        if i is None:
            i = self.arrays[key] = len(self.array_meta)
            self.array_meta.append([v.dtype.name, list(v.shape), self.blob_len, len(data)])
            self.blob.append(data)
            self.blob_len += len(data)
        return i

    def wrap(self, v, ids: list, depth: int = 0):
        """The kernel's view of a result: plain values as they are, API objects as handles (their ids in `ids`)."""
        if type(v) not in self.names.objects and isinstance(v, (tuple, list)) and depth < MAX_DEPTH:
            if not _objects(v, self.names, []):
                return v
            return (list if isinstance(v, list) else tuple)(self.wrap(x, ids, depth + 1) for x in v)
        if self.names.plain(v):
            return v
        h = self.handles.get(id(v))
        if h is not None and h._o is v:
            ids.append(h._i)
            return h
        loop = isinstance(v, types.GeneratorType)
        h = handle_type(type(v), loop)(v, self.n)
        ids.append(self.n)
        self.n += 1
        if not loop:  # loops are released (and closed) when the kernel drops them; other objects live on
            self.handles[id(v)] = h
        return h

    # -- calls -----------------------------------------------------------------------------------------------------
    def invoke(self, op: str, target, fn, args, kwargs, raw: bool = False):
        line = caller_line()
        self.used = used = [target[0]] if op != "c" else []
        if raw:  # an attribute read: fn(*args) is getattr(object, name)
            ea, ra, ek, rk = [], args, None, {}
        else:
            ea, ra = [], []
            for x in args:
                j, r = self.enc(x)
                ea.append(j)
                ra.append(r)
            ek, rk = self.enc(kwargs) if kwargs else (None, {})
        outcome = 2
        self.depth += 1
        try:
            result = fn(*ra, **rk)
            outcome = 0
        except StopIteration:
            outcome = 1
            raise
        finally:
            self.depth -= 1
            if outcome:
                self._append([op, target, line, ea, ek, [], outcome], used)
        ids: list = []
        out = self.wrap(result, ids)
        self._append([op, target, line, ea, ek, ids, 0], used + ids)
        return out

    def _append(self, entry: list, used: list) -> None:
        i = len(self.entries)
        last = self.last
        for k in used:
            last[k] = i
        self.entries.append(entry)

    def param(self, obj):
        """A kernel argument: tensors become handles (numbered first), scalars stay as they are."""
        ids: list = []
        out = self.wrap(obj, ids)
        self.params.append(["r", ids[0]] if ids else self.enc(obj)[0])
        return out

    def finish(self, ret) -> None:
        self.ret = self.enc(ret)[0]

    def dumps(self) -> bytes:
        # When the replay may drop each object: after its last use, unless the kernel returns it. (Taken from the
        # record as it is: a wrong schedule only fails or bloats the candidate's own replay.)
        keep: dict = {}
        for j in (self.ret, *self.params):
            _refs(j, keep, 0)
        frees: dict[int, list] = {}
        for k, i in self.last.items():
            if k not in keep:
                frees.setdefault(i, []).append(k)
        head = {
            "params": self.params,
            "entries": self.entries,
            "ret": self.ret,
            "arrays": self.array_meta,
            "frees": [[i, ks] for i, ks in frees.items()],
        }
        h = json.dumps(head, separators=(",", ":")).encode()
        return MAGIC + len(h).to_bytes(8, "little") + h + b"".join(self.blob)


def public_module(mod: types.ModuleType, prefix: str, names: Names) -> types.ModuleType:
    """A copy of a public API module whose functions record their outermost calls while a recorder is active."""
    m = types.ModuleType(mod.__name__, mod.__doc__)
    for k, v in vars(mod).items():
        if k.startswith("__"):
            continue
        if isinstance(v, types.FunctionType) and not k.startswith("_"):
            v = _recording(v, f"{prefix}.{k}")
            names.by_id[id(v)] = f"{prefix}.{k}"  # passing nl.exp as op= names the API function
        setattr(m, k, v)
    return m


def _recording(fn, name: str):
    def call(*args, **kwargs):
        rec = _active[0]
        if rec is None or rec.depth:
            return fn(*args, **kwargs)
        return rec.invoke("c", name, fn, args, kwargs)

    call.__name__, call.__qualname__, call.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    return call


# -- replay (outside the sandbox) -----------------------------------------------------------------------------------
# A call made from line 1 of solution.py (its body on the def line, so the frame's line is the one we set):
# `Program._at` moves it to each recorded line.
_AT = compile("def at(f, a, k): return f(*a, **k)", SOLUTION, "exec").co_consts[0]


class Program:
    """A checked record, replayable any number of times: `Program(data, names)(*kernel_args)` makes its calls in
    the current session and returns the kernel's result."""

    def __init__(self, data: bytes, names: Names) -> None:
        paused = gc.isenabled()
        gc.disable()  # building ~10 containers per call: collections would re-walk the whole record each time
        try:
            self._load(data, names)
        finally:
            if paused:
                gc.enable()

    def _load(self, data: bytes, names: Names) -> None:
        self.names = names
        if not isinstance(data, (bytes, bytearray)) or data[: len(MAGIC)] != MAGIC:
            raise TraceError("not an NKI call record")
        start = len(MAGIC) + 8
        n = int.from_bytes(data[len(MAGIC) : start], "little")
        try:
            head = json.loads(data[start : start + n])
        except (ValueError, RecursionError) as e:
            raise TraceError(f"unreadable record: {str(e)[:200]}") from None
        if type(head) is not dict:
            raise TraceError("unreadable record")
        blob = memoryview(data)[start + n :]
        self.arrays = [self._array(m, blob) for m in _list(head.get("arrays"), "arrays")]
        self.params = _list(head.get("params"), "params")
        self.entries = _list(head.get("entries"), "entries")
        self.ret = head.get("ret")
        for i, e in enumerate(self.entries):
            if not (type(e) is list and ((len(e) == 7 and e[0] in ("c", "m", "g")) or (len(e) == 2 and e[0] == "x"))):
                raise TraceError(f"bad entry {i} in the record")
        self.frees = _schedule(head.get("frees")) or self._frees()
        self.lines: dict = {}
        self.steps = [self._compile_entry(e) for e in self.entries]  # checked and decoded once, run many times

    def _array(self, meta, blob: memoryview) -> np.ndarray:
        if not (type(meta) is list and len(meta) == 4):
            raise TraceError("bad array in the record")
        name, shape, off, nbytes = meta
        dt = _dtype(name)
        if not (type(shape) is list and len(shape) <= 8 and all(type(d) is int and d >= 0 for d in shape)):
            raise TraceError("bad array shape in the record")
        if type(off) is not int or type(nbytes) is not int or off < 0 or nbytes < 0 or off + nbytes > len(blob):
            raise TraceError("array data outside the record")
        if nbytes != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
            raise TraceError("array size does not match its shape")
        return np.frombuffer(blob[off : off + nbytes], dtype=dt).reshape(shape).copy()

    def _frees(self) -> dict[int, list]:
        """Objects to drop after each entry (their last use), so the replay holds no more than the kernel did."""
        last: dict = {}
        for i, e in enumerate(self.entries):
            if e[0] == "x":
                if type(e[1]) is int:
                    last[e[1]] = i
                continue
            if e[0] != "c" and type(e[1]) is list and e[1] and type(e[1][0]) is int:
                last[e[1][0]] = i
            for j in e[3] if type(e[3]) is list else ():
                _refs(j, last, i)
            _refs(e[4], last, i)
            for k in e[5] if type(e[5]) is list else ():
                if type(k) is int:
                    last[k] = i
        for p in self.params:
            _refs(p, last, len(self.entries))
        _refs(self.ret, last, len(self.entries))
        frees: dict[int, list] = {}
        for k, i in last.items():
            frees.setdefault(i, []).append(k)
        return frees

    # -- values ----------------------------------------------------------------------------------------------------
    def dec(self, j, objs: dict, depth: int = 0):
        t = type(j)
        if j is None or t in _SCALARS:
            return j
        if t is not list or not j or depth > MAX_DEPTH:
            raise TraceError("bad value in the record")
        tag, n = j[0], len(j)
        if tag == "r" and n == 2:
            try:
                return objs[j[1]] if type(j[1]) is int else objs[None]
            except KeyError:
                raise TraceError(f"the record uses object {str(j[1])[:20]} that no call returned") from None
        if tag in ("t", "l") and n == 2 and type(j[1]) is list:
            vals = [self.dec(x, objs, depth + 1) for x in j[1]]
            return vals if tag == "l" else tuple(vals)
        if tag == "a" and n == 2 and type(j[1]) is int and 0 <= j[1] < len(self.arrays):
            return self.arrays[j[1]]
        if tag == "s" and n == 4:
            return slice(*(self.dec(x, objs, depth + 1) for x in j[1:]))
        if tag == "e" and n == 1:
            return Ellipsis
        if tag == "k" and n == 2 and type(j[1]) is list:
            out = {}
            for kv in j[1]:
                if not (type(kv) is list and len(kv) == 2 and type(kv[0]) is str):
                    raise TraceError("bad keyword in the record")
                out[kv[0]] = self.dec(kv[1], objs, depth + 1)
            return out
        if tag == "d" and n == 2:
            return _dtype(j[1])
        if tag == "dt" and n == 2:
            return _dtype(j[1]).type
        if tag == "bt" and n == 2 and j[1] in _BUILTIN_TYPES:
            return _BUILTIN_TYPES[j[1]]
        if tag == "ns" and n == 3 and type(j[2]) in (bool, int, float):
            return _dtype(j[1]).type(j[2])
        if tag == "n" and n == 2:
            return self.names.get(j[1])
        if tag == "i" and n == 3 and type(j[2]) in (int, float, str):
            cls = self.names.get(j[1])
            if not (isinstance(cls, type) and issubclass(cls, type(j[2])) and not issubclass(cls, enum.Enum)):
                raise TraceError(f"{str(j[1])[:40]} is not a number type")
            return cls(j[2])
        raise TraceError(f"bad value {str(j)[:60]} in the record")

    def _at(self, line):
        """A function making a call from `line` of solution.py, so that allocation sites and error lines in the
        replay are the candidate's own, as when its code ran."""
        f = self.lines.get(line)
        if f is None:
            n = line if type(line) is int and 0 < line < 1 << 30 else 1
            f = self.lines[line] = types.FunctionType(_AT.replace(co_filename=SOLUTION, co_firstlineno=n), {})
        return f

    # -- running ---------------------------------------------------------------------------------------------------
    def __call__(self, *args):
        if len(args) != len(self.params):
            raise TraceError(f"the record has {len(self.params)} kernel parameters, the kernel {len(args)}")
        objs: dict = {}
        for p, a in zip(self.params, args, strict=True):
            if type(p) is list and len(p) == 2 and p[0] == "r":
                objs[p[1]] = a
        frees = self.frees
        for i, step in enumerate(self.steps):
            step(objs)
            for k in frees.get(i, ()):
                objs.pop(k, None)
        return self.dec(self.ret, objs)

    def _compile_entry(self, e: list):
        """One entry as a function of the live objects: names, lines, constants and shapes are checked here once."""
        if e[0] == "x":
            k = e[1]

            def release(objs: dict) -> None:
                gen = objs.get(k) if type(k) is int else None
                if isinstance(gen, types.GeneratorType):
                    gen.close()

            return release
        op, target, line, args, kwargs, ids, outcome = e
        if type(args) is not list or type(ids) is not list or outcome not in (0, 1, 2):
            raise TraceError("bad entry in the record")
        if not all(type(i) is int for i in ids):
            raise TraceError("bad object id in the record")
        at = self._at(line)
        a = self._compile(["t", args] if op != "g" else ["t", []])
        k = self._compile(kwargs) if kwargs is not None and op != "g" else (True, {})
        if not (k[0] is False or type(k[1]) is dict):
            raise TraceError("bad keywords in the record")
        if op == "c":
            fn = self.names.get(target)
            if not (isinstance(fn, types.FunctionType) and fn.__module__.startswith(_API_PACKAGE)):
                raise TraceError(f"{str(target)[:40]} is not an NKI function")
            get = lambda objs: fn  # noqa: E731
        elif type(target) is list and len(target) == 2 and type(target[0]) is int and type(target[1]) is str:
            obj_id, name = target
            pick = _attribute if op == "g" else _method

            def get(objs: dict):
                obj = objs.get(obj_id)
                if obj is None:
                    raise TraceError(f"the record uses object {obj_id} that no call returned")
                return pick(obj, name)
        else:
            raise TraceError("bad entry in the record")
        names = self.names

        def step(objs: dict) -> None:
            fn = get(objs)
            av = a[1] if a[0] else a[1](objs)
            kv = k[1] if k[0] else k[1](objs)
            if type(kv) is not dict:
                raise TraceError("bad keywords in the record")
            if outcome:
                try:
                    at(fn, av, kv)
                except Exception:  # noqa: BLE001  (the kernel caught this exception when it ran)
                    pass
                return
            got: list = []
            _objects(at(fn, av, kv), names, got)
            if len(got) != len(ids):
                raise TraceError(f"line {line}: the record does not match what the API returned")
            for obj, i in zip(got, ids, strict=True):
                old = objs.get(i)
                if old is None:
                    objs[i] = obj
                elif old is not obj:
                    raise TraceError(f"line {line}: the record does not match what the API returned")

        return step

    def _compile(self, j, depth: int = 0):
        """(True, value) for a value without references (decoded once; tuples, slices, numbers, names), or
        (False, f) with f(objs) building it from the live objects (lists and dicts are built fresh each time)."""
        t = type(j)
        if j is None or t in _SCALARS:
            return True, j
        if t is not list or not j or depth > MAX_DEPTH:
            raise TraceError("bad value in the record")
        tag = j[0]
        if tag == "r" and len(j) == 2 and type(j[1]) is int:
            key = j[1]

            def ref(objs: dict):
                try:
                    return objs[key]
                except KeyError:
                    raise TraceError(f"the record uses object {key} that no call returned") from None

            return False, ref
        if tag in ("t", "l", "s", "k"):
            if tag == "k":
                if not (len(j) == 2 and type(j[1]) is list):
                    raise TraceError("bad keywords in the record")
                for kv in j[1]:
                    if not (type(kv) is list and len(kv) == 2 and type(kv[0]) is str):
                        raise TraceError("bad keyword in the record")
                keys = [kv[0] for kv in j[1]]
                parts = [self._compile(kv[1], depth + 1) for kv in j[1]]
            elif tag == "s":
                if len(j) != 4:
                    raise TraceError("bad slice in the record")
                parts = [self._compile(x, depth + 1) for x in j[1:]]
            else:
                if not (len(j) == 2 and type(j[1]) is list):
                    raise TraceError("bad value in the record")
                parts = [self._compile(x, depth + 1) for x in j[1]]
            build = {"t": tuple, "l": list, "s": lambda v: slice(*v), "k": lambda v: dict(zip(keys, v, strict=True))}[
                tag
            ]
            if tag in ("t", "s") and all(c for c, _ in parts):
                return True, build([v for _, v in parts])
            return False, lambda objs: build([v if c else v(objs) for c, v in parts])
        return True, self.dec(j, {}, depth)


def _schedule(v) -> dict[int, list] | None:
    """The record's own free schedule ([[entry, [objects]], ...]) as a dict, or None if it is not well formed."""
    if type(v) is not list:
        return None
    out: dict[int, list] = {}
    for item in v:
        if not (type(item) is list and len(item) == 2 and type(item[0]) is int and type(item[1]) is list):
            return None
        if not all(type(k) is int for k in item[1]):
            return None
        out[item[0]] = item[1]
    return out


def _refs(j, last: dict, i: int, depth: int = 0) -> None:
    """Mark every object referenced in the JSON value `j` as used by entry `i`."""
    if type(j) is not list or not j or depth > MAX_DEPTH:
        return
    tag = j[0]
    if tag == "r" and len(j) == 2:
        if type(j[1]) is int:
            last[j[1]] = i
    elif tag in ("t", "l") and len(j) == 2 and type(j[1]) is list:
        for x in j[1]:
            _refs(x, last, i, depth + 1)
    elif tag == "k" and len(j) == 2 and type(j[1]) is list:
        for kv in j[1]:
            if type(kv) is list and len(kv) == 2:
                _refs(kv[1], last, i, depth + 1)
    elif tag == "s":
        for x in j[1:]:
            _refs(x, last, i, depth + 1)


_allowed: dict[tuple[type, str], bool] = {}  # (class, method) -> may a record call it


def _method(obj, name):
    """A bound method of an API object that kernels may call: an operator its class defines, or a public method."""
    t = type(obj)
    if _allowed.get((t, name)):
        return getattr(obj, name)
    impl = getattr(t, name, None) if type(name) is str else None
    ok = impl is not None and (
        (name in _OPS and impl is not getattr(object, name, None))
        or (name[:1] != "_" and attribute_allowed(name) and callable(impl) and not isinstance(impl, type))
    )
    if not ok:
        raise TraceError(f"the record calls {t.__name__}.{str(name)[:40]}, which kernels cannot")
    _allowed[(t, name)] = True
    return getattr(obj, name)


def _attribute(obj, name):
    """getattr for an attribute kernels may read (a public attribute of the object's class)."""
    if not (type(name) is str and name[:1] != "_" and attribute_allowed(name) and hasattr(type(obj), name)):
        raise TraceError(f"the record reads attribute {str(name)[:40]!r}, which kernels cannot")
    return lambda: getattr(obj, name)


def _list(v, what: str) -> list:
    if type(v) is not list:
        raise TraceError(f"bad {what} in the record")
    return v
