"""gradc: a PyTorch-shaped deep-learning library that runs eagerly with autograd, and a compiler
that traces the same code into a graph and generates NumPy or CUDA source for it."""
import math as _math
import sys as _sys
import warnings as _warnings

from .version import __version__  # noqa: F401

# PyTorch computes inf and nan silently; NumPy warns each time. Only its floating-point warnings
# raised inside gradc's kernels and generated programs are silenced: the user's own NumPy still warns.
_warnings.filterwarnings("ignore", r"(divide by zero|invalid value|overflow|underflow) encountered in ",
                         RuntimeWarning, r"gradc(\.|_generated_|$)")

from .errors import (GradcError, ShapeError, DTypeError, AutogradError, TraceError, DeviceError, ArtifactError,
                     OutOfRangeError, OutOfMemoryError, DimensionError)
from .dtypes import (bool_ as bool, int32, int64, float16, float32, float64, bfloat16, int8, int16, uint8,  # noqa: F401
                     DType as dtype, set_default_dtype)
from .device import Device as _Device, device, get_default_device, set_default_device
from .grad_mode import no_grad, enable_grad, is_grad_enabled, set_grad_enabled
from .random import get_rng_state, set_rng_state, seed, initial_seed
from .options import (set_printoptions, use_deterministic_algorithms, are_deterministic_algorithms_enabled,  # noqa: F401
                      is_deterministic_algorithms_warn_only_enabled)
from .tensor import Tensor
from .shapes import (Size, MemoryFormat as memory_format, Layout as layout, contiguous_format,  # noqa: F401
                     preserve_format, channels_last, channels_last_3d, strided)
from .dynamic import mark_dynamic
from .functions import *  # noqa: F401,F403  (every op, from the op table and the composites)
from . import cuda, cpu  # noqa: E402
from . import accelerator  # noqa: E402
from . import nn, optim, amp  # noqa: E402
from .nn.top_level import *  # noqa: E402,F401,F403  (torch.conv2d, torch.dropout, ...)
from . import utils  # noqa: E402
from .generator import Generator, default_generator, manual_seed  # noqa: E402
from .inference import inference_mode, is_inference_mode_enabled  # noqa: E402
from .amp import device_autocast as autocast, get_autocast_dtype, is_autocast_enabled  # noqa: E402,F401
from . import distributed  # noqa: E402
from . import backends  # noqa: E402
from . import distributions  # noqa: E402
from .backends import set_float32_matmul_precision, get_float32_matmul_precision  # noqa: E402

long = int64
int = int32  # noqa: A001  (torch.int is int32)
float = float32
half = float16
double = float64

from .compiler import compile, CompiledFunction  # noqa: E402
from . import compiler, _dynamo, _inductor  # noqa: E402,F401  (torch.compiler.reset, torch._dynamo.reset, ...)
from . import jit  # noqa: E402,F401
from .compile_config import set_stance as _set_stance  # noqa: E402
compiler.set_stance = _set_stance   # torch.compiler.set_stance
nn.Module.compile = compiler.compile_in_place   # torch's model.compile()
from .runtime.native import set_num_threads, get_num_threads  # noqa: E402
from .runtime.program import Program  # noqa: E402
from .artifacts import export, load  # noqa: E402
from .serialization import save, load  # noqa: E402  (checkpoints; load also reads artifacts)
from . import debug  # noqa: E402
from . import testing  # noqa: E402
from . import special  # noqa: E402
from . import linalg  # noqa: E402
from .linalg import pinverse  # noqa: E402,F401
Tensor.pinverse = pinverse
autograd.gradcheck, autograd.gradgradcheck = testing.gradcheck, testing.gradgradcheck  # torch.autograd's names
from .custom_function import Function as _Function, FunctionCtx as _FunctionCtx  # noqa: E402
from .custom_function import once_differentiable as _once_differentiable  # noqa: E402
autograd.Function, autograd.FunctionCtx, autograd.once_differentiable = _Function, _FunctionCtx, _once_differentiable
from . import autograd_functional as _autograd_functional  # noqa: E402
# torch.autograd.functional, also importable by that path (gradc.autograd is a module, not a package)
autograd.functional = _sys.modules["gradc.autograd.functional"] = _autograd_functional
from . import func  # noqa: E402
from . import fx  # noqa: E402,F401
vmap = func.vmap


def _assert(condition, message):
    """torch._assert (torchvision's models call it): `assert condition, message`."""
    assert condition, message


from . import foreach as _foreach  # noqa: E402
_foreach.install(globals())
pi, e, inf, nan = _math.pi, _math.e, _math.inf, _math.nan   # torch.pi, torch.e, torch.inf, torch.nan
is_anomaly_enabled, is_anomaly_check_nan_enabled = autograd.is_anomaly_enabled, autograd.is_anomaly_check_nan_enabled
from . import backward_names as _backward_names  # noqa: E402
_backward_names.install(Tensor, globals(), nn.functional)   # grad_fn=<NllLossBackward0>, as PyTorch prints it
