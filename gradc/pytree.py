"""Flatten nested tuples/lists/dicts of tensors and Python values, and rebuild them."""
from .tensor import Tensor


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
            return (dict, tuple((k, walk(v)) for k, v in x.items()))
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
    items = [unflatten(v, leaves) for v in body]
    return kind(items) if kind is list else (tuple(items) if kind is tuple else kind(*items))
