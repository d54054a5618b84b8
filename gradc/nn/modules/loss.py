"""torch.nn.modules.loss."""
from ..layers import CrossEntropyLoss, MSELoss, NLLLoss  # noqa: F401
from ..loss_modules import *  # noqa: F401,F403
from ..loss_modules import _Loss, _WeightedLoss  # noqa: F401
from ..loss_modules_more import *  # noqa: F401,F403
