"""gradc.utils: data loading (gradc.utils.data) and activation checkpointing (gradc.utils.checkpoint), as torch.utils."""
from . import checkpoint, data  # noqa: F401
