"""SGD with momentum, dampening, Nesterov, weight decay and maximize (PyTorch's update formulas)."""
from ..creation import full_like
from ..dispatch import outside_trace, tracer
from ..errors import ArgumentError
from .optimizer import Optimizer


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, flat=False, foreach=None, differentiable=False, fused=None):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ArgumentError(f"SGD: lr, momentum and weight_decay must be >= 0 (got {lr}, {momentum}, {weight_decay})")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ArgumentError("SGD: nesterov momentum requires momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=bool(nesterov), maximize=bool(maximize)),
                         flat=flat,
                         implementation=dict(foreach=foreach, differentiable=differentiable, fused=fused))

    hyper_inputs = ("lr", "momentum", "dampening", "weight_decay")

    def _update(self, p, grad, state, group):
        # Numbers may be 0-d tensors (program inputs of a compiled step); branches read the plain
        # options (`group.raw`), and only whether they are zero (see Optimizer.hyper_inputs).
        raw = getattr(group, "raw", group)
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        if group.get("maximize", False):
            grad = -grad
        if raw["weight_decay"] != 0:
            grad = grad + p * wd
        if raw["momentum"] != 0:
            buf = state.get("momentum_buffer")
            if buf is None and tracer() is not None and raw["dampening"] == 0:
                # Traced, the first buffer is made as -0.0 (real data, see Optimizer.step): momentum * -0.0
                # + grad is, bit for bit, the grad PyTorch's first step copies (-0.0 is the identity of +),
                # and this step's program serves later ones.
                with outside_trace():
                    buf = state["momentum_buffer"] = full_like(p, -0.0)
            if buf is None:
                buf = state["momentum_buffer"] = grad.clone()
            else:
                buf.mul_(momentum).add_(grad * (1 - group["dampening"]))
            grad = grad + buf * momentum if raw["nesterov"] else buf
        p.sub_(grad * lr)
