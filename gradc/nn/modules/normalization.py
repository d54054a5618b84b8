"""torch.nn.modules.normalization."""
from ..layers import LayerNorm  # noqa: F401
from ..layers_more import LocalResponseNorm  # noqa: F401
from ..normalization import GroupNorm, RMSNorm  # noqa: F401
