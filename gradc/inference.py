"""gradc.inference_mode: torch.inference_mode's interface. inference_mode() (or True) turns off
history recording like no_grad and marks the region, which is_inference_mode_enabled() reports;
inference_mode(False) turns recording back on inside such a region, as in PyTorch. gradc has no
separate "inference tensors": results are plain tensors without history, exactly as under no_grad."""
import functools
import threading

from .errors import GradcError
from .grad_mode import is_grad_enabled, set_grad_enabled

_local = threading.local()


def is_inference_mode_enabled():
    """Whether this thread is inside an inference_mode(True) region."""
    return getattr(_local, "enabled", False)


class inference_mode:
    """Context manager and decorator (also bare: @gradc.inference_mode)."""

    def __new__(cls, mode=True):
        self = super().__new__(cls)
        if isinstance(mode, bool):
            return self
        if callable(mode):  # bare decorator: `mode` is the function
            self.__init__(True)
            return self(mode)
        raise GradcError(f"inference_mode(mode): mode must be True or False, got {mode!r}")

    def __init__(self, mode=True):
        self.mode = mode
        self._prev = []

    def __enter__(self):
        self._prev.append((is_grad_enabled(), is_inference_mode_enabled()))
        set_grad_enabled(not self.mode)
        _local.enabled = self.mode
        return self

    def __exit__(self, *exc):
        grad, inference = self._prev.pop()
        set_grad_enabled(grad)
        _local.enabled = inference
        return False

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(mode):
                return fn(*args, **kwargs)
        return wrapper

    def clone(self):
        return inference_mode(self.mode)

    def __repr__(self):
        return f"gradc.inference_mode(mode={self.mode})"
