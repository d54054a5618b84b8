"""gradc.utils: data loading (gradc.utils.data), as torch.utils."""
from . import data  # noqa: F401
