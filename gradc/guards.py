"""Guards on the Python state a traced call read, so that a compiled program never runs on a
stale Python value.

While a call is traced, `Reads` watches which of the user's code objects run (a trace hook,
active only while tracing) and records, for each, the globals its code names, and the closure
cells of the compiled function (and of functions found in those globals). Modules reached that
way (and the compiled module itself) contribute their non-tensor attributes (`Dropout.p`,
`LayerNorm.eps`, a float factor). Each recorded value becomes one guard entry:

  scalars (int, float, bool, str, None)     equal value and type
  tensors, modules, functions, gradc objects same object (a rebound global tensor retraces)
  dict / list / tuple / set, user objects   same contents, compared as a frozen copy (up to
                                             MAX_LEAVES values; a bigger container is compared
                                             by identity and length)

Python modules (`np`, `F`) are not guarded. Optimizer hyper-parameters and GradScaler state are
not guarded here: they are program inputs (see gradc.tracer). A failed guard names what changed,
e.g. `global SCALE: 1.0 -> 0.25` or `model.drop.p: 0.5 -> 0.0`.

Cost per call: an unchanged global or cell is one dict lookup or cell read and an identity test;
a container is re-frozen and compared; module attributes are compared only when some module was
assigned to since the last check (nn.Module counts assignments: `structure_epoch`)."""
import dis
import gc
import math
import os
import reprlib
import sys
import sysconfig
import types

from .nn.module import Module, structure_epoch
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


def freeze(v, budget=None):
    """A comparable copy of `v`: scalars by value, containers by contents, objects by identity."""
    budget = [MAX_LEAVES] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise _Budget
    t = type(v)
    if t in _SCALARS:
        return (t, "nan") if t is float and math.isnan(v) else (t, v)
    if t in (list, tuple):
        return (t, tuple(freeze(x, budget) for x in v))
    if t is dict:
        return (t, tuple((freeze(k, budget), freeze(x, budget)) for k, x in v.items()))
    if t in (set, frozenset):
        try:
            return (t, frozenset(freeze(x, budget) for x in v))
        except TypeError:
            return ("id", id(v), len(v))
    if _is_user_object(v):  # a config object: its attributes, one level deep
        return ("obj", id(v), tuple((k, _shallow(x)) for k, x in vars(v).items()))
    return ("id", id(v))


def _shallow(v):
    return (type(v), v) if type(v) in _SCALARS else ("id", id(v))


def _is_user_object(v):
    t = type(v)
    return (hasattr(v, "__dict__") and not isinstance(v, (type, types.FunctionType, types.MethodType,
                                                          types.ModuleType, Tensor, Module))
            and not (t.__module__ or "").startswith(("gradc", "numpy", "builtins")))


def frozen(v):
    try:
        return freeze(v)
    except _Budget:  # too big to compare per call: identity and length
        return ("big", id(v), len(v) if hasattr(v, "__len__") else None)


def _deep(v):
    return type(v) in (list, dict, set) or _is_user_object(v)


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
                out.append(_changed(label, obj, cur) if not deep else f"{label}: contents changed "
                           f"({_short.repr(cur)})")
        return out


def global_names(code):
    """The globals the code reads or writes (co_names also holds every attribute name it uses:
    `w.data` reads no global `data`), and, of those, the ones it mutates (`mutated_names`)."""
    ins = list(dis.get_instructions(code))
    names = {x.argval for x in ins if x.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL")}
    return names, mutated_names(code, ins)


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


class Reads:
    """Records, while a call is traced, the Python values the user's code can read (see the
    module docs). Use as a context manager around the traced call, then `guards(...)`."""

    def __init__(self, fn):
        self.fn = fn
        self.codes = set()
        self.values = {}   # key -> (label, read, value)
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

    def _gc_start(self, phase, info):   # first callback: a collection begins
        self._collecting = self._collecting or phase == "start"

    def _gc_stop(self, phase, info):    # last callback: it has ended
        self._collecting = self._collecting and phase != "stop"

    def _hook(self):
        """The trace function: it runs on every Python call of the traced code, so it reads only locals."""
        codes, record = self.codes, self._record_globals

        def hook(frame, event, arg):
            if event == "call":
                code = frame.f_code
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
            if v is _MISSING or isinstance(v, types.ModuleType):
                continue
            self.values[key] = (f"global {name}", _global_reader(g, name), v, name in mutated)
            if isinstance(v, types.FunctionType):
                self._record_function(v, f"{name}.")

    def _record_function(self, fn, prefix):
        fn = getattr(fn, "__func__", fn)
        code = getattr(fn, "__code__", None)
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
                self.values[key] = (f"closure variable {prefix}{name}", _cell_reader(cell), v, name in mutated)

    def guards(self, root_modules=(), root_label="self"):
        """PythonGuards for what was read; `root_modules`: modules the compiled callable reaches
        directly (named `root_label` when it is the callable itself)."""
        entries = [(label, read, v, ("id", id(v)) if out else frozen(v), _deep(v) and not out)
                   for label, read, v, out in self.values.values()]
        roots = [(root_label if m is self.fn else None, m) for m in root_modules]
        for label, _, v, _ in self.values.values():
            if isinstance(v, Module):
                roots.append((label.split(" ")[-1], v))
        module_entries, seen = [], set()
        for name, root in roots:
            if id(root) in seen:
                continue
            name = name or next((lb.split(" ")[-1] for lb, _, v, _ in self.values.values() if v is root),
                                type(root).__name__)
            for path, m in root.named_modules(name):
                if id(m) in seen:
                    continue
                seen.add(id(m))
                for k, v in m.__dict__.items():
                    if k in _MODULE_STORES or isinstance(v, Module) or callable(v):
                        continue
                    module_entries.append((f"{path}.{k}", _attr_reader(m, k), v, frozen(v), _deep(v)))
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
