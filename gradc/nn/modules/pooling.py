"""torch.nn.modules.pooling."""
from ..pooling import *  # noqa: F401,F403
from ..layers_more import AdaptiveAvgPool3d, FractionalMaxPool2d, LPPool1d, LPPool2d, LPPool3d  # noqa: F401
