"""torch.nn.modules.conv."""
from ..conv import *  # noqa: F401,F403
from ..conv import _ConvNd, _ConvTransposeNd  # noqa: F401
from ..layers_more import LazyConv1d, LazyConv2d  # noqa: F401
