"""Connectionist temporal classification loss: the forward (alpha) recursion of Graves et al. over
the blank-extended target, in log space, as a composite unrolled over the time steps (one gather,
max, exp and log per step on an (N, 2S + 1) state), so autodiff supplies the backward pass and a
compiled step is one program for a fixed T.

Impossible alignments (a target longer than its input allows) carry a large negative finite log-
probability instead of -inf, so no NaN reaches the gradient; their loss is reported as inf (or 0
with zero_infinity=True), as PyTorch does.

Gradients are PyTorch's: its CTC backward gives log_probs the gradient that belongs to the logits
of the log_softmax that made them, exp(log_probs) - occupancy, for the steps inside each input's
length. A term of value 0 whose gradient is exp(log_probs) there (exp(lp) - exp(lp).detach()) is
added to each sample's loss,
so a log_probs leaf (PyTorch's own example detaches a log_softmax) gets PyTorch's gradient; after
a log_softmax it cancels (each row of exp(log_probs) sums to 1), so logits get the true one."""
import numpy as np

from .. import dtypes as D
from ..errors import DTypeError, ShapeError
from ..functions import cat, full, stack, tensor, where
from ..ops import OPS
from ..tensor import Tensor
from .losses import reduce_loss

_NEG = -1e30      # log of an impossible path: finite, so exp(x - max) stays 0 and gradients finite
_IMPOSSIBLE = 1e29


def _lengths(x, n, what, device):
    if isinstance(x, Tensor):
        if x.dtype.is_floating_point:
            raise DTypeError(f"ctc_loss: {what} must hold integers, got {x.dtype!r}")
        t = x.reshape(-1).long()
    else:
        t = tensor(np.asarray(x, dtype=np.int64).reshape(-1), device=device)
    if t.shape[0] != n:
        raise ShapeError(f"ctc_loss: {what} has {t.shape[0]} entries for a batch of {n}")
    return t


def _padded_targets(targets, target_lengths, device):
    """(N, S) targets: as given, or cut out of the concatenated 1-D form (which needs the lengths'
    values, so they must be known: a tuple, or a tensor read eagerly)."""
    if targets.ndim == 2:
        return targets
    if targets.ndim != 1:
        raise ShapeError(f"ctc_loss: targets must be (N, S) or the concatenated 1-D targets, got {tuple(targets.shape)}")
    lens = [int(v) for v in (target_lengths.tolist() if isinstance(target_lengths, Tensor) else target_lengths)]
    if sum(lens) != targets.shape[0]:
        raise ShapeError(f"ctc_loss: concatenated targets have {targets.shape[0]} labels but target_lengths sum "
                         f"to {sum(lens)}")
    s_max = max(lens + [1])
    rows, start = [], 0
    for n_i in lens:
        row = targets[start:start + n_i]
        if n_i < s_max:
            row = cat([row, full((s_max - n_i,), 0, dtype=targets.dtype, device=device)])
        rows.append(row)
        start += n_i
    return stack(rows) if rows else targets.reshape(0, 1)


def _lse(*xs):
    m = xs[0]
    for x in xs[1:]:
        m = m.maximum(x)
    m = m.detach()
    total = None
    for x in xs:
        e = (x - m).exp()
        total = e if total is None else total + e
    return m + total.log()


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    """-log p(target | input) summed over every alignment. log_probs (T, N, C) (or (T, C)),
    targets (N, S) padded or concatenated 1-D, lengths per sample; 'mean' divides each loss by
    its target length before averaging over the batch."""
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"ctc_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not isinstance(targets, Tensor) or targets.dtype.is_floating_point:
        raise DTypeError("ctc_loss: targets must be an integer tensor of class indices")
    unbatched = log_probs.ndim == 2
    if unbatched:
        log_probs, targets = log_probs.unsqueeze(1), targets.reshape(1, -1)
    if log_probs.ndim != 3:
        raise ShapeError(f"ctc_loss: log_probs must be (T, N, C) or (T, C), got {tuple(log_probs.shape)}")
    n_t, n, n_c = log_probs.shape
    if not 0 <= blank < n_c:
        raise ValueError(f"ctc_loss: blank ({blank}) must be a class index in [0, {n_c})")
    dev = log_probs.device
    in_len = _lengths(input_lengths, n, "input_lengths", dev)
    tg_len = _lengths(target_lengths, n, "target_lengths", dev)
    targets = _padded_targets(targets.long(), target_lengths, dev)
    if targets.shape[0] != n:
        raise ShapeError(f"ctc_loss: targets have {targets.shape[0]} rows for a batch of {n}")
    s_max = targets.shape[1]
    in_len = OPS["check_index"].bind(in_len, high=n_t + 1, ignore=None, what="ctc_loss: input_lengths (at most T)")
    tg_len = OPS["check_index"].bind(tg_len, high=s_max + 1, ignore=None,
                                     what="ctc_loss: target_lengths (at most the targets' length)")
    pos = tensor(np.arange(s_max), device=dev).reshape(1, -1)
    inside = pos < tg_len.reshape(-1, 1)
    labels = where(inside, targets, blank)
    labels = OPS["check_index"].bind(labels, high=n_c, ignore=None, what="ctc_loss: targets")
    n_l = 2 * s_max + 1
    blanks = full((n, s_max), blank, dtype=D.int64, device=dev)
    ext = cat([stack([blanks, labels], 2).reshape(n, 2 * s_max), full((n, 1), blank, dtype=D.int64, device=dev)], 1)
    # a label may follow the label two back directly unless it repeats it (or is a blank)
    skip = np.zeros(n_l, dtype=bool)
    skip[3::2] = True
    prev2 = cat([full((n, 2), blank, dtype=D.int64, device=dev), ext[:, :-2]], 1)
    can_skip = (ext != prev2) & tensor(skip, device=dev).reshape(1, -1)
    lpe = log_probs.gather(2, ext.unsqueeze(0).expand(n_t, n, n_l))          # (T, N, 2S + 1)
    # alpha carries two leading impossible columns, so the states one and two back are slices
    neg2 = full((n, 2), _NEG, dtype=log_probs.dtype, device=dev)
    skip_add = where(can_skip, 0.0, _NEG).to(log_probs.dtype)        # 0 where the skip is allowed
    active = in_len.reshape(1, n, 1) > tensor(np.arange(n_t), device=dev).reshape(n_t, 1, 1)   # (T, N, 1)
    start = np.full(n_l, _NEG)
    start[:2] = 0.0
    alpha = lpe[0] + tensor(start, dtype=log_probs.dtype, device=dev).reshape(1, -1)
    for t in range(1, n_t):
        padded = cat([neg2, alpha], 1)
        new = _lse(alpha, padded[:, 1:-1], padded[:, :-2] + skip_add) + lpe[t]
        alpha = where(active[t], new, alpha)
    last = (2 * tg_len).reshape(-1, 1)
    end_blank = alpha.gather(1, last)
    end_label = where(last > 0, alpha.gather(1, (last - 1).clamp(min=0)), _NEG)
    loss = -_lse(end_blank, end_label).reshape(n)
    here = active & log_probs.isfinite()
    e = where(here, log_probs, 0.0).exp()   # exp(lp) - its own value: 0, with gradient (and its derivative) exp(lp)
    loss = loss + where(here, e - e.detach(), 0.0).sum((0, 2))
    impossible = (loss > _IMPOSSIBLE) | (in_len == 0)
    loss = where(impossible, 0.0 if zero_infinity else float("inf"), loss)
    if unbatched:
        loss = loss.reshape(())
        tg_len = tg_len.reshape(())
    if reduction == "mean":
        return (loss / tg_len.clamp(min=1).to(loss.dtype)).mean()
    return reduce_loss(loss, reduction, "ctc_loss")
