"""Turning samples into batches: default_collate stacks tensors, NumPy arrays and numbers into
gradc tensors with a leading batch dimension and recurses into dicts, tuples and lists (as
torch's); default_convert (batch_size=None) turns NumPy arrays into tensors and keeps the rest."""
import collections.abc

import numpy as np

from ... import dtypes as D
from ...errors import ArgumentError, DTypeError, ShapeError
from ...functions import stack, tensor
from ...tensor import Tensor

_BAD_KIND = "default_collate: a batch must hold tensors, NumPy arrays, numbers, strings, dicts or lists; found {}"


def _numpy_ok(arr):
    if arr.dtype.kind in "OUSVMm":
        raise DTypeError(_BAD_KIND.format(f"a NumPy array of dtype {arr.dtype}") +
                         " (gradc tensors hold bool, integer and floating data)")


def _rebuild(elem, values):
    """A mapping or sequence of the sample's own type when it can be built from `values`."""
    try:
        return type(elem)(values)
    except TypeError:  # e.g. a type whose constructor takes other arguments
        return dict(values) if isinstance(values, dict) else list(values)


def default_collate(batch):
    if not batch:
        raise ArgumentError("default_collate got an empty batch")
    elem = batch[0]
    if isinstance(elem, Tensor):
        shapes = {t.shape for t in batch}
        if len(shapes) > 1:
            raise ShapeError(f"default_collate: the samples' tensors have different shapes {sorted(shapes)}; "
                             "pad them to one shape or pass a collate_fn")
        return stack(list(batch), 0)
    if isinstance(elem, np.ndarray):
        _numpy_ok(elem)
        shapes = {np.shape(a) for a in batch}
        if len(shapes) > 1:
            raise ShapeError(f"default_collate: the samples' arrays have different shapes {sorted(shapes)}; "
                             "pad them to one shape or pass a collate_fn")
        return tensor(np.stack(batch))
    if isinstance(elem, np.generic):
        arr = np.array(batch)
        _numpy_ok(arr)
        return tensor(arr)
    if isinstance(elem, float):
        return tensor(batch, dtype=D.float64)
    if isinstance(elem, int):  # bool included: all-bool batches become a bool tensor
        return tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        keys = list(elem)
        for s in batch:
            if not isinstance(s, collections.abc.Mapping) or set(s) != set(keys):
                raise ArgumentError(f"default_collate: the samples are dicts with different keys ({keys} and "
                                    f"{list(s) if isinstance(s, collections.abc.Mapping) else type(s).__name__})")
        return _rebuild(elem, {k: default_collate([s[k] for s in batch]) for k in keys})
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return type(elem)(*(default_collate(s) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        n = len(elem)
        if any(len(s) != n for s in batch):
            raise ShapeError("default_collate: each sample in the batch must be a sequence of the same length, "
                             f"got lengths {sorted({len(s) for s in batch})}")
        columns = [default_collate(s) for s in zip(*batch)]
        return columns if isinstance(elem, tuple) else _rebuild(elem, columns)  # tuples give lists, as torch
    raise DTypeError(_BAD_KIND.format(type(elem).__name__))


def default_convert(data):
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        return data if data.dtype.kind in "OUSVMm" else tensor(data)
    if isinstance(data, np.generic):
        return data if np.dtype(type(data)).kind in "OUSVMm" else tensor(data)
    if isinstance(data, collections.abc.Mapping):
        return _rebuild(data, {k: default_convert(v) for k, v in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild(data, [default_convert(d) for d in data])
    return data
