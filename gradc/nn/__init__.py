"""gradc.nn: modules, parameters and the functional API."""
from .module import Module, Parameter
from .layers import (Identity, Linear, Sequential, ModuleList, ReLU, GELU, Tanh, Sigmoid, Softmax, Flatten,
                     LayerNorm, Embedding, Dropout, MSELoss, CrossEntropyLoss)
from . import functional, init
from . import parallel
from .parallel import DataParallel
