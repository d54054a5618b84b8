"""CyclicLR (PyTorch's semantics): the rate cycles between base_lr and max_lr, step_size_up steps up
and step_size_down down, with the amplitude scaled per cycle ('triangular': constant,
'triangular2': halved each cycle) or per iteration ('exp_range': gamma ** iteration), or by a
scale_fn of your own; momentum (or Adam's beta1) cycles the other way."""
import math
import types

from ..errors import ArgumentError
from .lr_base import LRScheduler, per_group, set_rate

_MODES = ("triangular", "triangular2", "exp_range")


class CyclicLR(LRScheduler):
    def __init__(self, optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None, mode="triangular",
                 gamma=1.0, scale_fn=None, scale_mode="cycle", cycle_momentum=True, base_momentum=0.8,
                 max_momentum=0.9, last_epoch=-1):
        base_lrs = per_group("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, g in zip(base_lrs, optimizer.param_groups):
                set_rate(g, "lr", lr)
        self.max_lrs = per_group("max_lr", optimizer, max_lr)
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        if not (up > 0 and down > 0):
            raise ArgumentError(f"CyclicLR: step_size_up and step_size_down must be > 0 (got {step_size_up}, "
                                f"{step_size_down})")
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        if mode not in _MODES and scale_fn is None:
            raise ArgumentError(f"CyclicLR: mode={mode!r} is not one of {', '.join(map(repr, _MODES))}; pick one, "
                                "or pass scale_fn")
        if scale_fn is not None and scale_mode not in ("cycle", "iterations"):
            raise ArgumentError(f"CyclicLR: scale_mode must be 'cycle' or 'iterations', got {scale_mode!r}")
        self.mode, self.gamma = mode, gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ArgumentError(f"CyclicLR(cycle_momentum=True): {type(optimizer).__name__} has neither momentum "
                                    "nor betas; pass cycle_momentum=False")
            self.use_beta1 = "betas" in optimizer.defaults
            self.base_momentums = per_group("base_momentum", optimizer, base_momentum)
            self.max_momentums = per_group("max_momentum", optimizer, max_momentum)
            if last_epoch == -1:
                for hi, lo, g in zip(self.max_momentums, self.base_momentums, optimizer.param_groups):
                    self._set_momentum(g, hi)
                    g["max_momentum"], g["base_momentum"] = hi, lo
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _init_scale_fn(self):
        """The built-in modes fix the scale mode ('iterations' for exp_range, else 'cycle')."""
        if self._scale_fn_custom is None:
            self.scale_mode = "iterations" if self.mode == "exp_range" else "cycle"

    def scale_fn(self, x):
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def get_lr(self):
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        factor = x / self.step_ratio if x <= self.step_ratio else (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else self.last_epoch)
        lrs = [base + (top - base) * factor * scale for base, top in zip(self.base_lrs, self.max_lrs)]
        if self.cycle_momentum:
            for g, lo, hi in zip(self.optimizer.param_groups, self.base_momentums, self.max_momentums):
                self._set_momentum(g, hi - (hi - lo) * factor * scale)
        return lrs

    def state_dict(self):
        """As in PyTorch: a plain function scale_fn is not state (pass it again when resuming); a
        callable object's attributes are."""
        state = super().state_dict()
        fn = self._scale_fn_custom
        state["_scale_fn_custom"] = fn.__dict__.copy() if fn is not None and not isinstance(
            fn, (types.FunctionType, types.BuiltinFunctionType)) else None
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        fn, own = state.pop("_scale_fn_custom", None), self._scale_fn_custom
        super().load_state_dict(state)
        self._scale_fn_custom = own
        if fn is not None and own is not None:
            own.__dict__.update(fn)
        self._init_scale_fn()
