"""gradc.cuda: what PyTorch users ask of torch.cuda."""
from .device import device_count, is_available  # noqa: F401
