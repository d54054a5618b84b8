"""GradScaler: dynamic loss scaling for float16 training, with PyTorch's semantics and defaults.

Every decision is made on data. The inf/nan check of the gradients is a tensor (`found_inf`, 0 or
1); a step with a non-finite gradient is undone with gradc.where, so parameters and optimizer state
keep their old values; the scale and its growth tracker are updated with tensor ops. A compiled
training step that uses the scaler therefore carries the check, the skip and the scale update in
its graph and never reads a value back to the host."""
import enum
import warnings
from collections.abc import Iterable

from .. import dtypes as D
from ..autograd import no_grad
from ..device import is_available as cuda_available
from ..errors import DTypeError, GradcError
from ..tensor import Tensor
from ..functions import full, where, zeros, zeros_like
from .. import dispatch


class AmpError(GradcError, RuntimeError):
    """GradScaler used out of order (unscale_ twice, step twice, update without a step)."""


class _Stage(enum.Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _fresh_state():
    return {"stage": _Stage.READY, "found_inf": None}


class GradScaler:
    """Scales the loss so that float16 gradients do not underflow, and unscales them before the step.

        scaler = gradc.amp.GradScaler()
        with gradc.amp.autocast():
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)        # unscales (unless unscale_ ran), skips the update on inf/nan gradients
        scaler.update()         # backoff after an overflow, growth after growth_interval clean steps

    The scale, the growth tracker and the hyper-parameters are 0-d tensors, so a compiled step
    reads them as data (changing them never leaves a stale program). `device`, the first argument as
    in PyTorch 2.x (GradScaler("cuda")), is where they live; by default (None) the CPU, moved to the
    loss's device on the first eager `scale()`."""

    def __init__(self, device=None, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        if isinstance(device, (int, float)) and not isinstance(device, bool):
            raise GradcError(f"GradScaler({device!r}, ...): the first argument is the device, as in PyTorch 2.x "
                             f"(GradScaler('cuda'), GradScaler('cpu')); pass the scale by keyword: "
                             f"GradScaler(init_scale={device!r})")
        if not growth_factor > 1.0:
            raise GradcError(f"GradScaler: growth_factor must be > 1.0, got {growth_factor}")
        if not backoff_factor < 1.0:
            raise GradcError(f"GradScaler: backoff_factor must be < 1.0, got {backoff_factor}")
        if not (isinstance(growth_interval, int) and growth_interval > 0):
            raise GradcError(f"GradScaler: growth_interval must be a positive int, got {growth_interval!r}")
        if enabled and str(device).startswith("cuda") and not cuda_available():
            warnings.warn("GradScaler('cuda') is enabled, but CUDA is not available: it is disabled, as in PyTorch "
                          "(use GradScaler('cpu') to scale a float16 loss on the CPU)", UserWarning, stacklevel=2)
            enabled = False
        self._enabled = bool(enabled)
        self._per_optimizer_states = {}
        if self._enabled:
            self._device_fixed = device is not None
            dev = device if device is not None else "cpu"
            self._scale = full((), float(init_scale), dtype=D.float32, device=dev)
            self._growth_tracker = zeros((), dtype=D.int64, device=dev)
            # float64, as PyTorch multiplies the float32 scale by Python floats and rounds once
            self._growth_factor = full((), float(growth_factor), dtype=D.float64, device=dev)
            self._backoff_factor = full((), float(backoff_factor), dtype=D.float64, device=dev)
            self._growth_interval = full((), int(growth_interval), dtype=D.int64, device=dev)

    # ------------------------------------------------------------------ scaling
    def scale(self, outputs):
        """outputs * scale (a tensor, or an iterable of tensors, recursively)."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            self._follow_device(outputs.device)
            return outputs * self._scale
        if isinstance(outputs, Iterable):
            scaled = map(self.scale, outputs)
            return type(outputs)(scaled) if isinstance(outputs, (list, tuple)) else scaled
        raise GradcError(f"GradScaler.scale: outputs must be a tensor or an iterable of tensors, "
                         f"got {type(outputs).__name__}")

    def _follow_device(self, dev):
        if self._device_fixed or dispatch.tracer() is not None or dev == self._scale.device:
            return
        for name in ("_scale", "_growth_tracker", "_growth_factor", "_backoff_factor", "_growth_interval"):
            setattr(self, name, getattr(self, name).to(dev))
        self._device_fixed = True

    def _state(self, optimizer):
        return self._per_optimizer_states.setdefault(id(optimizer), _fresh_state())

    def unscale_(self, optimizer):
        """Divide the optimizer's gradients by the scale, in place, and record whether any is inf/nan.
        Once per optimizer between two update() calls (step() calls it when you did not)."""
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state["stage"] is _Stage.UNSCALED:
            raise AmpError("unscale_() has already been called on this optimizer since the last update(); "
                           "call it at most once per step, before step()")
        if state["stage"] is _Stage.STEPPED:
            raise AmpError("unscale_() is being called after step(); unscale before stepping, then call update()")
        with no_grad():
            inv_scale = (1.0 / self._scale.double()).float()  # PyTorch's reciprocal in float64
            state["found_inf"] = self._unscale_grads(optimizer, inv_scale)
        state["stage"] = _Stage.UNSCALED

    def _unscale_grads(self, optimizer, inv_scale):
        bad = None
        for group in optimizer.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None or g.numel() == 0:
                    continue
                if g.dtype is D.float16:
                    raise DTypeError("GradScaler: attempting to unscale float16 gradients; keep the parameters "
                                     "in float32 (autocast casts them for the float16 ops)")
                nonfinite = ~(g.abs().amax() < float("inf"))  # true for inf and for nan
                bad = nonfinite if bad is None else bad | nonfinite
                g.mul_(inv_scale)
        if bad is None:
            return zeros((), dtype=D.float32, device=self._scale.device)
        return bad.to(D.float32)

    # ------------------------------------------------------------------ stepping
    def step(self, optimizer, *args, **kwargs):
        """optimizer.step() with the update undone where any gradient was inf/nan."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise AmpError("closure use is not supported with an enabled GradScaler; compute the loss, call "
                           "scaler.scale(loss).backward(), then scaler.step(optimizer)")
        state = self._state(optimizer)
        if state["stage"] is _Stage.STEPPED:
            raise AmpError("step() has already been called since the last update(); call update() once per step")
        if state["stage"] is _Stage.READY:
            self.unscale_(optimizer)
        result = _masked_step(optimizer, state["found_inf"] > 0, args, kwargs)
        state["stage"] = _Stage.STEPPED
        return result

    def update(self, new_scale=None):
        """Back the scale off after an overflow, grow it after growth_interval clean steps (or set it
        to `new_scale`). Call once per iteration, after every scaler.step()."""
        if not self._enabled:
            return
        with no_grad():
            if new_scale is not None:
                if isinstance(new_scale, Tensor):
                    if new_scale.numel() != 1 or new_scale.requires_grad:
                        raise AmpError("new_scale must be a float or a one-element tensor that does not require grad")
                    self._scale.copy_(new_scale.reshape(()).to(D.float32))
                else:
                    self._scale.fill_(float(new_scale))
            else:
                found = [s["found_inf"] for s in self._per_optimizer_states.values() if s["found_inf"] is not None]
                if not found:
                    raise AmpError("no inf checks were recorded before update(); call scaler.step(optimizer) "
                                   "(or scaler.unscale_(optimizer)) first")
                total = found[0]
                for f in found[1:]:
                    total = total + f
                self._update_scale(total > 0)
        self._per_optimizer_states = {}

    def _update_scale(self, overflow):
        # torch._amp_update_scale_ written with tensor ops (one where per branch of its kernel)
        scale, tracker = self._scale, self._growth_tracker
        successful = tracker + 1
        grow = successful == self._growth_interval
        backed = (scale.double() * self._backoff_factor).float()
        grown = (scale.double() * self._growth_factor).float()
        grown_ok = grown.abs() < float("inf")  # never grow past float32's range
        scale.copy_(where(overflow, backed, where(grow & grown_ok, grown, scale)))
        tracker.copy_(where(overflow | grow, 0, successful))

    # ------------------------------------------------------------------ accessors and state
    def get_scale(self):
        """The current scale as a Python float (1.0 when disabled). Reads a value: call it outside
        compiled functions."""
        return self._scale.item() if self._enabled else 1.0

    def is_enabled(self):
        return self._enabled

    def get_growth_factor(self):
        return self._growth_factor.item() if self._enabled else None

    def set_growth_factor(self, new_factor):
        self._set("_growth_factor", float(new_factor))

    def get_backoff_factor(self):
        return self._backoff_factor.item() if self._enabled else None

    def set_backoff_factor(self, new_factor):
        self._set("_backoff_factor", float(new_factor))

    def get_growth_interval(self):
        return int(self._growth_interval.item()) if self._enabled else None

    def set_growth_interval(self, new_interval):
        self._set("_growth_interval", int(new_interval))

    def _set(self, name, value):
        if self._enabled:
            with no_grad():
                getattr(self, name).fill_(value)

    def state_dict(self):
        """{"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"} as Python
        numbers (PyTorch's keys, so the dicts are interchangeable); {} when disabled."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self.get_growth_factor(),
                "backoff_factor": self.get_backoff_factor(), "growth_interval": self.get_growth_interval(),
                "_growth_tracker": int(self._growth_tracker.item())}

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise AmpError("the source state dict is empty, possibly because it was saved from a disabled "
                           "GradScaler")
        self._set("_scale", float(state_dict["scale"]))
        self._set("_growth_factor", float(state_dict["growth_factor"]))
        self._set("_backoff_factor", float(state_dict["backoff_factor"]))
        self._set("_growth_interval", int(state_dict["growth_interval"]))
        if "_growth_tracker" in state_dict:
            self._set("_growth_tracker", int(state_dict["_growth_tracker"]))

    def __repr__(self):
        if not self._enabled:
            return "GradScaler(enabled=False)"
        return f"GradScaler(scale={self.get_scale()}, growth_tracker={int(self._growth_tracker.item())})"


def _masked_step(optimizer, skip, args, kwargs):
    """optimizer.step(), then every parameter and state tensor it touched is set to
    where(skip, old value, new value): the step happens as data, with no host round trip."""
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    grads = [p.grad for p in params]
    with no_grad():
        old_params = [p.clone() for p in params]
        old_state = {id(p): {k: v.clone() for k, v in optimizer.state.get(p, {}).items() if isinstance(v, Tensor)}
                     for p in params}
        for p, g in zip(params, grads):
            # The optimizer sees zeros on a skipped step, so it never computes with inf/nan. Set
            # without the .grad setter: .grad is given back below, this is not a new gradient.
            p._grad = where(skip, 0.0, g)
    try:
        result = optimizer.step(*args, **kwargs)
    finally:
        for p, g in zip(params, grads):
            p._grad = g
    created = []
    with no_grad():
        for p, old in zip(params, old_params):
            p.copy_(where(skip, old, p))
        for p in params:
            for k, v in optimizer.state.get(p, {}).items():
                if not isinstance(v, Tensor):
                    continue
                old = old_state[id(p)].get(k)
                if old is None:
                    # State made by this step: a skipped step leaves it as it was made (zeros). While
                    # traced, that is its value when the program starts, which later calls give.
                    created.append((p, k))
                    tracer = dispatch.tracer()
                    old = tracer.entry_value(v) if tracer is not None else None
                    old = zeros_like(v) if old is None else old
                v.copy_(where(skip, old, v))
    if created and dispatch.tracer() is None and skip.item():
        # Eagerly, a skipped first step removes the state it created, as PyTorch never creates it.
        # (Only on the step that creates state; inside a compiled step the zeros above stand.)
        for p, k in created:
            optimizer.state[p].pop(k, None)
            if not optimizer.state[p]:
                del optimizer.state[p]
    return result
