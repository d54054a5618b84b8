"""torch.nn.modules.batchnorm."""
from ..normalization import _BatchNorm, _NormBase, BatchNorm1d, BatchNorm2d, BatchNorm3d, SyncBatchNorm  # noqa: F401
