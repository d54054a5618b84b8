"""Containers beyond Sequential/ModuleList: ModuleDict, ParameterList, ParameterDict, and the
shape modules Unflatten. Registration goes through Module, so state dicts, .to() and optimizers
see every entry under its key (PyTorch's names: 'layers.0.weight', 'scales.alpha')."""
import collections

from ..errors import ShapeError
from ..shapes import Size
from .module import Module, Parameter


class ModuleDict(Module):
    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(str(key), module)

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key):
        m = self._modules[key]
        del self._modules[key]
        return m

    def clear(self):
        self._modules.clear()

    def update(self, modules):
        items = modules.items() if isinstance(modules, (dict, collections.OrderedDict, ModuleDict)) else modules
        for k, m in items:
            self[k] = m


class ParameterList(Module):
    def __init__(self, values=None):
        super().__init__()
        for v in values or ():
            self.append(v)

    @staticmethod
    def _as_param(value):
        return value if isinstance(value, Parameter) else Parameter(value)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ParameterList(list(self._parameters.values())[i])
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"ParameterList index {i} is out of range for {n} parameters")
        return self._parameters[str(i % n)]

    def __setitem__(self, i, value):
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"ParameterList index {i} is out of range for {n} parameters")
        self.register_parameter(str(i % n), self._as_param(value))

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def append(self, value):
        self.register_parameter(str(len(self)), self._as_param(value))
        return self

    def extend(self, values):
        for v in values:
            self.append(v)
        return self

    def extra_repr(self):
        return "\n".join(f"  ({i}): {_entry(p, repr(p.dtype))}" for i, p in enumerate(self))


class ParameterDict(Module):
    def __init__(self, parameters=None):
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key):
        return self._parameters[key]

    def __setitem__(self, key, value):
        self.register_parameter(str(key), value if isinstance(value, Parameter) else Parameter(value))

    def __delitem__(self, key):
        del self._parameters[key]

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def __contains__(self, key):
        return key in self._parameters

    def keys(self):
        return self._parameters.keys()

    def values(self):
        return self._parameters.values()

    def items(self):
        return self._parameters.items()

    def get(self, key, default=None):
        return self._parameters.get(key, default)

    def pop(self, key):
        p = self._parameters[key]
        del self._parameters[key]
        return p

    def update(self, parameters):
        # a plain dict's entries in sorted key order, an ordered one's (or pairs) as given: PyTorch's rule
        items = (parameters.items() if isinstance(parameters, (collections.OrderedDict, ParameterDict)) else
                 sorted(parameters.items()) if hasattr(parameters, "items") else parameters)
        for k, v in items:
            self[k] = v

    def extra_repr(self):
        return "\n".join(f"  ({k}): {_entry(p, p.type())}" for k, p in self.items())


def _entry(p, kind):
    size = "x".join(str(n) for n in p.shape)
    device = f" ({p.device})" if p.device.type == "cuda" else ""
    return f"{'Parameter' if isinstance(p, Parameter) else 'Tensor'} containing: [{kind} of size {size}{device}]"


class Unflatten(Module):
    """Expands dim `dim` into `unflattened_size` (one entry may be -1)."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, unflattened_size if isinstance(unflattened_size, Size) else tuple(unflattened_size)

    def forward(self, input):
        d = self.dim if self.dim >= 0 else input.ndim + self.dim
        if not 0 <= d < input.ndim:
            raise ShapeError(f"Unflatten: dim {self.dim} is out of range for input shape {tuple(input.shape)}")
        return input.reshape(input.shape[:d] + self.unflattened_size + input.shape[d + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
