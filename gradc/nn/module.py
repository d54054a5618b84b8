"""nn.Module and nn.Parameter: parameters, buffers and submodules registered by attribute, as in
PyTorch. Modules are written only against tensor ops, so they run eagerly and trace alike."""
import collections
import itertools
import weakref

from .. import dispatch
from .. import dtypes as D
from ..autograd import no_grad
from ..errors import DTypeError, GradcError, StateDictError
from ..tensor import Tensor
from ..functions import tensor as _tensor, zeros_like
from .backward_hooks import call_with_backward_hooks


def _check_name(where, what, name):
    """state_dict keys join names with '.', so a name holding one could not be loaded back."""
    if not isinstance(name, str) or not name or "." in name:
        raise KeyError(f"{where}: {what} name must be a non-empty string without '.', got {name!r}")


_MISSING = object()


class _IncompatibleKeys(collections.namedtuple("IncompatibleKeys", "missing_keys unexpected_keys")):
    """What load_state_dict returns; printed as PyTorch prints it when every key matched."""
    def __repr__(self):
        return "<All keys matched successfully>" if not self.missing_keys and not self.unexpected_keys else \
            super().__repr__()


def _note_write(tracer, module, name):
    """Let the tracer take back this attribute write if its trace is abandoned (a float argument used as a
    number, an eager fallback): the value would be a tensor of a dead trace."""
    d = module.__dict__
    before = d.get(name, _MISSING), d.get("_buffers", {}).get(name, _MISSING)

    def undo():
        plain, buffer = before
        d.pop(name, None) if plain is _MISSING else d.__setitem__(name, plain)
        if buffer is not _MISSING:
            d["_buffers"][name] = buffer
        _EPOCH[0] += 1
    tracer.undo.append(undo)


class Parameter(Tensor):
    """A tensor that a Module registers as trainable. Shares storage with the data it wraps."""
    __slots__ = ()

    def __new__(cls, data=None, requires_grad=True):
        from ..functions import tensor
        src = data if isinstance(data, Tensor) else tensor([] if data is None else data)
        if requires_grad and not src.dtype.is_floating_point:
            raise DTypeError(f"only floating-point tensors can require grad, got a {src.dtype!r} Parameter; "
                             "pass requires_grad=False or convert with .float()")
        p = object.__new__(cls)
        p._data, p._sym = src._data, src._sym   # traced data (a module built while tracing) stays traced
        p.shape, p.dtype, p.device = src.shape, src.dtype, src.device
        p._grad, p._grad_fn, p._version, p._hooks, p._view_of = None, None, [0], None, None
        p.requires_grad = bool(requires_grad) and src.dtype.is_floating_point
        return p

    def __init__(self, data=None, requires_grad=True):
        pass

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, proto):
        return (Parameter, (self.detach(), self.requires_grad))


def indented(text, spaces=2):
    """Every line of text after the first indented by `spaces` (a child's repr inside its parent's)."""
    return text.replace("\n", "\n" + " " * spaces)


def zero_grad_of(p):
    """p.grad set to zeros: in place, as PyTorch does (a reference to it sees the zeros), unless it
    has history or a compiled function is being traced. Zeros, not grad * 0.0: an inf/nan gradient
    (fp16 overflow) would stay nan forever."""
    g = p.grad
    if g.requires_grad or g.grad_fn is not None or dispatch.tracer() is not None:
        p.grad = zeros_like(g)
    else:
        g.zero_()


# Bumped on every change to any module's parameters, buffers, submodules or training flag, so that
# compiled functions can skip re-walking module trees on calls where nothing changed.
_EPOCH = [0]


def structure_epoch():
    return _EPOCH[0]


def structure_changed():
    """Note a change of some module's parameters, buffers or submodules made behind its back
    (gradc.func.functional_call swaps them): compiled calls guarding modules look again."""
    _EPOCH[0] += 1


class RemovableHandle:
    """What register_forward_hook returns: remove() unregisters the hook (also as a context manager)."""
    _ids = itertools.count()

    def __init__(self, module):
        self.id, self._module = next(RemovableHandle._ids), weakref.ref(module)

    def remove(self):
        module = self._module()
        if module is not None:
            module._set_hooks(tuple(h for h in module.__dict__.get("_forward_hooks", ()) if h[0] != self.id))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


class Module:
    """Base class of all layers. Subclasses define forward(); calling the module runs it."""

    def __init__(self):
        object.__setattr__(self, "_parameters", collections.OrderedDict())
        object.__setattr__(self, "_buffers", collections.OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", collections.OrderedDict())
        object.__setattr__(self, "training", True)
        # (handle id, "pre" or "post", hook, with_kwargs): a tuple, replaced on each change, so that a
        # compiled call's guard on the module's attributes sees a hook added or removed
        object.__setattr__(self, "_forward_hooks", ())

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        d = self.__dict__
        _EPOCH[0] += 1
        if isinstance(value, Tensor) and value._sym is not None:   # a traced value (a cached mask, a hidden state)
            _note_write(value._sym[0], self, name)
        if isinstance(value, (Parameter, Module)) and "_parameters" not in d:
            raise GradcError(f"cannot assign {type(value).__name__} '{name}' before Module.__init__() is called; "
                             "call super().__init__() first in your module's __init__")
        if isinstance(value, (Parameter, Module)):
            store = "_parameters" if isinstance(value, Parameter) else "_modules"
            self._forget(name, keep=store)  # a name re-assigned in its own store keeps its place, as in PyTorch
            d[store][name] = value
        elif name in d.get("_buffers", ()):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"buffer '{name}' must be a Tensor or None, got {type(value).__name__}")
            d["_buffers"][name] = value
        elif name in d.get("_parameters", ()):
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter '{name}': "
                                "use nn.Parameter(...) or None")
            d["_parameters"][name] = None
        else:
            self._forget(name)
            object.__setattr__(self, name, value)

    def _forget(self, name, keep=None):
        for store in ("_parameters", "_buffers", "_modules"):
            if store != keep:
                self.__dict__.get(store, {}).pop(name, None)
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        _EPOCH[0] += 1
        for store in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(store, {}):
                del self.__dict__[store][name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, tensor, persistent=True):
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"buffer '{name}' must be a Tensor or None, got {type(tensor).__name__}")
        _check_name("register_buffer", "buffer", name)
        self.__dict__.pop(name, None)
        _EPOCH[0] += 1
        self._buffers[name] = tensor
        (self._non_persistent.discard if persistent else self._non_persistent.add)(name)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"parameter '{name}' must be an nn.Parameter, got {type(param).__name__}")
        _check_name("register_parameter", "parameter", name)
        _EPOCH[0] += 1
        self._parameters[name] = param

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {type(module).__name__} is not a Module subclass (name {name!r}); "
                            "wrap functions in a Module, or pass an OrderedDict of modules to Sequential")
        _check_name("add_module", "module", name)
        _EPOCH[0] += 1
        self._modules[name] = module

    register_module = add_module

    # ------------------------------------------------------------------ traversal
    def named_modules(self, prefix="", memo=None, remove_duplicate=True):
        """(name, module) for this module and every submodule, depth first; a module reached by two
        paths comes once unless remove_duplicate=False (then once per path, as state_dict lists it)."""
        if remove_duplicate:
            memo = set() if memo is None else memo
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name, memo, remove_duplicate)

    def get_submodule(self, target):
        """The submodule at the dotted path `target` ('' is this module)."""
        m = self
        for part in target.split(".") if target else ():
            if part not in m._modules or m._modules[part] is None:
                raise AttributeError(f"{type(m).__name__} has no submodule {part!r} (looking up {target!r})")
            m = m._modules[part]
        return m

    def get_parameter(self, target):
        return self._named_in(target, "_parameters", "parameter")

    def get_buffer(self, target):
        return self._named_in(target, "_buffers", "buffer")

    def _named_in(self, target, table, what):
        """The entry `table` of the submodule at the dotted path `target` holds under its last name."""
        mod, _, name = target.rpartition(".")
        m = self.get_submodule(mod)
        entries = getattr(m, table)
        if name not in entries:
            raise AttributeError(f"{type(m).__name__} has no {what} {name!r} (looking up {target!r})")
        return entries[name]

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        """(name, child), each child once (a module registered under two names comes under the first)."""
        seen = set()
        for n, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield n, m

    def children(self):
        return (m for _, m in self.named_children())

    def _named(self, store, prefix, recurse, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mp, m in mods:
            for n, t in getattr(m, store).items():
                if t is not None and (id(t) not in seen or not remove_duplicate):
                    seen.add(id(t))
                    yield (f"{mp}.{n}" if mp else n), t

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        return (b for _, b in self.named_buffers(recurse=recurse))

    # ------------------------------------------------------------------ state
    def state_dict(self, prefix="", keep_vars=False):
        """Parameters and persistent buffers by dotted name; a module shared by two paths is listed
        under each (as PyTorch does), so checkpoints load either way."""
        out = collections.OrderedDict()
        for mp, m in self.named_modules(prefix.rstrip("."), remove_duplicate=False):
            dot = f"{mp}." if mp else ""
            for n, p in m._parameters.items():
                if p is not None:
                    out[dot + n] = p if keep_vars else p.detach()
            for n, b in m._buffers.items():
                if b is not None and n not in m._non_persistent:
                    out[dot + n] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy values in; every name and shape is checked before anything is written. Load pre-hooks
        and overridden _load_from_state_dict methods (which migrate old keys) run first, on a copy
        of state_dict, as in PyTorch. assign=True puts the checkpoint's tensors in place of the
        module's (their dtype and device; requires_grad stays the module's)."""
        state_dict, errors = self._migrated(state_dict, strict)
        if errors:
            raise StateDictError(f"load_state_dict into {type(self).__name__}: " + "; ".join(errors))
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys: {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected keys: {', '.join(unexpected)}")
            raise StateDictError(f"load_state_dict into {type(self).__name__}: {'; '.join(parts)}. "
                             "Check that the checkpoint was saved from the same architecture, or pass strict=False")
        pairs = []
        for k, target in own.items():
            if k not in state_dict:
                continue
            value = state_dict[k]
            shape = tuple(value.shape)
            if shape != target.shape:
                raise StateDictError(f"load_state_dict: '{k}' has shape {shape} in the checkpoint but "
                                 f"{tuple(target.shape)} in the model")
            # convert before writing anything, so a failing conversion leaves the model untouched
            value = value.detach() if isinstance(value, Tensor) else _tensor(value, dtype=target.dtype)
            pairs.append((k, target, value if assign else value.to(dtype=target.dtype, device=target.device)))
        if assign:
            self._assign(dict((k, v) for k, _, v in pairs))
        else:
            with no_grad():
                for _, target, value in pairs:
                    target.copy_(value)
        return _IncompatibleKeys(missing, unexpected)

    def _migrated(self, state_dict, strict):
        """(a copy of state_dict after every load pre-hook and _load_from_state_dict override ran on
        it, parents first; the error messages they reported)."""
        state_dict, errors = collections.OrderedDict(state_dict), []
        for path, m in self.named_modules(remove_duplicate=False):
            args = (state_dict, f"{path}." if path else "", {}, strict, [], [], errors)
            for _, kind, hook, with_module in m.__dict__.get("_forward_hooks", ()):
                if kind == "load_pre":
                    hook(m, *args) if with_module else hook(*args)
            if type(m)._load_from_state_dict is not Module._load_from_state_dict:
                m._load_from_state_dict(*args)
        return state_dict, errors

    def _assign(self, values):
        for mp, m in self.named_modules(remove_duplicate=False):
            dot = f"{mp}." if mp else ""
            for n, p in list(m._parameters.items()):
                if p is not None and dot + n in values:
                    m._parameters[n] = Parameter(values[dot + n], requires_grad=p.requires_grad)
            for n, b in list(m._buffers.items()):
                if b is not None and dot + n in values:
                    m._buffers[n] = values[dot + n]
        _EPOCH[0] += 1

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """PyTorch's per-module step of loading, the place to migrate old keys: an override renames or
        converts entries of state_dict under `prefix`, then calls super(). gradc reads and checks the
        whole (migrated) state dict at once, before writing anything, so this base step has nothing
        left to do."""

    def register_load_state_dict_pre_hook(self, hook):
        """hook(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
        error_msgs) runs before the keys are read; it may rename or convert entries of state_dict.
        A message it appends to error_msgs makes loading fail."""
        return self._add_hook("load_pre", hook, False, True)

    def _register_load_state_dict_pre_hook(self, hook, with_module=False):
        return self._add_hook("load_pre", hook, False, with_module)

    # ------------------------------------------------------------------ modes and devices
    def train(self, mode=True):
        _EPOCH[0] += 1
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none:   # also when already None: see Optimizer.zero_grad
                p.grad = None
            elif p.grad is not None:
                zero_grad_of(p)

    def _apply_to_tensors(self, fn):
        """Convert parameters and buffers, keeping each Parameter object (optimizers hold them)."""
        _EPOCH[0] += 1
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    new = fn(p.detach())
                    p._data, p.shape, p.dtype, p.device = new._data, new.shape, new.dtype, new.device
                    if not p.dtype.is_floating_point:
                        p.requires_grad = False
                    if p.grad is not None:
                        p.grad = fn(p.grad)
            for n, b in list(m._buffers.items()):
                if b is not None:
                    m._buffers[n] = fn(b)
        return self

    def to(self, *args, memory_format=None, **kwargs):
        def convert(t):   # (a channels-last format applies to the 4-D and 5-D tensors, as torch's)
            layout = {"memory_format": memory_format} if memory_format is not None and t.ndim in (4, 5) else {}
            out = t.to(*args, **kwargs, **layout)
            # dtype changes apply to floating tensors only (integer buffers keep their type)
            return out if t.dtype.is_floating_point or out.dtype is t.dtype else t.to(device=out.device)
        return self._apply_to_tensors(convert)

    def to_empty(self, *, device=None, recurse=True):
        """The parameters and buffers moved to `device` as uninitialised tensors of their shapes (what
        PyTorch does after building a model on the meta device; re-initialise them afterwards)."""
        from ..functions import empty_like
        return self._apply_to_tensors(lambda t: empty_like(t, device=device if device is not None else t.device))

    def cuda(self, device=None, non_blocking=False):
        return self.to("cuda" if device is None else f"cuda:{int(device)}")

    def cpu(self):
        return self.to("cpu")

    def float(self):
        return self.to(D.float32)

    def half(self):
        return self.to(D.float16)

    def double(self):
        return self.to(D.float64)

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise GradcError(f"{type(self).__name__} has no forward(); define forward(self, ...) in your module")

    def __call__(self, *args, **kwargs):
        hooks = self.__dict__.get("_forward_hooks")
        if not hooks:
            return self.forward(*args, **kwargs)
        if hooks[0][1] == "compiled":   # Module.compile(): the compiled call runs the rest (_call_uncompiled)
            return hooks[0][2](*args, **kwargs)
        return self._call_with_hooks(hooks, args, kwargs)

    def _call_uncompiled(self, *args, **kwargs):
        hooks = tuple(h for h in self.__dict__.get("_forward_hooks", ()) if h[1] != "compiled")
        return self._call_with_hooks(hooks, args, kwargs) if hooks else self.forward(*args, **kwargs)

    def _call_with_hooks(self, hooks, args, kwargs):
        for _, kind, hook, with_kwargs in hooks:
            if kind == "pre":
                res = hook(self, args, kwargs) if with_kwargs else hook(self, args)
                if res is not None:
                    if with_kwargs:
                        args, kwargs = res
                    else:
                        args = res if isinstance(res, tuple) else (res,)
        backward = [h for h in hooks if h[1] in ("backward", "backward_pre")]
        if backward:   # (the output side sees the result the forward hooks return, as in PyTorch)
            return call_with_backward_hooks(self, lambda *a: self._forward_and_hooks(hooks, a, kwargs), args,
                                            [h[2] for h in backward if h[1] == "backward_pre"],
                                            [h[2] for h in backward if h[1] == "backward"])
        return self._forward_and_hooks(hooks, args, kwargs)

    def _forward_and_hooks(self, hooks, args, kwargs):
        out = self.forward(*args, **kwargs)
        for _, kind, hook, with_kwargs in hooks:
            if kind == "post":
                res = hook(self, args, kwargs, out) if with_kwargs else hook(self, args, out)
                if res is not None:
                    out = res
        return out

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """hook(module, args) (or (module, args, kwargs) with with_kwargs) runs before forward; a
        value it returns replaces the arguments. Returns a handle whose remove() unregisters it."""
        return self._add_hook("pre", hook, prepend, with_kwargs)

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False):
        """hook(module, args, output) (or (module, args, kwargs, output)) runs after forward; a value
        it returns replaces the output. Returns a handle whose remove() unregisters it."""
        return self._add_hook("post", hook, prepend, with_kwargs)

    def register_full_backward_hook(self, hook, prepend=False):
        """hook(module, grad_input, grad_output) runs once the gradients with respect to the module's
        tensor arguments are computed (None for those that need none); a tuple it returns replaces
        grad_input. Returns a handle whose remove() unregisters it."""
        return self._add_hook("backward", hook, prepend, False)

    def register_full_backward_pre_hook(self, hook, prepend=False):
        """hook(module, grad_output) runs once the gradients with respect to the module's outputs are
        computed, before any of its backward; a tuple it returns replaces grad_output."""
        return self._add_hook("backward_pre", hook, prepend, False)

    def register_backward_hook(self, hook):
        """PyTorch's deprecated form; here it has register_full_backward_hook's meaning (grad_input is
        with respect to the module's arguments, not to the inputs of its last op)."""
        return self._add_hook("backward", hook, False, False)

    def _add_hook(self, kind, hook, prepend, with_kwargs):
        handle = RemovableHandle(self)
        entry = ((handle.id, kind, hook, bool(with_kwargs)),)
        hooks = self.__dict__.get("_forward_hooks", ())
        head = hooks[:1] if hooks and hooks[0][1] == "compiled" else ()   # (Module.compile's entry stays first)
        hooks = hooks[len(head):]
        self._set_hooks(head + (entry + hooks if prepend else hooks + entry))
        return handle

    def _set_hooks(self, hooks):
        object.__setattr__(self, "_forward_hooks", hooks)
        _EPOCH[0] += 1  # a compiled call traced with other hooks must trace again

    def extra_repr(self):
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):   # PyTorch's layout: extra_repr's lines, then one line per child, indented
        extra = self.extra_repr()
        extra = extra.split("\n") if extra else []
        children = [f"({n}): " + indented(repr(m)) for n, m in self._modules.items()]
        if len(extra) == 1 and not children:
            return f"{self._get_name()}({extra[0]})"
        lines = extra + children
        return f"{self._get_name()}(" + ("\n  " + "\n  ".join(lines) + "\n" if lines else "") + ")"
