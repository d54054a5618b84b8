"""torch.nn.modules.pixelshuffle."""
from ..activation import PixelShuffle, PixelUnshuffle  # noqa: F401
