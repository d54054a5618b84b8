"""gradc.cuda.amp: torch.cuda.amp's autocast and GradScaler (older PyTorch scripts still use them):
gradc.autocast and gradc.amp.GradScaler with the device fixed to "cuda"."""
from .. import dtypes as D
from ..amp import GradScaler as _GradScaler, device_autocast

__all__ = ["autocast", "GradScaler"]


class autocast(device_autocast):
    """torch.cuda.amp.autocast(enabled=True, dtype=float16, cache_enabled=True)."""

    def __init__(self, enabled=True, dtype=D.float16, cache_enabled=True):
        super().__init__("cuda", dtype, enabled, cache_enabled)


class GradScaler(_GradScaler):
    """torch.cuda.amp.GradScaler(init_scale, growth_factor, backoff_factor, growth_interval, enabled):
    the scaler's state lives on the GPU (a DeviceError without one, unless enabled=False)."""

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        super().__init__("cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled)
