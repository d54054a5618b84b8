"""torch.nn.modules.transformer."""
from ..transformer import *  # noqa: F401,F403
