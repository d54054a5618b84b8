"""Flatten nested tuples/lists/dicts/dataclasses of tensors and Python values, and rebuild them."""
import dataclasses
from collections import defaultdict

from .tensor import Tensor


class DataclassKind:
    """The container kind of a dataclass instance: its class and field names; called with the
    fields' values (as a namedtuple class is), it builds a new instance without running __init__."""
    __slots__ = ("cls", "_fields", "__name__")

    def __init__(self, cls, names):
        self.cls, self._fields, self.__name__ = cls, names, cls.__name__

    def __call__(self, *values):
        obj = object.__new__(self.cls)
        for name, v in zip(self._fields, values):
            object.__setattr__(obj, name, v)   # (frozen dataclasses too)
        return obj

    def __eq__(self, other):
        return isinstance(other, DataclassKind) and (self.cls, self._fields) == (other.cls, other._fields)

    def __hash__(self):
        return hash((self.cls, self._fields))


class DictKind:
    """The container kind of a dict subclass (OrderedDict, defaultdict, a ModelOutput-style
    dataclass over OrderedDict): rebuilt as that class from its items (a defaultdict keeps its
    factory; a dataclass takes them as keywords)."""
    __slots__ = ("cls", "factory", "__name__")

    def __init__(self, cls, factory):
        self.cls, self.factory, self.__name__ = cls, factory, cls.__name__

    def __call__(self, items):
        if self.factory is not None:
            out = self.cls(self.factory)
            out.update(items)
            return out
        return self.cls(**dict(items)) if dataclasses.is_dataclass(self.cls) else self.cls(items)

    def __eq__(self, other):
        return isinstance(other, DictKind) and (self.cls, self.factory) == (other.cls, other.factory)

    def __hash__(self):
        return hash((self.cls, self.factory))


def dict_kind(x):
    """`dict` for a plain dict, else its DictKind."""
    return dict if type(x) is dict else DictKind(type(x), x.default_factory if isinstance(x, defaultdict) else None)


def flatten(tree, numbers=False):
    """Returns (leaves, spec); tensors are leaves, everything else is kept in the spec. With
    `numbers`, Python floats (exactly float) are leaves too, marked "N" in the spec."""
    leaves = []

    def walk(x):
        if isinstance(x, Tensor):
            leaves.append(x)
            return ("T", len(leaves) - 1)
        if numbers and type(x) is float:
            leaves.append(x)
            return ("N", len(leaves) - 1)
        if isinstance(x, (tuple, list)):
            return (type(x), tuple(walk(v) for v in x))
        if isinstance(x, dict):
            return (dict_kind(x), tuple((k, walk(v)) for k, v in x.items()))
        if dataclasses.is_dataclass(x) and not isinstance(x, type):   # a batch dataclass: its fields
            names = tuple(f.name for f in dataclasses.fields(x))
            return (DataclassKind(type(x), names), tuple(walk(getattr(x, n)) for n in names))
        return ("V", x)

    return leaves, walk(tree)


def unflatten(spec, leaves):
    kind, body = spec
    if kind == "T" or kind == "N":
        return leaves[body]
    if kind == "V":
        return body
    if kind is dict:
        return {k: unflatten(v, leaves) for k, v in body}
    if isinstance(kind, DictKind):
        return kind([(k, unflatten(v, leaves)) for k, v in body])
    items = [unflatten(v, leaves) for v in body]
    if kind is list or kind is tuple:
        return kind(items)
    return kind(*items) if hasattr(kind, "_fields") else kind(items)   # a namedtuple, or a tuple subclass (Size)


def spec_key(spec):
    """A hashable key of a pytree spec: its structure and Python values (unhashable ones by identity)."""
    kind, body = spec
    if kind == "T":
        return "T"
    if kind == "N":   # a float that is a program input: its value is not part of the key
        return "N"
    if kind == "V":
        try:
            hash(body)
            return ("V", type(body).__name__, body)
        except TypeError:
            return ("V", type(body).__name__, id(body))
    if kind is dict or isinstance(kind, DictKind):
        return (kind, tuple((k, spec_key(v)) for k, v in body))
    return (getattr(kind, "__name__", str(kind)), tuple(spec_key(v) for v in body))


def holds(spec, kind):
    """Whether a pytree spec keeps a value of type `kind` among its Python values."""
    tag, body = spec
    if tag == "V":
        return isinstance(body, kind)
    if tag in ("T", "N"):
        return False
    return any(holds(v, kind) for v in (body if not is_dict(tag) else (v for _, v in body)))


def is_dict(kind):
    return kind is dict or isinstance(kind, DictKind)
