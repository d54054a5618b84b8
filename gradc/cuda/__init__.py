"""gradc.cuda: what PyTorch users ask of torch.cuda. gradc draws the random numbers of every device
from one generator on the host, so seeding "the CUDA generator" seeds that one."""
from .. import random as _random
from ..device import device as _device, device_count, is_available, require as _require
from ..errors import DeviceError
from . import amp  # noqa: F401  (gradc.cuda.amp.autocast / GradScaler)

__all__ = ["is_available", "device_count", "current_device", "manual_seed", "manual_seed_all", "synchronize",
           "empty_cache", "is_bf16_supported", "amp"]


def _cuda(device):
    dev = _device("cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else device))
    if dev.type != "cuda":
        raise DeviceError(f"gradc.cuda: {dev} is not a CUDA device")
    return _require(dev)


def manual_seed(seed):
    """Seed the random numbers of CUDA tensors: gradc's one generator (as gradc.manual_seed)."""
    _random.manual_seed(seed)


def manual_seed_all(seed):
    """Seed the random numbers of every GPU: gradc's one generator (as gradc.manual_seed)."""
    _random.manual_seed(seed)


def current_device():
    """The index of the current CUDA device (a DeviceError when there is none)."""
    dev = _cuda(None)
    return int(dev.xp.cuda.runtime.getDevice())


def synchronize(device=None):
    """Wait until every kernel queued on `device` (the current one by default) has finished: what
    timing code calls before reading a clock. A DeviceError when there is no GPU, as in torch."""
    dev = _cuda(device)
    dev.xp.cuda.Device(dev.index if device is not None else current_device()).synchronize()


def empty_cache():
    """Return the cached, unused GPU memory blocks of CuPy's pools to the driver."""
    if is_available():
        cp = _cuda(None).xp
        cp.get_default_memory_pool().free_all_blocks()
        cp.get_default_pinned_memory_pool().free_all_blocks()


def is_bf16_supported():
    """False: gradc has no bfloat16 tensors (NumPy has no bfloat16); autocast uses float16."""
    return False


def get_device_name(device=None):
    """The GPU's name, as CuPy's runtime reports it."""
    dev = _cuda(device)
    return dev.xp.cuda.runtime.getDeviceProperties(dev.index or 0)["name"].decode()
