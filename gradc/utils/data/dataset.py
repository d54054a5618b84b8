"""Datasets: map-style (`__getitem__` + `__len__`) and iterable (`__iter__`), tensor datasets,
concatenation, subsets and random_split, with torch.utils.data's semantics."""
import bisect
import itertools
import math
from typing import Generic, TypeVar

from ...errors import ArgumentError, ShapeError
from ...generator import default_generator
from ...tensor import Tensor

T_co = TypeVar("T_co", covariant=True)


class Dataset(Generic[T_co]):   # (Dataset[int] in annotations and subclasses, as torch)
    """A map-style dataset: subclasses define __getitem__(index) and usually __len__()."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset that is a stream: subclasses define __iter__(). With DataLoader workers, each worker
    iterates its own copy; use get_worker_info() in __iter__ to give each worker its share."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __getitem__(self, index):
        raise ArgumentError(f"{type(self).__name__} is an IterableDataset: it is iterated, not indexed")

    def __add__(self, other):
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Sample i is (t[i] for t in tensors); all tensors share their first dimension."""

    def __init__(self, *tensors):
        if not tensors:
            raise ArgumentError("TensorDataset needs at least one tensor")
        for t in tensors:
            if not isinstance(t, Tensor):
                raise ArgumentError(f"TensorDataset takes gradc tensors, got {type(t).__name__}; wrap arrays with "
                                    "gradc.tensor(...)")
        n = {t.shape[0] if t.ndim else None for t in tensors}
        if len(n) != 1 or None in n:
            raise ShapeError(f"TensorDataset: the tensors' first dimensions differ or are missing "
                             f"(shapes {[t.shape for t in tensors]}); every tensor needs the same first dimension")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class StackDataset(Dataset):
    """Sample i is a tuple (positional datasets) or dict (keyword datasets) of each dataset's sample i."""

    def __init__(self, *args, **kwargs):
        if bool(args) == bool(kwargs):
            raise ArgumentError("StackDataset takes datasets either positionally or by keyword (not both, not none)")
        self.datasets = list(args) if args else dict(kwargs)
        lengths = {len(d) for d in (self.datasets if args else self.datasets.values())}
        if len(lengths) != 1:
            raise ShapeError(f"StackDataset: the datasets have different lengths {sorted(lengths)}")
        self._length = lengths.pop()

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __len__(self):
        return self._length


class ConcatDataset(Dataset):
    """Map-style datasets one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ArgumentError("ConcatDataset needs at least one dataset")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise ArgumentError("ConcatDataset does not take IterableDatasets; chain them with ChainDataset")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        n = len(self)
        if index < 0:
            if -index > n:
                raise IndexError(f"index {index} is out of range for a dataset of {n} samples")
            index += n
        which = bisect.bisect_right(self.cumulative_sizes, index)
        if which >= len(self.datasets):
            raise IndexError(f"index {index} is out of range for a dataset of {n} samples")
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


class ChainDataset(IterableDataset):
    """Iterable datasets one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise ArgumentError(f"ChainDataset only chains IterableDatasets, got {type(d).__name__}")
            yield from d

    def __len__(self):
        return sum(len(d) for d in self.datasets)


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        inner = getattr(self.dataset, "__getitems__", None)
        if callable(inner):
            return inner([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self):
        return len(self.indices)


def _split_lengths(lengths, n):
    """Absolute lengths, or fractions summing to 1 turned into lengths that sum to n (floors, then
    the remainder one at a time to the first splits, as torch does)."""
    lengths = list(lengths)
    if not lengths or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in lengths):
        raise ArgumentError(f"random_split: lengths must be ints or fractions summing to 1, got {lengths}")
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ArgumentError(f"random_split: fraction at index {i} is {frac}, not in [0, 1]")
        out = [int(math.floor(n * frac)) for frac in lengths]
        for i in range(n - sum(out)):
            out[i % len(out)] += 1
        return out
    for x in lengths:
        if not isinstance(x, int) or x < 0:
            raise ArgumentError(f"random_split: lengths must be non-negative ints or fractions summing to 1, "
                                f"got {lengths}")
    if sum(lengths) != n:
        raise ArgumentError(f"random_split: the lengths sum to {sum(lengths)}, but the dataset has {n} samples")
    return lengths


def random_split(dataset, lengths, generator=default_generator):
    """Split `dataset` into non-overlapping Subsets of the given lengths (or fractions), in a random
    order drawn from `generator` (the global one by default, so gradc.manual_seed fixes it)."""
    n = len(dataset)
    lengths = _split_lengths(lengths, n)
    perm = generator.numpy_generator.permutation(sum(lengths)).tolist()
    out, off = [], 0
    for k in lengths:
        out.append(Subset(dataset, perm[off:off + k]))
        off += k
    return out
