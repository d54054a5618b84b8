"""Adagrad (PyTorch's formulas: learning-rate decay over steps, weight decay, an initial value for
the accumulated squares). As in PyTorch its state exists from construction on; the step count is
a 0-d tensor so that a compiled step reads the decayed rate as data."""
from .. import dtypes as D
from ..dispatch import outside_trace
from ..errors import ArgumentError
from ..functions import full_like, zeros
from .optimizer import Optimizer


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 maximize=False, flat=False, foreach=None, differentiable=False, fused=None):
        if not (lr >= 0 and lr_decay >= 0 and weight_decay >= 0 and initial_accumulator_value >= 0 and eps >= 0):
            raise ArgumentError(f"Adagrad: lr, lr_decay, weight_decay, initial_accumulator_value and eps must be >= 0 "
                                f"(got {lr}, {lr_decay}, {weight_decay}, {initial_accumulator_value}, {eps})")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                                      initial_accumulator_value=initial_accumulator_value,
                                      maximize=bool(maximize)), flat=flat,
                         implementation=dict(foreach=foreach, differentiable=differentiable, fused=fused))

    # initial_accumulator_value is read once, when the state is made: it stays a plain (guarded) option
    hyper_inputs = ("lr", "lr_decay", "weight_decay", "eps")

    def _init_state(self):
        for group in self.param_groups:
            for p in group["params"]:
                self._fresh(self.state.setdefault(p, {}), p, group)

    @staticmethod
    def _fresh(state, p, group):
        if not state:
            with outside_trace():   # real tensors, also while traced (see Optimizer.step)
                state["step"] = zeros((), device=p.device)
                state["sum"] = full_like(p, group["initial_accumulator_value"])

    def _update(self, p, grad, state, group):
        self._fresh(state, p, getattr(group, "raw", group))
        lr, lr_decay, wd, eps = group["lr"], group["lr_decay"], group["weight_decay"], group["eps"]
        step, acc = state["step"], state["sum"]
        step.add_(1.0)
        if group["maximize"]:
            grad = -grad
        if getattr(group, "raw", group)["weight_decay"] != 0:
            grad = grad + p * wd
        acc.addcmul_(grad, grad, value=1.0)
        std = acc.sqrt() + eps
        # lr / (1 + (step - 1) * lr_decay), in float64 as torch computes it in Python (exactly lr when
        # lr_decay is 0, so no branch: a schedule of lr_decay never traces again)
        clr = (step.to(D.float64) - 1.0) * lr_decay
        p.sub_(grad / std * (lr / (clr + 1.0)))
