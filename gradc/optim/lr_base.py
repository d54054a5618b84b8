"""The learning-rate scheduler base class (PyTorch's semantics, see gradc.optim.lr_scheduler) and
the helpers every schedule shares: the rates of the groups, writing one, one value per group."""
import copy
import warnings

from ..errors import ArgumentError
from ..tensor import Tensor
from .optimizer import check_optimizer, not_traced

EPOCH_WARNING = ("passing an epoch to scheduler.step() is deprecated (as in PyTorch): it sets last_epoch and "
                  "uses the closed form where the schedule has one; call step() without arguments instead")


def group_rates(optimizer, key="lr"):
    return [g[key].clone() if isinstance(g[key], Tensor) else g[key] for g in optimizer.param_groups]


def set_rate(group, key, value):
    if isinstance(group[key], Tensor):  # a tensor lr is updated in place, so whoever holds it sees the change
        group[key].fill_(float(value))
    else:
        group[key] = value


def per_group(name, optimizer, value):
    """One value per parameter group: a list of exactly that many, or one value for all."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ArgumentError(f"{name} has {len(value)} values but the optimizer has {len(optimizer.param_groups)} "
                                "parameter groups; give one value per group, or a single value")
        return list(value)
    return [value] * len(optimizer.param_groups)


class LRScheduler:
    """Base class. Subclasses give `get_lr()` (the next rates, from the current ones) and, where a
    schedule has one, `_closed_form()` (the rates at `last_epoch` from the base rates)."""

    _is_initial = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            cls.step = not_traced(cls.step)

    def __init__(self, optimizer, last_epoch=-1):
        check_optimizer(optimizer, type(self).__name__)
        self.optimizer = optimizer
        if last_epoch == -1:
            for g in optimizer.param_groups:
                g.setdefault("initial_lr", g["lr"].clone() if isinstance(g["lr"], Tensor) else g["lr"])
        else:
            for i, g in enumerate(optimizer.param_groups):
                if "initial_lr" not in g:
                    raise ArgumentError(f"{type(self).__name__}(last_epoch={last_epoch}): param_groups[{i}] has no "
                                        "'initial_lr'. Resuming needs the optimizer's state_dict loaded first (it "
                                        "holds initial_lr); a fresh run uses last_epoch=-1")
        self.base_lrs = group_rates(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self):
        raise NotImplementedError(f"{type(self).__name__} does not define get_lr()")

    def get_last_lr(self):
        """The rates the last step set, one per parameter group."""
        return self._last_lr

    @not_traced
    def step(self, epoch=None):
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed = getattr(self, "_closed_form", None)
            values = closed() if closed is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            set_rate(group, "lr", lr)
        self._last_lr = group_rates(self.optimizer)

    def state_dict(self):
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        if not isinstance(state_dict, dict):
            raise ArgumentError(f"{type(self).__name__}.load_state_dict expects the dict that state_dict() returned, "
                                f"got {type(state_dict).__name__}")
        self.__dict__.update({k: copy.deepcopy(v) for k, v in state_dict.items() if k != "optimizer"})
