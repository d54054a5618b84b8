"""Adadelta (PyTorch's formulas: running averages of squared gradients and squared updates, the
rate lr scales the update, 1.0 by default). Tensor ops only, so compiled steps capture it."""
from ..dispatch import outside_trace
from ..errors import ArgumentError
from ..functions import zeros, zeros_like
from .optimizer import Optimizer


class Adadelta(Optimizer):
    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, maximize=False, flat=False,
                 foreach=None, capturable=False, differentiable=False):
        if not (lr >= 0 and 0.0 <= rho <= 1.0 and eps >= 0 and weight_decay >= 0):
            raise ArgumentError(f"Adadelta: need lr, eps, weight_decay >= 0 and 0 <= rho <= 1 (got lr={lr}, rho={rho}, "
                                f"eps={eps}, weight_decay={weight_decay})")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=bool(maximize)),
                         flat=flat,
                         implementation=dict(foreach=foreach, capturable=capturable, differentiable=differentiable))

    hyper_inputs = ("lr", "rho", "eps", "weight_decay")

    def _update(self, p, grad, state, group):
        lr, rho, eps, wd = group["lr"], group["rho"], group["eps"], group["weight_decay"]
        if not state:
            with outside_trace():   # real tensors, also while traced (see Optimizer.step)
                state["step"] = zeros((), device=p.device)
                state["square_avg"] = zeros_like(p)
                state["acc_delta"] = zeros_like(p)
        state["step"].add_(1.0)
        if group["maximize"]:
            grad = -grad
        if getattr(group, "raw", group)["weight_decay"] != 0:
            grad = grad + p * wd
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
        std = (square_avg + eps).sqrt()
        delta = (acc_delta + eps).sqrt() / std * grad
        acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
        p.sub_(delta * lr)
