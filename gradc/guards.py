"""Guards on the Python state a traced call read, so that a compiled program never runs on a
stale Python value.

While a call is traced, `Reads` watches which of the user's code objects run (a trace hook,
active only while tracing) and records, for each, the globals its code names, and the closure
cells of the compiled function (and of functions found in those globals). Modules reached that
way (and the compiled module itself) contribute their non-tensor attributes (`Dropout.p`,
`LayerNorm.eps`, a float factor). Each value is frozen when first read, before the traced call can
change it (a counter `self.t += 1` then fails its guard on the next call, which traces again and
makes the change again), and becomes one guard entry:

  scalars (int, float, bool, str, None)     equal value and type
  tensors, modules, functions, gradc objects same object (a rebound global tensor retraces)
  dict / list / tuple / set, user objects   same contents, compared as a frozen copy (up to
                                             MAX_LEAVES values; a bigger container is compared
                                             by identity and length)
  random generator objects                   same state (a draw from one traces again)

Python modules (`np`, `F`) are not guarded. Optimizer hyper-parameters and GradScaler state are
not guarded here: they are program inputs (see gradc.tracer). A failed guard names what changed,
e.g. `global SCALE: 1.0 -> 0.25` or `model.drop.p: 0.5 -> 0.0`.

Cost per call: an unchanged global or cell is one dict lookup or cell read and an identity test;
a container is re-frozen and compared; module attributes are compared only when some module was
assigned to since the last check (nn.Module counts assignments: `structure_epoch`)."""
import dis
import functools
import gc
import inspect
import math
import os
import random
import reprlib
import sys
import sysconfig
import types

import numpy as np

from .nn.module import Module, structure_epoch
from .reach import modules_of
from .tensor import Tensor

MAX_LEAVES = 256
_MISSING = object()
_SCALARS = (int, float, bool, str, bytes, complex, type(None))
_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_SKIP_DIRS = tuple({_PKG_DIR, sysconfig.get_paths()["stdlib"] + os.sep, "<frozen "})
_MUTATORS = frozenset(("append", "extend", "insert", "pop", "remove", "clear", "add", "discard", "update",
                       "setdefault", "popitem", "sort", "reverse", "__setitem__", "__delitem__"))
_MODULE_STORES = frozenset(("_parameters", "_buffers", "_modules", "_non_persistent", "training"))
_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist, _short.maxdict = 40, 40, 6, 6


class _Budget(Exception):
    pass


def freeze(v, budget=None, depth=3):
    """A comparable copy of `v`: scalars by value, containers and small arrays by contents, config
    objects by their attributes (`args.opt.k`: `depth` levels of them), other objects by identity."""
    budget = [MAX_LEAVES] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise _Budget
    t = type(v)
    if t in _SCALARS:
        return (t, "nan") if t is float and math.isnan(v) else (t, v)
    if t in (list, tuple, _Parts):
        return (t, tuple(freeze(x, budget, depth) for x in v))
    if t is dict:
        return (t, tuple((freeze(k, budget, depth), freeze(x, budget, depth)) for k, x in v.items()))
    if t in (set, frozenset):
        try:
            return (t, frozenset(freeze(x, budget, depth) for x in v))
        except TypeError:
            return ("id", id(v), len(v))
    if t is np.ndarray and v.size <= 64:   # a small array read into the program (a mask, weights): its values
        return ("array", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, _GENERATORS):   # a random generator the function draws from: its state
        return ("rng", id(v), _rng_state(v))
    if _is_user_object(v):  # a config object: its attributes, `depth` levels deep
        if depth <= 0:
            return ("id", id(v))
        return ("obj", id(v), tuple((k, freeze(x, budget, depth - 1)) for k, x in vars(v).items()))
    return ("id", id(v))


# Random generators other than the global ones (which refuse draws while tracing): a draw moves
# their state, so a trace that drew from one leaves a guard that fails on the next call.
_GENERATORS = (np.random.Generator, np.random.RandomState, random.Random)


def _rng_state(g):
    if isinstance(g, np.random.Generator):
        return repr(g.bit_generator.state)
    if isinstance(g, np.random.RandomState):
        key, pos = g.get_state()[1:3]
        return (key.tobytes(), pos)
    return g.getstate()


def _names_in(codes):
    """The names code can read an attribute by: its attribute names, and its string constants
    (getattr(self, "scale"))."""
    out = set()
    for code in codes:
        out.update(code.co_names)
        out.update(c for c in code.co_consts if type(c) is str)
    return out


def _unread(module, read):
    """Public attributes of a user's module that no code of the trace names, nor any method of the
    gradc classes it builds on: lists the training loop fills between calls (reinforce's
    self.rewards) are no input of the program, and guarding them would trace again each call."""
    cls = type(module)
    if (cls.__module__ or "").startswith("gradc"):
        return ()
    names = read | _gradc_names(cls)
    return {k for k in vars(module) if not k.startswith("_") and k not in names}


@functools.lru_cache(maxsize=None)
def _gradc_names(cls):
    """What the methods of the gradc classes under a user's module class name (once per class)."""
    return frozenset(_names_in(f.__code__ for c in cls.__mro__ if (c.__module__ or "").startswith("gradc")
                               for f in vars(c).values() if isinstance(f, types.FunctionType)))


def _is_user_object(v):
    """A plain object of the user's (a config, a trainer): not a gradc object, nor one of a class built
    on gradc's (an Optimizer subclass keeps its settings as program inputs, read by their own guard)."""
    t = type(v)
    return (hasattr(v, "__dict__") and not isinstance(v, (type, types.FunctionType, types.MethodType,
                                                          types.ModuleType, Tensor, Module))
            and not any((c.__module__ or "").startswith(("gradc", "numpy", "builtins")) for c in t.__mro__[:-1]))


def frozen(v):
    try:
        return freeze(v)
    except _Budget:  # too big to compare per call: identity and length
        return ("big", id(v), len(v) if hasattr(v, "__len__") else None)


def _deep(v):
    return type(v) in (list, dict, set, np.ndarray) or isinstance(v, _GENERATORS) or _is_user_object(v) or (type(v) is tuple and any(map(_deep, v)))


def _changed(label, old, new):
    if isinstance(old, Tensor) or isinstance(new, Tensor):
        return f"{label}: rebound to a different object ({_what(old)} -> {_what(new)})"
    return f"{label}: {_short.repr(old)} -> {_short.repr(new)}"


def _what(v):
    return f"tensor {v.dtype.name}{list(v.shape)}" if isinstance(v, Tensor) else type(v).__name__


class PythonGuards:
    """The guard entries of one trace: (label, read, value at trace time, its frozen copy, deep).
    Called with the flat tensor arguments (the Program guard protocol); `explain` says what failed."""

    def __init__(self, entries, module_entries):
        # A module attribute changes without an assignment only when it is a container changed in
        # place (`m.scales[0] = 3.0`): those are checked on every call, the rest when some module
        # was assigned to (structure_epoch).
        self.entries = entries + [e for e in module_entries if e[4]]
        self.module_entries = [e for e in module_entries if not e[4]]
        self._epoch = None

    def __len__(self):
        return len(self.entries) + len(self.module_entries)

    def __call__(self, flat_args=None):
        for _, read, obj, snap, deep in self.entries:
            cur = read()
            if cur is obj and not deep:
                continue
            if cur is _MISSING or frozen(cur) != snap:
                return False
        if self.module_entries and self._epoch != structure_epoch():
            for _, read, obj, snap, deep in self.module_entries:
                cur = read()
                if (cur is not obj or deep) and (cur is _MISSING or frozen(cur) != snap):
                    return False
            self._epoch = structure_epoch()
        return True

    def explain(self):
        out = []
        for label, read, obj, snap, deep in self.entries + self.module_entries:
            cur = read()
            if cur is _MISSING:
                out.append(f"{label}: {_short.repr(obj)} -> (deleted)")
            elif (cur is not obj or deep) and frozen(cur) != snap:
                out.append(f"{label}: {obj.replaced(cur)} replaced" if isinstance(obj, _Parts) else
                           _changed(label, obj, cur) if not deep else f"{label}: contents changed ({_short.repr(cur)})")
        return out


def global_names(code):
    """The globals the code reads or writes (co_names also holds every attribute name it uses:
    `w.data` reads no global `data`), and, of those, the ones it mutates (`mutated_names`)."""
    ins = list(dis.get_instructions(code))
    names = {x.argval for x in ins if x.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL")}
    return names, mutated_names(code, ins)


def attributes_read(code, name, loads=("LOAD_GLOBAL", "LOAD_NAME")):
    """The attributes the code reads directly off `name` (a global's `cfg.SCALE`; with
    loads=("LOAD_FAST",), an argument's `self.k`)."""
    ins = list(dis.get_instructions(code))
    return {b.argval for a, b in zip(ins, ins[1:]) if a.opname in loads and a.argval == name
            and b.opname in ("LOAD_ATTR", "LOAD_METHOD")}


def _user_module(m):
    """A Python module of the user's own (a config.py), not a library's."""
    f = getattr(m, "__file__", None) or ""
    return bool(f) and not f.startswith(_SKIP_DIRS) and "site-packages" not in f and "dist-packages" not in f


def mutated_names(code, ins=None):
    """Names the code loads and then calls a mutating method on (`calls.append(...)`), or stores
    an item into (`seen[k] = v`): containers the function writes to are its outputs, not inputs
    that shape the graph, so they are guarded by identity only."""
    out, ins = set(), ins if ins is not None else list(dis.get_instructions(code))
    loads = ("LOAD_GLOBAL", "LOAD_DEREF", "LOAD_NAME")
    for i, x in enumerate(ins):
        if x.opname in ("LOAD_METHOD", "LOAD_ATTR") and x.argval in _MUTATORS and i and ins[i - 1].opname in loads:
            out.add(ins[i - 1].argval)
        elif x.opname in ("STORE_SUBSCR", "DELETE_SUBSCR") and i >= 2 and ins[i - 2].opname in loads:
            out.add(ins[i - 2].argval)  # `box[key] = value`: the container, then a one-instruction key
    return out


def _global_reader(g, name):
    return lambda: g.get(name, _MISSING)


def _cell_reader(cell):
    def read():
        try:
            return cell.cell_contents
        except ValueError:
            return _MISSING
    return read


def _attr_reader(m, name):
    d = m.__dict__
    return lambda: d.get(name, _MISSING)


def _user_objects(v, depth=3):
    if _is_user_object(v):
        yield v
    elif depth and isinstance(v, (list, tuple)):
        for x in v:
            yield from _user_objects(x, depth - 1)
    elif depth and isinstance(v, dict):
        for x in v.values():
            yield from _user_objects(x, depth - 1)


class _Parts(tuple):
    """(name, id) of a module's parameters, buffers and submodules; says which were replaced."""
    __slots__ = ()

    def replaced(self, other):
        old, new = dict(self), dict(other)
        return ", ".join(k for k in dict.fromkeys(list(old) + list(new)) if old.get(k) != new.get(k))


def _parts_reader(m):
    d = m.__dict__
    return lambda: _Parts((k, id(v)) for store in ("_parameters", "_buffers", "_modules") for k, v in d[store].items())


class Reads:
    """Records, while a call is traced, the Python values the user's code can read (see the
    module docs). Use as a context manager around the traced call, then `guards(...)`."""

    def __init__(self, fn):
        self.fn = fn
        self.codes = set()
        self.values = {}   # key -> (label, read, value, written: an output container, guarded by identity)
        self.snaps = {}    # key -> the value frozen when first read: what a guard compares (not what the trace left)
        self.module_snaps = {}   # id(module) -> its attributes frozen when its forward first ran
        self.called = {}   # id -> module whose forward ran (a module reached through an argument too)
        self._prev = None
        self._use_trace = True
        self._collecting = False

    def __enter__(self):
        # A trace function sees only Python calls (a profile function also sees every C call and
        # every return: the trace took twice as long). A debugger or coverage tool owns the trace
        # function: then the profile function is used, and left as it was found afterwards.
        self._use_trace = sys.gettrace() is None
        self._prev = None if self._use_trace else sys.getprofile()
        self._record_function(self.fn, "")
        for root in modules_of(self.fn):   # the modules it reaches directly, as they are before the call
            for m in root.modules():
                self._snapshot(m)
        # Code the garbage collector runs mid-trace (other libraries' gc callbacks, finalizers) is
        # not the user's program: bracket every collection so its reads are not guarded.
        gc.callbacks.insert(0, self._gc_start)
        gc.callbacks.append(self._gc_stop)
        hook = self._hook()
        if self._use_trace:
            sys.settrace(hook)
        else:
            sys.setprofile(hook)
        return self

    def __exit__(self, *exc):
        if self._use_trace:
            sys.settrace(None)
        else:
            sys.setprofile(self._prev)
        for cb in (self._gc_start, self._gc_stop):
            if cb in gc.callbacks:
                gc.callbacks.remove(cb)
        return False

    def _put(self, key, entry):
        """Record a value the traced code reads, frozen now: a call that changes it (`o.t += 1`, a
        counter) leaves a guard that the next call fails, so it traces again and runs the change
        again instead of running a program built on the value the trace left."""
        self.values[key] = entry
        self.snaps[key] = ("id", id(entry[2])) if entry[3] else frozen(entry[2])

    def _snapshot(self, module):
        if id(module) not in self.module_snaps:
            self.module_snaps[id(module)] = {k: frozen(v) for k, v in module.__dict__.items()
                                             if k not in _MODULE_STORES and not isinstance(v, Module)}

    def _gc_start(self, phase, info):   # first callback: a collection begins
        self._collecting = self._collecting or phase == "start"

    def _gc_stop(self, phase, info):    # last callback: it has ended
        self._collecting = self._collecting and phase != "stop"

    def _hook(self):
        """The trace function: it runs on every Python call of the traced code, so it reads only locals."""
        codes, record, called = self.codes, self._record_globals, self.called

        def hook(frame, event, arg):
            if event == "call":
                code = frame.f_code
                if code.co_name == "forward" and not self._collecting:
                    module = frame.f_locals.get("self")
                    if isinstance(module, Module) and id(module) not in called:
                        called[id(module)] = module
                        self._snapshot(module)
                if code not in codes and not self._collecting:
                    codes.add(code)
                    if not code.co_filename.startswith(_SKIP_DIRS):
                        record(code, frame.f_globals)
        hook.records_reads = True   # gradc.internal switches it off in gradc's own machinery
        return hook

    def _record_globals(self, code, g):
        names, mutated = global_names(code)
        for name in names:
            key = ("global", id(g), name)
            if key in self.values:
                continue
            v = g.get(name, _MISSING)
            if isinstance(v, types.ModuleType) and _user_module(v):
                for attr in attributes_read(code, name):
                    a = getattr(v, attr, _MISSING)
                    if not isinstance(a, types.ModuleType) and not callable(a):
                        self._put(("attr", id(v), attr), (f"{name}.{attr}", _attr_reader(v, attr), a, False))
            if v is _MISSING or isinstance(v, types.ModuleType):
                continue
            self._put(key, (f"global {name}", _global_reader(g, name), v, name in mutated))
            if isinstance(v, types.FunctionType):
                self._record_function(v, f"{name}.")

    def _record_function(self, fn, prefix):
        if isinstance(fn, functools.partial):   # its bound arguments, then its function
            self._put(("partial", id(fn)), (f"{prefix}partial arguments", lambda: (fn.args, fn.keywords),
                                                (fn.args, fn.keywords), False))
            return self._record_function(fn.func, prefix)
        owner = getattr(fn, "__self__", fn if not isinstance(fn, types.FunctionType) else None)
        fn = getattr(fn, "__func__", fn)
        if not isinstance(fn, types.FunctionType) and hasattr(type(fn), "__call__"):
            fn = getattr(type(fn).__call__, "__func__", type(fn).__call__)
        code = getattr(fn, "__code__", None)
        if _is_user_object(owner) and code is not None and code.co_argcount:   # trainer.step's self.model
            self.record_attributes(owner, attributes_read(code, code.co_varnames[0], ("LOAD_FAST",)), f"{prefix}self")
        for what, attr in (("default arguments", "__defaults__"), ("keyword defaults", "__kwdefaults__")):
            value = getattr(fn, attr, None)
            if value:   # (a mutable default the function reads: def f(x, w=[2.0]))
                self._put((attr, id(fn)), (f"{prefix}{what}", functools.partial(getattr, fn, attr), value, False))
        mutated = mutated_names(code) if code is not None else set()
        for name, cell in zip(getattr(code, "co_freevars", ()), getattr(fn, "__closure__", None) or ()):
            key = ("cell", id(cell))
            if key in self.values:
                continue
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            if not isinstance(v, types.ModuleType):
                self._put(key, (f"closure variable {prefix}{name}", _cell_reader(cell), v, name in mutated))
            if isinstance(v, types.FunctionType):   # a local helper: what it captures is read too
                self._record_function(v, f"{prefix}{name}.")

    def record_attributes(self, obj, names, label):
        """Guard the attributes `names` of obj (those the code reads; not its methods)."""
        for k in names:
            v = getattr(obj, k, _MISSING)
            if k in getattr(obj, "__dict__", {}) and not isinstance(v, types.ModuleType):
                self._put(("attr", id(obj), k), (f"{label}.{k}", _attr_reader(obj, k), v, False))

    def record_arguments(self, args, kwargs):
        """Config objects among a call's arguments (f(x, cfg)): the attributes the function reads
        off a named one, every attribute of one inside a container."""
        code = getattr(getattr(self.fn, "__func__", self.fn), "__code__", None)
        try:
            named = inspect.signature(self.fn).bind(*args, **kwargs).arguments
        except (TypeError, ValueError):
            named = {}
        for name, value in named.items():
            if _is_user_object(value) and code is not None and name in code.co_varnames:
                self.record_attributes(value, attributes_read(code, name, ("LOAD_FAST",)), name)
            else:
                for v in _user_objects(value):
                    self._put(("arg", id(v)), (f"argument {name} ({type(v).__name__})", lambda v=v: v, v, False))

    def guards(self, root_modules=(), root_label="self"):
        """PythonGuards for what was read; `root_modules`: modules the compiled callable reaches
        directly (named `root_label` when it is the callable itself)."""
        entries = [(label, read, v, self.snaps[key], _deep(v) and not out)
                   for key, (label, read, v, out) in self.values.items()]
        roots = [(root_label if m is self.fn else None, m) for m in root_modules]
        for label, _, v, _ in self.values.values():
            if isinstance(v, Module):
                roots.append((label.split(" ")[-1], v))
        roots += [(None, m) for m in self.called.values()]
        module_entries, seen = [], set()
        read = _names_in(self.codes)
        classes = dict.fromkeys(c for _, root in roots for m in root.modules() for c in type(m).__mro__
                                if not (c.__module__ or "").startswith(("gradc", "builtins")))
        for cls in classes:   # class attributes a forward reads as self.SCALE (changing them is no assignment)
            for k, v in vars(cls).items():
                if type(v) in _SCALARS and not k.startswith("__"):
                    entries.append((f"{cls.__name__}.{k}", functools.partial(vars(cls).get, k, _MISSING), v, frozen(v), False))
        for name, root in roots:
            if id(root) in seen:
                continue
            name = name or next((lb.split(" ")[-1] for lb, _, v, _ in self.values.values() if v is root),
                                type(root).__name__)
            for path, m in root.named_modules(name):
                if id(m) in seen:
                    continue
                seen.add(id(m))
                parts = _parts_reader(m)   # a replaced parameter, buffer or submodule (m[1] = nn.Tanh())
                module_entries.append((f"{path}", parts, parts(),
                                       frozen(parts()), False))
                before = self.module_snaps.get(id(m), {})
                unread = _unread(m, read)
                for k, v in m.__dict__.items():
                    if (k in _MODULE_STORES and k != "training") or isinstance(v, Module) or k in unread:
                        continue
                    now, snap = frozen(v), before.get(k, _MISSING)
                    changed = snap is not _MISSING and snap != now   # set by the traced forward itself
                    module_entries.append((f"{path}.{k}", _attr_reader(m, k), v, snap if changed else now,
                                           _deep(v) or changed))
        return PythonGuards(entries, module_entries)


def same_requires_grad(state):
    """A guard that the state a trace read (parameters, buffers: [(tensor, requires_grad when
    traced, its graph input's attrs)]) keeps that requires_grad: the program's gradients and updates
    were derived from it, so freezing or unfreezing a layer traces again."""
    pairs = [(t, rg) for t, rg, _ in state]

    def guard(flat_args):
        for t, rg in pairs:
            if t.requires_grad is not rg:
                return False
        return True
    guard.explain = lambda: [f"{attrs.get('name', 'a tensor')}.requires_grad: {rg} -> {t.requires_grad}"
                             for t, rg, attrs in state if t.requires_grad is not rg]   # (named after tracing)
    return guard
