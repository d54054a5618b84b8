"""torch.nn.modules.linear."""
from ..layers import Identity, Linear  # noqa: F401
from ..layers_more import Bilinear, LazyLinear  # noqa: F401
