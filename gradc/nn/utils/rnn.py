"""Variable-length sequences for the recurrent layers, as torch.nn.utils.rnn: PackedSequence,
pack_padded_sequence, pad_packed_sequence, pad_sequence, pack_sequence, unpad_sequence and
unpack_sequence.

A PackedSequence holds the time steps one after another, each step only the sequences still
running (sorted longest first): `data` (sum of lengths, *), `batch_sizes` (one count per step),
and the permutation that sorted the batch (`sorted_indices`, its inverse `unsorted_indices`;
None when the batch came sorted). Packing and unpacking are one gather each (its gradient one
scatter-add); the step counts and permutations are plain numbers known when packing, so a
compiled function unrolls an RNN over exactly the steps and batch rows that carry data."""
import collections

import numpy as np

from ...errors import ShapeError
from ...tensor import Tensor
from ...functions import cat, full, stack, tensor
from ...shapes import shape_or

_Fields = collections.namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])


def _ints(t):
    return None if t is None else np.asarray(t.tolist() if isinstance(t, Tensor) else t, dtype=np.int64)


class PackedSequence(_Fields):
    """(data, batch_sizes, sorted_indices, unsorted_indices), as PyTorch's; build it with
    pack_padded_sequence or pack_sequence."""

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = _invert(sorted_indices)
        if batch_sizes is None:
            raise ShapeError("PackedSequence: batch_sizes is required; build one with pack_padded_sequence or "
                             "pack_sequence")
        return cls._make_packed(data, batch_sizes, sorted_indices, unsorted_indices, _ints(batch_sizes),
                                _ints(sorted_indices), _ints(unsorted_indices))

    @classmethod
    def _make_packed(cls, data, batch_sizes, sorted_indices, unsorted_indices, steps, order, unorder):
        self = super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)
        # The counts and permutations as numbers (the tensors' values, known when packing: inside a
        # compiled function they are constants whose values tracing cannot read back), with which
        # unpacking and the RNNs index directly.
        self._steps, self._order, self._unorder = steps, order, unorder
        if self._steps.ndim != 1 or len(self._steps) == 0 or (np.diff(self._steps) > 0).any() \
                or self._steps.min() < 1 or int(self._steps.sum()) != data.shape[0]:
            raise ShapeError(f"PackedSequence: batch_sizes {self._steps.tolist()} must be positive, non-increasing "
                             f"and sum to the {data.shape[0]} rows of data")
        return self

    @property
    def is_cuda(self):
        return self.data.device.type == "cuda"

    def _with(self, data, sorted_indices=None, unsorted_indices=None):
        """The same steps and permutations around other data (permutation tensors optionally moved)."""
        return self._make_packed(data, self.batch_sizes,
                                 self.sorted_indices if sorted_indices is None else sorted_indices,
                                 self.unsorted_indices if unsorted_indices is None else unsorted_indices,
                                 self._steps, self._order, self._unorder)

    def to(self, *args, **kwargs):
        """data moved or cast as Tensor.to does; batch_sizes stay on the CPU (as in PyTorch), the
        permutations follow data's device."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        move = (lambda t: None if t is None else t.to(data.device))
        return self._with(data, move(self.sorted_indices), move(self.unsorted_indices))

    def cuda(self, *args, **kwargs):
        return self.to("cuda")

    def cpu(self):
        return self.to("cpu")

    def float(self):
        return self._with(self.data.float())

    def double(self):
        return self._with(self.data.double())

    def half(self):
        return self._with(self.data.half())


def _invert(perm):
    p = _ints(perm)
    inv = np.empty_like(p)
    inv[p] = np.arange(len(p))
    return tensor(inv, device=perm.device) if isinstance(perm, Tensor) else tensor(inv)


def _lengths(name, lengths, batch):
    lens = _ints(lengths)
    if lens.ndim != 1 or len(lens) != batch:
        raise ShapeError(f"{name}: expected {batch} lengths (one per sequence of the batch), got {lens.tolist()}")
    if len(lens) and lens.min() <= 0:
        raise ShapeError(f"{name}: every length must be greater than 0, got {lens.tolist()}")
    return lens


def _rows(lens_sorted, order, batch):
    """Flat row index (t * batch + b) of every packed element, step by step, and the batch sizes."""
    steps = int(lens_sorted[0])
    sizes = (lens_sorted[None, :] > np.arange(steps)[:, None]).sum(1)
    rows = np.concatenate([t * batch + order[:n] for t, n in enumerate(sizes)])
    return rows, sizes


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) (or (B, T, *) with batch_first) of sequences with the given
    lengths (a list or a 1-D int64 tensor). With enforce_sorted the lengths must be decreasing;
    otherwise the batch is sorted here and the permutation recorded."""
    if not isinstance(input, Tensor) or input.ndim < 2:
        raise ShapeError(f"pack_padded_sequence: expected a padded tensor of at least 2 dims, got "
                         f"{shape_or(input, type(input).__name__)}")
    x = input.transpose(0, 1) if batch_first else input
    steps, batch = x.shape[0], x.shape[1]
    lens = _lengths("pack_padded_sequence", lengths, batch)
    if enforce_sorted:
        if (np.diff(lens) > 0).any():
            raise ShapeError(f"pack_padded_sequence: lengths {lens.tolist()} must be sorted in decreasing order "
                             "when enforce_sorted is True; pass enforce_sorted=False to sort them here")
        order = np.arange(batch)
    else:
        order = np.argsort(-lens, kind="stable")
    if lens.max() > steps:
        raise ShapeError(f"pack_padded_sequence: a length of {int(lens.max())} exceeds the {steps} time steps of "
                         f"the input (shape {tuple(input.shape)}{', batch_first' if batch_first else ''})")
    rows, sizes = _rows(lens[order], order, batch)
    flat = x.reshape((steps * batch,) + x.shape[2:])
    data = flat[tensor(rows, device=input.device)]
    if enforce_sorted:
        return PackedSequence._make_packed(data, tensor(sizes), None, None, sizes, None, None)
    unorder = np.argsort(order)
    return PackedSequence._make_packed(data, tensor(sizes), tensor(order, device=input.device),
                                       tensor(unorder, device=input.device), sizes, order, unorder)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """(padded (T, B, *) or (B, T, *), lengths): the inverse of pack_padded_sequence, in the batch's
    original order; T is the longest length, or total_length when given."""
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"pad_packed_sequence: expected a PackedSequence, got {type(sequence).__name__}")
    sizes, data = sequence._steps, sequence.data
    batch, steps = int(sizes[0]), len(sizes)
    if total_length is not None:
        if total_length < steps:
            raise ShapeError(f"pad_packed_sequence: total_length={total_length} is shorter than the longest "
                             f"sequence ({steps} steps)")
        steps = int(total_length)
    unorder = sequence._unorder if sequence._unorder is not None else np.arange(batch)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = np.full((steps, batch), data.shape[0], dtype=np.int64)     # the padding row by default
    for t, (o, n) in enumerate(zip(offsets, sizes)):
        live = unorder < n
        pos[t, live] = o + unorder[live]
    pad_row = full((1,) + data.shape[1:], padding_value, dtype=data.dtype, device=data.device)
    padded = cat([data, pad_row], 0)[tensor(pos.reshape(-1), device=data.device)]
    padded = padded.reshape((steps, batch) + data.shape[1:])
    lens_sorted = (sizes[None, :] > np.arange(batch)[:, None]).sum(1)
    lengths = tensor(lens_sorted[unorder])
    return (padded.transpose(0, 1) if batch_first else padded), lengths


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack sequences of shapes (L_i, *) into (L_max, B, *) (or (B, L_max, *)), padded with
    padding_value on the right (or the left)."""
    seqs = list(sequences)
    if not seqs:
        raise ShapeError("pad_sequence: received an empty list of sequences")
    if padding_side not in ("right", "left"):
        raise ValueError(f"pad_sequence: padding_side must be 'left' or 'right', got {padding_side!r}")
    trail = seqs[0].shape[1:]
    for i, s in enumerate(seqs):
        if not isinstance(s, Tensor) or s.ndim < 1 or s.shape[1:] != trail:
            raise ShapeError(f"pad_sequence: sequence {i} has shape {shape_or(s, None)}, but every "
                             f"sequence must be (length, {', '.join(map(str, trail))})")
    longest = max(s.shape[0] for s in seqs)
    out = []
    for s in seqs:
        gap = longest - s.shape[0]
        if gap:
            fill = full((gap,) + trail, padding_value, dtype=s.dtype, device=s.device)
            s = cat([s, fill] if padding_side == "right" else [fill, s], 0)
        out.append(s)
    return stack(out, 0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of sequences (L_i, *) (decreasing lengths when enforce_sorted)."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The list of sequences, each cut to its length, from a padded batch."""
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    return [x[i, :int(n)] for i, n in enumerate(_lengths("unpad_sequence", lengths, x.shape[0]))]


def unpack_sequence(packed_sequences):
    """The list of sequences (in the original order) held by a PackedSequence."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)


__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "pack_sequence",
           "unpad_sequence", "unpack_sequence"]
