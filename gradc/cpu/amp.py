"""gradc.cpu.amp: torch.cpu.amp's autocast and GradScaler, gradc.autocast and gradc.amp.GradScaler
with the device fixed to "cpu". PyTorch's CPU default of bfloat16 is float16 here (NumPy has no
bfloat16), as for gradc.autocast("cpu")."""
from ..amp import GradScaler as _GradScaler, device_autocast

__all__ = ["autocast", "GradScaler"]


class autocast(device_autocast):
    """torch.cpu.amp.autocast(enabled=True, dtype=None, cache_enabled=True)."""

    def __init__(self, enabled=True, dtype=None, cache_enabled=True):
        super().__init__("cpu", dtype, enabled, cache_enabled)


class GradScaler(_GradScaler):
    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        super().__init__("cpu", init_scale, growth_factor, backoff_factor, growth_interval, enabled)
