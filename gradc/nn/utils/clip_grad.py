"""Gradient clipping (torch.nn.utils semantics): the total norm is the norm of the per-tensor
norms, and gradients are scaled in place by min(1, max_norm / (total_norm + 1e-6)). Everything is
tensor work (the scale is a 0-d tensor, never read back), so a compiled training step captures it;
only error_if_nonfinite=True has to look at the value."""
import math

from ...errors import GradcError, ValueRangeError
from ...functions import cat, stack, zeros
from ...grad_mode import no_grad
from ...tensor import Tensor


def _as_list(tensors):
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _norm_type(norm_type):
    try:
        p = float(norm_type)
    except (TypeError, ValueError):
        raise GradcError(f"norm_type must be a number (2.0, 1, float('inf'), ...), got {norm_type!r}") from None
    if math.isnan(p):
        raise GradcError("norm_type must be a number, got nan")
    return p


def _check_foreach(foreach):
    if foreach is not None and not isinstance(foreach, bool):
        raise GradcError(f"foreach must be None, True or False, got {foreach!r}")


def _vector_norm(x, p):
    """torch.linalg.vector_norm(x, p) over all elements."""
    a = x.abs()
    if p == math.inf:
        return a.amax()
    if p == -math.inf:
        return a.amin()
    if p == 0:
        return (x != 0).to(x.dtype).sum()
    if p == 1:
        return a.sum()
    if p == 2:
        return (a * a).sum().sqrt()
    return (a ** p).sum() ** (1.0 / p)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The norm of the norms of `tensors` (gradients, usually): equal to the norm of all their
    elements taken as one vector (for norm_type 0, torch's definition: the number of tensors whose
    norm is non-zero). foreach=True computes a p-norm as one reduction over all of them concatenated
    (one pass instead of one per tensor; the same value up to rounding order)."""
    p = _norm_type(norm_type)
    _check_foreach(foreach)
    tensors = [t for t in _as_list(tensors) if t is not None]
    if not tensors:
        return zeros(())
    for t in tensors:
        if not isinstance(t, Tensor):
            raise GradcError(f"get_total_norm expects tensors, got {type(t).__name__}")
    with no_grad():
        dev = tensors[0].device
        if foreach and p != 0 and all(t.device == dev and t.dtype is tensors[0].dtype for t in tensors):
            total = _vector_norm(cat([t.reshape(-1) for t in tensors]), p)
        else:
            total = _vector_norm(stack([_vector_norm(t, p).to(dev) for t in tensors]), p)
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise ValueRangeError(f"the total norm of order {p} of the gradients is {total.item()}, so they cannot be clipped; "
                         "find where the loss or the gradients became inf/nan, or pass error_if_nonfinite=False")
    return total


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale the gradients of `parameters` by min(1, max_norm / (total_norm + 1e-6)), in place."""
    _check_foreach(foreach)
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return
    with no_grad():
        coef = (float(max_norm) / (total_norm + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.to(g.device))


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Clip the gradients of `parameters` (a tensor or an iterable of them) so that their total norm
    is at most max_norm; returns the total norm before clipping, as a 0-d tensor."""
    params = _as_list(parameters)  # an iterator is read once, for both the norm and the scaling
    grads = [p.grad for p in params if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(params, max_norm, total, foreach)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient of `parameters` into [-clip_value, clip_value], in place. (foreach is
    accepted as in torch; clamping is elementwise, so every strategy gives the same result.)"""
    _check_foreach(foreach)
    clip_value = float(clip_value)
    with no_grad():
        for p in _as_list(parameters):
            if p.grad is not None:
                p.grad.clamp_(min=-clip_value, max=clip_value)
