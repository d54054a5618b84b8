"""Rprop and ASGD (PyTorch's formulas). Rprop: per-element step sizes grown by etaplus where the
gradient kept its sign and shrunk by etaminus where it flipped (that element then skips its update).
ASGD: averaged SGD, the average `ax` kept in the state. Both are written with selects instead of
data-dependent branches, so a compiled step is one program for every step."""
from .. import dtypes as D
from ..errors import ArgumentError
from ..functions import maximum, ones_like, where, zeros, zeros_like
from .optimizer import Optimizer


class Rprop(Optimizer):
    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, maximize=False, flat=False,
                 foreach=None, capturable=False, differentiable=False):
        if not (lr >= 0 and len(etas) == 2 and 0.0 < etas[0] < 1.0 < etas[1] and len(step_sizes) == 2
                and 0 <= step_sizes[0] <= step_sizes[1]):
            raise ArgumentError(f"Rprop: invalid hyper-parameters lr={lr}, etas={tuple(etas)}, step_sizes="
                                f"{tuple(step_sizes)} (need lr >= 0, 0 < etaminus < 1 < etaplus and "
                                "0 <= min step size <= max step size)")
        super().__init__(params, dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes), maximize=bool(maximize)),
                         flat=flat,
                         implementation=dict(foreach=foreach, capturable=capturable, differentiable=differentiable))

    hyper_inputs = ("lr", "etas", "step_sizes")

    def _update(self, p, grad, state, group):
        (etaminus, etaplus), (smin, smax) = group["etas"], group["step_sizes"]
        if not state:
            state["step"] = zeros((), device=p.device)
            state["prev"] = zeros_like(p)
            state["step_size"] = zeros_like(p) + group["lr"]   # torch: full_like(grad, lr), at the first step
        if group["maximize"]:
            grad = -grad
        state["step"].add_(1.0)
        prev, size = state["prev"], state["step_size"]
        sign = (grad * prev).sign()
        # in the parameter's dtype, as torch writes the factors into the sign tensor
        factor = where(sign > 0, etaplus, where(sign < 0, etaminus, ones_like(size))).to(size.dtype)
        size.copy_((size * factor).clamp(smin, smax))
        grad = where(sign < 0, 0.0, grad)   # a flipped sign: no update for that element, and no memory of it
        p.sub_(grad.sign() * size)
        prev.copy_(grad)


class ASGD(Optimizer):
    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, *, maximize=False,
                 flat=False, foreach=None, capturable=False, differentiable=False):
        if not (lr >= 0 and weight_decay >= 0):
            raise ArgumentError(f"ASGD: lr and weight_decay must be >= 0 (got lr={lr}, weight_decay={weight_decay})")
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                                      maximize=bool(maximize)), flat=flat,
                         implementation=dict(foreach=foreach, capturable=capturable, differentiable=differentiable))

    hyper_inputs = ("lr", "lambd", "alpha", "t0", "weight_decay")

    def _update(self, p, grad, state, group):
        lr, lambd, alpha, t0, wd = (group[k] for k in ("lr", "lambd", "alpha", "t0", "weight_decay"))
        if not state:
            state["step"] = zeros((), device=p.device)
            state["eta"] = zeros((), device=p.device) + group["lr"]   # float32 0-d tensors, as in torch
            state["mu"] = zeros((), device=p.device) + 1.0
            state["ax"] = zeros_like(p)
        if group["maximize"]:
            grad = -grad
        step, eta, mu, ax = state["step"], state["eta"], state["mu"], state["ax"]
        step.add_(1.0)
        if getattr(group, "raw", group)["weight_decay"] != 0:
            grad = grad + p * wd
        e = eta.double()
        p.mul_(1.0 - lambd * e)
        p.sub_(grad * e)
        ax.copy_(where(mu == 1.0, p, ax + (p - ax) * mu))
        t = step.double()
        # rounded to the default float dtype, as torch makes them (torch.as_tensor of a Python float)
        eta.copy_((lr / (1.0 + lambd * lr * t) ** alpha).to(D.default_float))
        mu.copy_((1.0 / maximum(t - t0, 1.0)).to(D.default_float))
