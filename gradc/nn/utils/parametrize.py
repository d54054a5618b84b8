"""torch.nn.utils.parametrize: a parameter or buffer computed by modules from an `original`.

register_parametrization(module, "weight", P) moves `module.weight` to
`module.parametrizations.weight.original` (state-dict key `parametrizations.weight.original`;
`original0`, `original1`, ... when P.right_inverse returns several tensors) and makes
`module.weight` a property that returns P(original) on every read (once per `cached()` block).
Assigning `module.weight = X` stores P.right_inverse(X). As in PyTorch, the module's class is
swapped for a subclass `Parametrized<Class>` that holds the property, and swapped back when the
last parametrization is removed."""
import contextlib
import copy

from ...errors import GradcError
from ...grad_mode import no_grad
from ...tensor import Tensor
from ..container import ModuleDict
from ..layers import ModuleList
from ..module import Module, Parameter

_CACHE = {}
_CACHE_DEPTH = [0]


@contextlib.contextmanager
def cached():
    """Inside this block each parametrized tensor is computed once, on its first read."""
    _CACHE_DEPTH[0] += 1
    try:
        yield
    finally:
        _CACHE_DEPTH[0] -= 1
        if not _CACHE_DEPTH[0]:
            _CACHE.clear()


def _register(module, name, value):
    if isinstance(value, Parameter):
        module.register_parameter(name, value)
    else:
        module.register_buffer(name, value)


def _set_in_place(target, value):
    """Make `target` (kept: optimizers hold it) hold `value`."""
    with no_grad():
        if tuple(target.shape) == tuple(value.shape) and target.dtype == value.dtype:
            target.copy_(value)
        else:
            value = value.detach()
            target._data, target.shape, target.dtype = value._data, value.shape, value.dtype


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor, applied in order, and the original(s) they start from."""

    def __init__(self, modules, original, unsafe=False):
        super().__init__(modules)
        self.unsafe = unsafe
        shape, dtype = tuple(original.shape), original.dtype
        with no_grad():
            new = original
            for m in reversed(list(self)):
                if hasattr(m, "right_inverse"):
                    try:
                        new = m.right_inverse(new)
                    except NotImplementedError:
                        pass
        if not isinstance(new, (Tensor, list, tuple)):
            raise GradcError(f"'right_inverse' must return a tensor or a sequence of tensors, got "
                             f"{type(new).__name__}")
        self.is_tensor = isinstance(new, Tensor)
        self.ntensors = 1 if self.is_tensor else len(new)
        if self.is_tensor:
            if new.dtype != original.dtype:
                raise GradcError(f"when right_inverse returns one tensor it must keep the original's dtype "
                                 f"({original.dtype}), got {new.dtype}")
            _set_in_place(original, new)
            _register(self, "original", original)
        else:
            for i, t in enumerate(new):
                if not isinstance(t, Tensor):
                    raise GradcError(f"right_inverse returned a sequence whose item {i} is a "
                                     f"{type(t).__name__}, not a tensor")
                t = t.detach()
                if isinstance(original, Parameter):
                    t = Parameter(t, original.requires_grad)
                _register(self, f"original{i}", t)
        if not unsafe:
            z = self()
            if not isinstance(z, Tensor) or tuple(z.shape) != shape or z.dtype != dtype:
                raise GradcError(f"a parametrization must keep the tensor's shape and dtype (registering it changes "
                                 f"{shape} {dtype} to {tuple(getattr(z, 'shape', ()))} {getattr(z, 'dtype', None)}); "
                                 "pass unsafe=True to allow it")

    def right_inverse(self, value):
        with no_grad():
            for m in reversed(list(self)):
                if not hasattr(m, "right_inverse"):
                    raise GradcError(f"parametrization {type(m).__name__} does not implement right_inverse, so the "
                                     "parametrized tensor cannot be assigned to")
                value = m.right_inverse(value)
            if self.is_tensor:
                if not isinstance(value, Tensor):
                    raise GradcError(f"right_inverse must return a tensor here, got {type(value).__name__}")
                _set_in_place(self.original, value)
            else:
                if len(value) != self.ntensors:
                    raise GradcError(f"right_inverse returned {len(value)} tensors, expected {self.ntensors}")
                for i, t in enumerate(value):
                    _set_in_place(getattr(self, f"original{i}"), t)

    def forward(self):
        mods = list(self)
        x = mods[0](self.original) if self.is_tensor else \
            mods[0](*[getattr(self, f"original{i}") for i in range(self.ntensors)])
        for m in mods[1:]:
            x = m(x)
        return x


def is_parametrized(module, tensor_name=None):
    ps = module.__dict__.get("_modules", {}).get("parametrizations")
    if not isinstance(ps, ModuleDict):
        return False
    return len(ps) > 0 if tensor_name is None else tensor_name in ps


def type_before_parametrizations(module):
    return type(module).__bases__[0] if is_parametrized(module) else type(module)


def _getstate(self):
    raise GradcError(f"a parametrized module ({type(self).__name__}) cannot be pickled: its class is made at run "
                     "time. Save its state_dict() instead, and load it into a module given the same "
                     "parametrizations")


def _deepcopy(self, memo):
    if id(self) in memo:
        return memo[id(self)]
    replica = type(self).__new__(type(self))
    memo[id(self)] = replica
    object.__setattr__(replica, "__dict__", copy.deepcopy(self.__dict__, memo))
    return replica


def _inject_property(module, name):
    def get(self):
        key = (id(self), name)
        if _CACHE_DEPTH[0]:
            if key not in _CACHE:
                _CACHE[key] = self.parametrizations[name]()
            return _CACHE[key]
        return self.parametrizations[name]()

    def set_(self, value):
        self.parametrizations[name].right_inverse(value)
    setattr(type(module), name, property(get, set_))


def register_parametrization(module, tensor_name, parametrization, *, unsafe=False):
    """Parametrize `module.<tensor_name>` (a parameter, a buffer, or an already parametrized
    tensor, which then gets one more parametrization applied after the others)."""
    if not isinstance(parametrization, Module):
        raise GradcError(f"register_parametrization: the parametrization must be an nn.Module, got "
                         f"{type(parametrization).__name__}")
    parametrization.train(module.training)
    if is_parametrized(module, tensor_name):
        if not unsafe:
            y = getattr(module, tensor_name)
            x = parametrization(y)
            if not isinstance(x, Tensor) or tuple(x.shape) != tuple(y.shape) or x.dtype != y.dtype:
                raise GradcError(f"register_parametrization: the new parametrization changes '{tensor_name}' from "
                                 f"{tuple(y.shape)} {y.dtype}; pass unsafe=True to allow it")
        module.parametrizations[tensor_name].append(parametrization)
        module.parametrizations[tensor_name].unsafe |= unsafe
        return module
    own = dict(module.named_parameters(recurse=False))
    own.update(module.named_buffers(recurse=False))
    if tensor_name not in own:
        raise GradcError(f"register_parametrization: {type(module).__name__} has no parameter, buffer or "
                         f"parametrized tensor named '{tensor_name}'")
    original = getattr(module, tensor_name)
    plist = ParametrizationList([parametrization], original, unsafe=unsafe)
    delattr(module, tensor_name)
    if not is_parametrized(module):
        cls = type(module)
        module.__class__ = type(f"Parametrized{cls.__name__}", (cls,),
                                {"__getstate__": _getstate, "__deepcopy__": _deepcopy})
        module.parametrizations = ModuleDict()
    _inject_property(module, tensor_name)
    module.parametrizations[tensor_name] = plist
    return module


def remove_parametrizations(module, tensor_name, leave_parametrized=True):
    """Remove every parametrization of `module.<tensor_name>`: it becomes a plain parameter (or buffer)
    again, holding the parametrized value (leave_parametrized=True) or the original."""
    if not is_parametrized(module, tensor_name):
        raise GradcError(f"remove_parametrizations: {type(module).__name__} has no parametrization on "
                         f"'{tensor_name}'")
    plist = module.parametrizations[tensor_name]
    if plist.is_tensor:
        original = plist.original
        if leave_parametrized:
            with no_grad():
                t = getattr(module, tensor_name)
            _set_in_place(original, t)
    else:
        if not leave_parametrized:
            raise GradcError("remove_parametrizations: leave_parametrized=False needs a tensor parametrized from a "
                             "single original; this one is computed from several")
        with no_grad():
            t = getattr(module, tensor_name)
        original = Parameter(t.detach(), plist.original0.requires_grad) \
            if isinstance(plist.original0, Parameter) else t.detach()
    delattr(type(module), tensor_name)
    del module.parametrizations[tensor_name]
    _register(module, tensor_name, original)
    if not is_parametrized(module):
        delattr(module, "parametrizations")
        module.__class__ = type(module).__bases__[0]
    return module


def transfer_parametrizations_and_params(from_module, to_module, tensor_name=None):
    """Give `to_module` the parametrizations of `from_module` (all, or those of `tensor_name`), sharing
    the original parameters themselves (as PyTorch does: training either trains both)."""
    if not is_parametrized(from_module):
        return to_module
    names = list(from_module.parametrizations) if tensor_name is None else [tensor_name]
    for name in names:
        if not is_parametrized(from_module, name):
            raise GradcError(f"transfer_parametrizations_and_params: {type(from_module).__name__} has no "
                             f"parametrization on '{name}'")
        source = from_module.parametrizations[name]
        if not hasattr(to_module, name):
            setattr(to_module, name, Parameter(getattr(from_module, name).detach()))
        for p in source:
            register_parametrization(to_module, name, p)
        target = to_module.parametrizations[name]
        if source.is_tensor:
            target.original = source.original
        else:
            for i in range(source.ntensors):
                setattr(target, f"original{i}", getattr(source, f"original{i}"))
    return to_module
