"""torch.nn.modules.flatten."""
from ..container import Unflatten  # noqa: F401
from ..layers import Flatten  # noqa: F401
