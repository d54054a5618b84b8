"""Adamax (PyTorch's formulas: Adam with the infinity norm in place of the squared-gradient
average). Options are program inputs of a compiled step (see Optimizer.hyper_inputs)."""
from ..dispatch import outside_trace
from ..errors import ArgumentError
from ..functions import maximum, zeros, zeros_like
from .optimizer import Optimizer


def check_betas(who, lr, betas, eps, weight_decay):
    if not (lr >= 0 and eps >= 0 and weight_decay >= 0 and len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas)):
        raise ArgumentError(f"{who}: invalid hyper-parameters lr={lr}, betas={tuple(betas)}, eps={eps}, "
                            f"weight_decay={weight_decay} (need lr, eps, weight_decay >= 0 and two betas in [0, 1))")


class Adamax(Optimizer):
    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, *, maximize=False,
                 flat=False, foreach=None, capturable=False, differentiable=False):
        check_betas("Adamax", lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      maximize=bool(maximize)), flat=flat,
                         implementation=dict(foreach=foreach, capturable=capturable, differentiable=differentiable))

    hyper_inputs = ("lr", "betas", "eps", "weight_decay")

    def _update(self, p, grad, state, group):
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            with outside_trace():   # real tensors, also while traced (see Optimizer.step)
                state["step"] = zeros((), device=p.device)
                state["exp_avg"] = zeros_like(p)
                state["exp_inf"] = zeros_like(p)
        if group["maximize"]:
            grad = -grad
        step = state["step"]
        step.add_(1.0)
        if getattr(group, "raw", group)["weight_decay"] != 0:
            grad = grad + p * wd
        m, u = state["exp_avg"], state["exp_inf"]
        m.mul_(beta1).add_(grad * (1 - beta1))
        u.copy_(maximum(u * beta2, grad.abs() + eps))
        clr = lr / (1.0 - beta1 ** step.double())   # in float64, as torch computes it in Python
        p.sub_(m / u * clr)
