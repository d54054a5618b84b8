"""gradc.optim: SGD, Adam, AdamW, RMSprop, Adagrad and Adadelta with PyTorch's update rules, and
learning-rate schedules in gradc.optim.lr_scheduler."""
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam, AdamW
from .rmsprop import RMSprop
from .adagrad import Adagrad
from .adadelta import Adadelta
from . import lr_scheduler
