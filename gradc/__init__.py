"""gradc: a PyTorch-shaped deep-learning library that runs eagerly with autograd, and a compiler
that traces the same code into a graph and generates NumPy or CUDA source for it."""
__version__ = "0.1.0"

from .errors import GradcError, ShapeError, DTypeError, AutogradError, TraceError, DeviceError, ArtifactError
from .dtypes import bool_ as bool, int64, float16, float32, float64, DType as dtype
from .device import Device as _Device, device
from .autograd import no_grad, enable_grad, is_grad_enabled, set_grad_enabled
from .random import manual_seed, get_rng_state, set_rng_state
from .tensor import (Tensor, tensor, as_tensor, from_numpy, zeros, ones, full, empty, zeros_like, ones_like,
                     full_like, empty_like, arange, linspace, eye, rand, randn, rand_like, randn_like, randint,
                     randperm, where, cat, stack, matmul, mm)
from . import cuda
from . import nn, optim, amp
from . import distributed

long = int64
float = float32
half = float16
double = float64


def _method(name):
    def fn(input, *args, **kwargs):
        return getattr(input, name)(*args, **kwargs)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"gradc.{name}(input, ...) is input.{name}(...)."
    return fn


for _name in ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "erf", "sin", "cos", "abs", "sign", "neg", "relu",
              "clamp", "clip", "square", "maximum", "minimum", "pow", "sum", "mean", "var", "std", "amax", "amin",
              "max", "min", "argmax", "argmin", "softmax", "log_softmax", "reshape", "flatten", "transpose",
              "permute", "unsqueeze", "squeeze", "t", "expand", "broadcast_to", "chunk", "split", "clone",
              "detach", "numel", "logical_not", "all", "any", "add", "sub", "mul", "div", "eq", "ne", "lt", "le",
              "gt", "ge"):
    globals()[_name] = _method(_name)
del _name


def concat(tensors, dim=0):
    return cat(tensors, dim)

from .compiler import compile, CompiledFunction  # noqa: E402
from .runtime.program import Program  # noqa: E402
from .runtime.artifact import export, load  # noqa: E402
from . import debug  # noqa: E402
