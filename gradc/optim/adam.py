"""Adam and AdamW (PyTorch's formulas, bias correction included, amsgrad, maximize and decoupled
weight decay). The step count is a 0-d tensor,
as in PyTorch, so that a compiled step reads it as data instead of baking it in.

Parameters of a group that start stepping together share one step-count tensor (each parameter's
state still has its "step", as in PyTorch), so the bias corrections are computed once per step for
all of them: a compiled step holds one scalar chain instead of one per parameter. A parameter
that misses a step (no gradient) gets its own copy of the count first, so counts never drift."""

from ..dispatch import outside_trace
from ..errors import ArgumentError
from ..functions import maximum, zeros, zeros_like
from ..tensor import Tensor
from .optimizer import Optimizer


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False, flat=False,
                 foreach=None, capturable=False, differentiable=False, fused=None):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ArgumentError(f"{type(self).__name__}: invalid hyper-parameters lr={lr}, betas={betas}, eps={eps}, "
                                f"weight_decay={weight_decay} (need lr, eps, weight_decay >= 0 and 0 <= beta < 1)")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=bool(amsgrad), maximize=bool(maximize),
                                      decoupled_weight_decay=bool(decoupled_weight_decay)), flat=flat,
                         implementation=dict(foreach=foreach, capturable=capturable, differentiable=differentiable,
                                             fused=fused))

    hyper_inputs = ("lr", "betas", "eps", "weight_decay")

    def _update_params(self, gi, group, params):
        todo = [p for p in params if p.grad is not None]
        fresh = {}
        for p in todo:
            state = self.state.setdefault(p, {})
            if not state:
                with outside_trace():   # real tensors, also while traced (see Optimizer.step)
                    state["step"] = fresh.setdefault(str(p.device), zeros((), device=p.device))
                    state["exp_avg"] = zeros_like(p)
                    state["exp_avg_sq"] = zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = zeros_like(p)
        shared = {id(self.state[p]["step"]) for p in todo}
        behind = {}
        for q in params:   # a count shared with a parameter that is not updated now stays behind for it
            st = self.state.get(q)
            if q.grad is None and st and id(st.get("step")) in shared:
                st["step"] = behind.setdefault(id(st["step"]), st["step"].clone())
        corrections, coefficients = {}, {}
        for p in todo:
            state, numbers = self.state[p], self._numbers(gi, group, p.device)
            step = state["step"]
            if id(step) not in corrections:
                step.add_(1.0)
                corrections[id(step)] = self._corrections(step, numbers)
            key = (id(step), p.dtype)
            if key not in coefficients:
                coefficients[key] = self._coefficients(numbers, corrections[id(step)], p.dtype)
            self._apply(p, p.grad, state, numbers, coefficients[key])

    @staticmethod
    def _corrections(step, group):
        """(lr / bias correction 1, sqrt of bias correction 2) at the current step count."""
        (beta1, beta2) = group["betas"]
        t = step.double()  # bias corrections in float64, as torch computes them (in Python floats)
        bias1 = 1.0 - beta1 ** t
        return group["lr"] / bias1, (1.0 - beta2 ** t).sqrt()

    @staticmethod
    def _coefficients(group, corrections, dtype):
        """The numbers every update of a group reads: beta1, 1 - beta1, beta2, 1 - beta2, eps and
        the corrections, the 0-d tensors among them cast to the parameters' dtype. Made once per
        step and dtype, not once per parameter: a traced step records each cast once (the same
        values as the cast every op makes of a 0-d float64 operand)."""
        (beta1, beta2), eps = group["betas"], group["eps"]
        numbers = (beta1, 1 - beta1, beta2, 1 - beta2, eps) + tuple(corrections)
        return tuple(x.to(dtype) if isinstance(x, Tensor) else x for x in numbers)

    def _update(self, p, grad, state, group):
        if not state:
            with outside_trace():
                state["step"] = zeros((), device=p.device)
                state["exp_avg"] = zeros_like(p)
                state["exp_avg_sq"] = zeros_like(p)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = zeros_like(p)
        state["step"].add_(1.0)
        corrections = self._corrections(state["step"], group)
        self._apply(p, grad, state, group, self._coefficients(group, corrections, p.dtype))

    def _apply(self, p, grad, state, group, coefficients):
        # Numbers may be 0-d tensors (program inputs of a compiled step); branches read the plain
        # options (`group.raw`), and only whether they are zero (see Optimizer.hyper_inputs).
        beta1, rest1, beta2, rest2, eps, step_size, bias2_sqrt = coefficients
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if group["maximize"]:
            grad = -grad
        if getattr(group, "raw", group)["weight_decay"] != 0:
            lr, wd = group["lr"], group["weight_decay"]
            if group["decoupled_weight_decay"]:
                p.mul_(1 - lr * wd)
            else:
                grad = grad + p * wd
        m.mul_(beta1).add_(grad * rest1)
        v.mul_(beta2).addcmul_(grad, grad, value=rest2)
        if group["amsgrad"]:
            if "max_exp_avg_sq" not in state:   # amsgrad switched on after the first step (or a loaded state)
                with outside_trace():
                    state["max_exp_avg_sq"] = zeros_like(p)
            v = state["max_exp_avg_sq"].copy_(maximum(state["max_exp_avg_sq"], v))
        denom = v.sqrt() / bias2_sqrt + eps
        p.sub_(m / denom * step_size)


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01, as in PyTorch)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, flat=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True, flat=flat, foreach=foreach, fused=fused, capturable=capturable,
                         differentiable=differentiable)


