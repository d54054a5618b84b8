"""gradc.optim: SGD, Adam and AdamW with PyTorch's update rules."""
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam, AdamW
