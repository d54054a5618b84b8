"""torch.nn.modules.activation."""
from ..activation import *  # noqa: F401,F403
from ..attention import MultiheadAttention  # noqa: F401
from ..layers import GELU, ReLU, Sigmoid, Softmax, Tanh  # noqa: F401
from ..layers_more import RReLU  # noqa: F401
