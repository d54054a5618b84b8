"""torch.nn.modules.padding."""
from ..pooling import *  # noqa: F401,F403  (the Pad classes live beside the pools)
