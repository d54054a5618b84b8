"""NAdam and RAdam (PyTorch's formulas: Nesterov momentum with the momentum-decay schedule; the
variance rectification). Options are program inputs of a compiled step, and RAdam's choice between
the rectified and the plain step, which depends on the step count, is a select rather than a
branch, so one compiled program serves every step."""
from ..dispatch import outside_trace
from ..errors import ArgumentError
from ..functions import maximum, ones, where, zeros, zeros_like
from ..tensor import Tensor
from .adamax import check_betas
from .optimizer import Optimizer


def _decay(p, grad, group, wd):
    """Weight decay: decoupled (p *= 1 - lr * wd) or as L2 (grad += wd * p); returns the gradient."""
    if getattr(group, "raw", group)["weight_decay"] != 0:
        if group["decoupled_weight_decay"]:
            p.mul_(1 - group["lr"] * wd)
        else:
            grad = grad + p * wd
    return grad


def _moments(state, p):
    if not state:
        with outside_trace():   # real tensors, also while traced (see Optimizer.step)
            state["step"] = zeros((), device=p.device)
            state["exp_avg"] = zeros_like(p)
            state["exp_avg_sq"] = zeros_like(p)


class NAdam(Optimizer):
    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, maximize=False, flat=False,
                 foreach=None, capturable=False, differentiable=False):
        check_betas("NAdam", lr, betas, eps, weight_decay)
        if not momentum_decay >= 0:
            raise ArgumentError(f"NAdam: momentum_decay must be >= 0, got {momentum_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=bool(decoupled_weight_decay),
                                      maximize=bool(maximize)), flat=flat,
                         implementation=dict(foreach=foreach, capturable=capturable, differentiable=differentiable))

    hyper_inputs = ("lr", "betas", "eps", "weight_decay", "momentum_decay")

    def _update(self, p, grad, state, group):
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            _moments(state, p)
            with outside_trace():
                state["mu_product"] = ones((), device=p.device)   # float32, as torch keeps it
        if group["maximize"]:
            grad = -grad
        step = state["step"]
        step.add_(1.0)
        grad = _decay(p, grad, group, wd)
        t = step.double()
        md = group["momentum_decay"]
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * md))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1.0) * md))
        mu_product = state["mu_product"]
        mu_product.mul_(mu.to(mu_product.dtype))   # in float32, as torch multiplies its float32 state
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(grad * (1 - beta1))
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (v / (1.0 - beta2 ** t)).sqrt() + eps
        prod = mu_product.double()
        p.sub_(grad / denom * (lr * (1.0 - mu) / (1.0 - prod)))
        p.sub_(m / denom * (lr * mu_next / (1.0 - prod * mu_next)))


class RAdam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, maximize=False, flat=False,
                 foreach=None, capturable=False, differentiable=False):
        check_betas("RAdam", lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=bool(decoupled_weight_decay), maximize=bool(maximize)),
                         flat=flat,
                         implementation=dict(foreach=foreach, capturable=capturable, differentiable=differentiable))

    hyper_inputs = ("lr", "betas", "eps", "weight_decay")

    def _update(self, p, grad, state, group):
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        _moments(state, p)
        if group["maximize"]:
            grad = -grad
        step = state["step"]
        step.add_(1.0)
        grad = _decay(p, grad, group, wd)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(grad * (1 - beta1))
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        t = step.double()
        bias1, bias2 = 1.0 - beta1 ** t, 1.0 - beta2 ** t
        corrected = m / bias1
        rho_inf = 2.0 / (1.0 - beta2) - 1.0
        rho_t = rho_inf - 2.0 * t * beta2 ** t / bias2
        # the rectified step is selected only where rho_t > 5 (so rho_inf > 5 too): keep it finite elsewhere
        rho = maximum(rho_t, 5.0)
        inf = maximum(rho_inf, 5.0) if isinstance(rho_inf, Tensor) else max(rho_inf, 5.0)
        rect = ((rho - 4.0) * (rho - 2.0) * inf / ((inf - 4.0) * (inf - 2.0) * rho)).sqrt()
        adaptive = bias2.sqrt() / (v.sqrt() + eps)
        rectified = corrected * lr * adaptive * rect
        plain = corrected * lr
        p.sub_(where(rho_t > 5.0, rectified, plain))
