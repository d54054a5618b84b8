"""torch.nn.modules.upsampling."""
from ..pooling import *  # noqa: F401,F403  (Upsample and its fixed-mode spellings)
