"""torch.accelerator: the one accelerator gradc drives is a CUDA GPU, through CuPy."""
import importlib.util

from .device import Device, device_count as _cuda_count, is_available as _cuda_available


def is_available():
    return _cuda_available()


def current_accelerator(check_available=False):
    """The CUDA device when CuPy is installed (with check_available=True: and a GPU is usable), else None,
    as PyTorch's build without an accelerator answers."""
    usable = _cuda_available() if check_available else importlib.util.find_spec("cupy") is not None
    return Device("cuda", 0) if usable else None


def device_count():
    return _cuda_count()
