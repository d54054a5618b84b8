"""RMSprop (PyTorch's formulas: squared-gradient average, optional centring, momentum and weight
decay). Written with tensor ops only, so a compiled training step captures the update."""
from ..dispatch import outside_trace
from ..errors import ArgumentError
from ..functions import zeros, zeros_like
from .optimizer import Optimizer


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 maximize=False, flat=False, foreach=None, capturable=False, differentiable=False):
        if not (lr >= 0 and eps >= 0 and weight_decay >= 0 and momentum >= 0 and alpha >= 0):
            raise ArgumentError(f"RMSprop: lr, alpha, eps, weight_decay and momentum must be >= 0 (got lr={lr}, "
                                f"alpha={alpha}, eps={eps}, weight_decay={weight_decay}, momentum={momentum})")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=bool(centered), maximize=bool(maximize)), flat=flat,
                         implementation=dict(foreach=foreach, capturable=capturable, differentiable=differentiable))

    hyper_inputs = ("lr", "alpha", "eps", "weight_decay", "momentum")

    def _update(self, p, grad, state, group):
        # Numbers may be 0-d tensors (program inputs of a compiled step); branches read the plain
        # options (`group.raw`), and only whether they are zero (see Optimizer.hyper_inputs).
        raw = getattr(group, "raw", group)
        lr, alpha, eps, wd, momentum = (group[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum"))
        if not state:
            with outside_trace():   # real tensors, also while traced (see Optimizer.step)
                state["step"] = zeros((), device=p.device)
                state["square_avg"] = zeros_like(p)
                if raw["momentum"] != 0:
                    state["momentum_buffer"] = zeros_like(p)
                if group["centered"]:
                    state["grad_avg"] = zeros_like(p)
        if group["maximize"]:
            grad = -grad
        state["step"].add_(1.0)
        if raw["weight_decay"] != 0:
            grad = grad + p * wd
        square_avg = state["square_avg"]
        square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg.add_((grad - grad_avg) * (1 - alpha))  # torch's lerp_(grad, 1 - alpha)
            avg = (square_avg - grad_avg * grad_avg).sqrt() + eps
        else:
            avg = square_avg.sqrt() + eps
        if raw["momentum"] != 0:
            buf = state.get("momentum_buffer")
            if buf is None:   # momentum switched on after the first step
                with outside_trace():
                    buf = state["momentum_buffer"] = zeros_like(p)
            buf.mul_(momentum).addcdiv_(grad, avg)
            p.sub_(buf * lr)
        else:
            p.sub_(grad / avg * lr)
