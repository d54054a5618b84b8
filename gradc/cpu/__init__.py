"""gradc.cpu: torch.cpu's names scripts call (is_available, device_count, synchronize, amp)."""
from . import amp  # noqa: F401

__all__ = ["amp", "is_available", "device_count", "synchronize", "current_device"]


def is_available():
    return True


def device_count():
    return 1


def current_device():
    return "cpu"


def synchronize(device=None):
    """Nothing to wait for: CPU work is done when the call returns."""
