"""gradc.backends: the switches PyTorch scripts set at start-up (torch.backends.cuda.matmul.allow_tf32,
torch.backends.cudnn.benchmark, ...), with what each one means here.

gradc has no cuDNN and no MPS: `cudnn.is_available()` and `mps.is_available()` are False, and
cuDNN's switches (`enabled`, `benchmark`, `deterministic`, `allow_tf32`) choose among cuDNN
algorithms, which gradc never calls, so they change nothing, as in PyTorch on a machine without
cuDNN. `cuda.matmul.allow_tf32` and `allow_fp16_reduced_precision_reduction` permit lower
precision; gradc's matrix products always run in full float32 (TF32 is never used), which every
setting allows. Any other name is refused, so a misspelt switch is not silently kept."""
from .device import is_available as _cuda_is_available
from .errors import GradcError


class _Switches:
    """A namespace of named boolean switches; assigning a name it does not have raises."""

    def __init__(self, where, **switches):
        object.__setattr__(self, "_where", where)
        object.__setattr__(self, "_switches", dict(switches))

    def __getattr__(self, name):
        switches = object.__getattribute__(self, "_switches")
        if name in switches:
            return switches[name]
        raise AttributeError(f"{object.__getattribute__(self, '_where')} has no attribute '{name}'")

    def __setattr__(self, name, value):
        switches = object.__getattribute__(self, "_switches")
        if name not in switches:
            raise GradcError(f"{self._where}.{name} is not a switch gradc has; it has: {', '.join(sorted(switches))}")
        switches[name] = bool(value)

    def __repr__(self):
        return f"<{self._where} {self._switches}>"


class _Cudnn(_Switches):
    def is_available(self):
        return False

    def version(self):
        return None


class _Mps:
    @staticmethod
    def is_available():
        return False

    @staticmethod
    def is_built():
        return False


class _Cuda:
    def __init__(self):
        self.matmul = _Switches("gradc.backends.cuda.matmul", allow_tf32=False,
                                allow_fp16_reduced_precision_reduction=True,
                                allow_bf16_reduced_precision_reduction=True)

    @staticmethod
    def is_built():
        return _cuda_is_available()

    # Which of PyTorch's attention kernels may run: gradc has one exact attention, which each allows.
    _sdp = {"flash": True, "mem_efficient": True, "math": True, "cudnn": True}

    def _sdp_switch(kind):   # (in the class body: enable_<kind>_sdp(enabled) and <kind>_sdp_enabled())
        def enable(self, enabled):
            self._sdp[kind] = bool(enabled)

        def enabled(self):
            return self._sdp[kind]
        return enable, enabled

    enable_flash_sdp, flash_sdp_enabled = _sdp_switch("flash")
    enable_mem_efficient_sdp, mem_efficient_sdp_enabled = _sdp_switch("mem_efficient")
    enable_math_sdp, math_sdp_enabled = _sdp_switch("math")
    enable_cudnn_sdp, cudnn_sdp_enabled = _sdp_switch("cudnn")
    del _sdp_switch

cudnn = _Cudnn("gradc.backends.cudnn", enabled=True, benchmark=False, deterministic=False, allow_tf32=True)
cuda = _Cuda()
mps = _Mps()

_MATMUL_PRECISION = ["highest"]


def set_float32_matmul_precision(precision):
    """Record the precision PyTorch lets float32 matrix products use ('highest', 'high' or 'medium').
    'high' and 'medium' permit TF32 or bfloat16 internally; gradc always computes them in full
    float32, which every setting allows."""
    if precision not in ("highest", "high", "medium"):
        raise ValueError(f"set_float32_matmul_precision: precision must be 'highest', 'high' or 'medium', "
                         f"got {precision!r}")
    _MATMUL_PRECISION[0] = precision


def get_float32_matmul_precision():
    return _MATMUL_PRECISION[0]
