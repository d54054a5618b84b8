"""Stochastic weight averaging and EMA models (torch.optim.swa_utils): AveragedModel keeps a copy
of a model whose parameters are the running average (or an exponential moving average) of the
model's, SWALR anneals each group's rate to a constant SWA rate, and update_bn recomputes the
BatchNorm statistics of the averaged weights with one pass over the data."""
import copy
import itertools
import math

from .. import dtypes as D
from ..errors import ArgumentError
from ..functions import tensor
from ..grad_mode import no_grad
from ..nn.module import Module
from ..nn.normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .lr_base import LRScheduler, group_rates, per_group

__all__ = ["AveragedModel", "SWALR", "update_bn", "get_ema_avg_fn", "get_ema_multi_avg_fn", "get_swa_avg_fn",
           "get_swa_multi_avg_fn"]


def get_ema_avg_fn(decay=0.999):
    """avg_fn of an exponential moving average: decay * averaged + (1 - decay) * current."""
    def ema_update(averaged, current, num_averaged):
        return decay * averaged + (1 - decay) * current
    return ema_update


def get_swa_avg_fn():
    """avg_fn of the equal-weight running mean SWA uses."""
    def swa_update(averaged, current, num_averaged):
        return averaged + (current - averaged) / (num_averaged + 1)
    return swa_update


def get_ema_multi_avg_fn(decay=0.999):
    """multi_avg_fn of an EMA: every averaged tensor moved towards its current one, in place."""
    def ema_update(averaged, current, num_averaged):
        for a, c in zip(averaged, current):
            if a.dtype.is_floating_point:
                a.lerp_(c, 1 - decay)
            else:   # an integer buffer (BatchNorm's num_batches_tracked) with use_buffers, as PyTorch does it
                a.copy_(a * decay + c * (1 - decay))
    return ema_update


def get_swa_multi_avg_fn():
    def swa_update(averaged, current, num_averaged):
        for a, c in zip(averaged, current):
            a.add_((c - a) / (num_averaged + 1))
    return swa_update


class AveragedModel(Module):
    """A deep copy of `model` (as .module) whose parameters (and, with use_buffers, buffers) are
    averaged over the update_parameters(model) calls: the first call copies, later calls apply
    avg_fn(averaged, current, n_averaged) or multi_avg_fn(averaged list, current list, n_averaged),
    the running mean by default. Without use_buffers the buffers are copied from the model."""

    def __init__(self, model, device=None, avg_fn=None, multi_avg_fn=None, use_buffers=False):
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise ArgumentError("AveragedModel: give avg_fn or multi_avg_fn, not both")
        self.module = copy.deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", tensor(0, dtype=D.int64, device=device))
        self.avg_fn, self.multi_avg_fn, self.use_buffers = avg_fn, multi_avg_fn, use_buffers

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _tensors(self, model):
        return list(itertools.chain(model.parameters(), model.buffers()) if self.use_buffers else model.parameters())

    @no_grad()
    def update_parameters(self, model):
        mine = [t.detach() for t in self._tensors(self.module)]
        theirs = [t.detach() for t in self._tensors(model)]
        if len(mine) != len(theirs):
            raise ArgumentError(f"AveragedModel.update_parameters: the model has {len(theirs)} tensors to average, the "
                                f"averaged copy {len(mine)}; pass the model this AveragedModel was made from")
        n = int(self.n_averaged.item())
        if n == 0:
            for a, c in zip(mine, theirs):
                a.copy_(c.to(a.device))
        elif self.multi_avg_fn is not None:
            self.multi_avg_fn(mine, [c.to(a.device) for a, c in zip(mine, theirs)], self.n_averaged.to(mine[0].device))
        else:
            fn = self.avg_fn or get_swa_avg_fn()
            for a, c in zip(mine, theirs):
                a.copy_(fn(a, c.to(a.device), self.n_averaged.to(a.device)))
        if not self.use_buffers:   # the buffers follow the model (update_bn recomputes BatchNorm's)
            for a, c in zip(self.module.buffers(), model.buffers()):
                a.detach().copy_(c.detach().to(a.device))
        self.n_averaged.add_(1)


@no_grad()
def update_bn(loader, model, device=None):
    """One pass over `loader` in train mode with each BatchNorm's statistics reset and averaged
    cumulatively (momentum None), to give averaged weights their own statistics. A batch that is a
    list or tuple gives its first element to the model."""
    momenta = {}
    for m in model.modules():
        if isinstance(m, (BatchNorm1d, BatchNorm2d, BatchNorm3d)) and m.track_running_stats:
            m.reset_running_stats()
            momenta[m] = m.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for m in momenta:
        m.momentum = None
    for batch in loader:
        if isinstance(batch, (list, tuple)):
            batch = batch[0]
        if device is not None:
            batch = batch.to(device)
        model(batch)
    for m, momentum in momenta.items():
        m.momentum = momentum
    model.train(was_training)


class SWALR(LRScheduler):
    """Anneals each group's rate from its value to swa_lr over anneal_epochs steps ('cos' or
    'linear'), then keeps it there."""

    def __init__(self, optimizer, swa_lr, anneal_epochs=10, anneal_strategy="cos", last_epoch=-1):
        for group, lr in zip(optimizer.param_groups, per_group("swa_lr", optimizer, swa_lr)):
            group["swa_lr"] = lr
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"SWALR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"SWALR: anneal_epochs must be a non-negative integer, got {anneal_epochs!r}")
        self.anneal_func = self._cos if anneal_strategy == "cos" else self._linear
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear(t):
        return t

    @staticmethod
    def _cos(t):
        return (1 - math.cos(math.pi * t)) / 2

    def _fraction(self, step):
        return max(0.0, min(1.0, step / max(1, self.anneal_epochs)))

    def get_lr(self):
        # the rate this schedule started from, recovered from the current one (the chainable form)
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev = self.anneal_func(self._fraction(step - 1))
        alpha = self.anneal_func(self._fraction(step))
        out = []
        for group, lr in zip(self.optimizer.param_groups, group_rates(self.optimizer)):
            swa = group["swa_lr"]
            start = swa if prev == 1 else (lr - prev * swa) / (1 - prev)
            out.append(swa * alpha + start * (1 - alpha))
        return out

    def state_dict(self):
        return {k: v for k, v in super().state_dict().items() if k != "anneal_func"} | \
            {"anneal_strategy": "cos" if self.anneal_func == self._cos else "linear"}

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        strategy = state_dict.pop("anneal_strategy", "cos")
        super().load_state_dict(state_dict)
        self.anneal_func = self._cos if strategy == "cos" else self._linear
