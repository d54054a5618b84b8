"""Samplers: the order in which a DataLoader visits a map-style dataset, and how indices are
grouped into batches (torch.utils.data's classes and semantics). Random samplers draw from a
gradc.Generator; without one, each pass draws a fresh seed from the global generator, so
gradc.manual_seed makes every epoch's order reproducible."""
from typing import Generic

import numpy as np

from ...errors import ArgumentError
from ...generator import Generator, default_generator
from .dataset import T_co


class Sampler(Generic[T_co]):   # (Sampler[int], as torch)
    """Iterates indices (or, for a batch sampler, lists of indices)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


def _pass_generator(generator):
    """The generator one pass draws from: the given one, or a fresh one seeded from the global
    generator (one draw per pass, as torch's RandomSampler does)."""
    if generator is not None:
        return generator.numpy_generator
    seed = int(default_generator.numpy_generator.integers(0, 1 << 63))
    return Generator().manual_seed(seed).numpy_generator


def _check_generator(generator, who):
    if generator is not None and not isinstance(generator, Generator):
        raise ArgumentError(f"{who}: generator must be a gradc.Generator, got {type(generator).__name__}")


class SequentialSampler(Sampler):
    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation of the dataset per pass (or num_samples draws with replacement)."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise ArgumentError(f"RandomSampler: replacement must be a bool, got {replacement!r}")
        _check_generator(generator, "RandomSampler")
        self.data_source, self.replacement, self._num_samples, self.generator = \
            data_source, replacement, num_samples, generator
        if not isinstance(self.num_samples, int) or isinstance(self.num_samples, bool) or self.num_samples <= 0:
            raise ArgumentError(f"RandomSampler: num_samples must be a positive int, got {self.num_samples!r}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, k = len(self.data_source), self.num_samples
        g = _pass_generator(self.generator)
        if self.replacement:   # drawn in chunks: minGPT asks for num_samples=int(1e10)
            for start in range(0, k, 32):
                yield from g.integers(0, n, size=min(32, k - start)).tolist()
            return
        for _ in range(k // n):
            yield from g.permutation(n).tolist()
        yield from g.permutation(n)[:k % n].tolist()

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order per pass."""

    def __init__(self, indices, generator=None):
        _check_generator(generator, "SubsetRandomSampler")
        self.indices, self.generator = indices, generator

    def __iter__(self):
        g = _pass_generator(self.generator)
        for i in g.permutation(len(self.indices)).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """num_samples indices drawn with probability proportional to `weights`."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
            raise ArgumentError(f"WeightedRandomSampler: num_samples must be a positive int, got {num_samples!r}")
        if not isinstance(replacement, bool):
            raise ArgumentError(f"WeightedRandomSampler: replacement must be a bool, got {replacement!r}")
        _check_generator(generator, "WeightedRandomSampler")
        w = np.asarray(weights.numpy() if hasattr(weights, "numpy") else weights, dtype=np.float64)
        if w.ndim != 1 or not len(w) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ArgumentError("WeightedRandomSampler: weights must be a non-empty 1-d sequence of finite, non-negative "
                                "numbers that are not all zero")
        if not replacement and num_samples > np.count_nonzero(w):
            raise ArgumentError(f"WeightedRandomSampler: cannot draw {num_samples} samples without replacement from "
                                f"{np.count_nonzero(w)} non-zero weights")
        self.weights, self.num_samples, self.replacement, self.generator = w, num_samples, replacement, generator

    def __iter__(self):
        g = _pass_generator(self.generator)
        yield from g.choice(len(self.weights), size=self.num_samples, replace=self.replacement,
                            p=self.weights / self.weights.sum()).tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of `sampler` into lists of batch_size (the last one shorter unless drop_last)."""

    def __init__(self, sampler, batch_size, drop_last):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ArgumentError(f"BatchSampler: batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(drop_last, bool):
            raise ArgumentError(f"BatchSampler: drop_last must be a bool, got {drop_last!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self):
        batch = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
