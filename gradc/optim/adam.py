"""Adam and AdamW (PyTorch's formulas, bias correction included). The step count is a 0-d tensor,
as in PyTorch, so that a compiled step reads it as data instead of baking it in."""

from ..errors import GradcError
from ..functions import zeros, zeros_like
from .optimizer import Optimizer


class Adam(Optimizer):
    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, flat=False):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise GradcError(f"{type(self).__name__}: invalid hyper-parameters lr={lr}, betas={betas}, eps={eps}, "
                             f"weight_decay={weight_decay} (need lr, eps, weight_decay >= 0 and 0 <= beta < 1)")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay), flat=flat)

    hyper_inputs = ("lr", "betas", "eps", "weight_decay")

    def _update(self, p, grad, state, group):
        # Numbers may be 0-d tensors (program inputs of a compiled step); branches read the plain
        # options (`group.raw`), and only whether they are zero (see Optimizer.hyper_inputs).
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = zeros((), device=p.device)
            state["exp_avg"] = zeros_like(p)
            state["exp_avg_sq"] = zeros_like(p)
        step, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        step.add_(1.0)
        if getattr(group, "raw", group)["weight_decay"] != 0:
            if self.decoupled:
                p.mul_(1 - lr * wd)
            else:
                grad = grad + p * wd
        m.mul_(beta1).add_(grad * (1 - beta1))
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        t = step.double()  # bias corrections in float64, as torch computes them (in Python floats)
        bias1 = 1.0 - beta1 ** t
        bias2_sqrt = (1.0 - beta2 ** t).sqrt()
        denom = v.sqrt() / bias2_sqrt + eps
        p.sub_(m / denom * (lr / bias1))


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01, as in PyTorch)."""
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, flat=False):
        super().__init__(params, lr, betas, eps, weight_decay, flat)


