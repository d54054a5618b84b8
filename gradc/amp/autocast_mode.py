"""autocast: run each primitive in the dtype its autocast policy asks for.

The policy is the `amp` field of each primitive in the op table ("fp16", "fp32" or "follow").
While an autocast region is open in any thread, an `Autocast` mode sits on the dispatch stack
above the interpreters and hands every primitive call to `cast_operands` before it is run or
traced, so eager execution and tracing insert the same
casts, and autograd differentiates through them (a cast's gradient is cast back, so parameters
and their gradients keep their own dtype). The state is per thread, as grad mode is."""
import functools
import threading
import warnings

from .. import dispatch
from .. import dtypes as D
from ..device import is_available as cuda_available
from ..errors import DTypeError

class _Local(threading.local):
    dtype = None   # the low-precision dtype of this thread's open region, None when off (read on every compiled call)


_local = _Local()
_lock = threading.Lock()
_open = [0]  # enabled regions open in all threads: the mode is on the dispatch stack while this is > 0

_DEVICE_TYPES = ("cpu", "cuda")


def is_autocast_enabled(device_type=None):
    """Whether ops called from this thread run under an autocast policy now (the policy is the same
    on every device, so device_type, checked, names any of them)."""
    if device_type is not None:   # (read on every compiled call: no extra call without one)
        _check_device_type(device_type)
    return _local.dtype is not None


def get_autocast_dtype(device_type=None):
    """The low-precision dtype of the open autocast region (float16 when none is open)."""
    _check_device_type(device_type)
    return _local.dtype or D.float16


def _check_device_type(device_type):
    if device_type is not None and device_type not in _DEVICE_TYPES:
        raise DTypeError(f"autocast: unknown device_type {device_type!r}; use 'cpu' or 'cuda'")


def cast_operands(prim, args):
    """The operands `prim` runs on under this thread's autocast policy (`args` when unchanged)."""
    policy = prim.amp
    if policy == "follow":
        return args
    low = _local.dtype
    if low is None:
        return args
    # float64 is never touched (as in PyTorch): only the float32 <-> float16 pair is autocast's business.
    src, dst = (D.float32, low) if policy == "fp16" else (low, D.float32)
    for a in args:
        if a.dtype is src:
            return tuple(x.to(dst) if x.dtype is src else x for x in args)
    return args


def _low_dtype(dtype):
    if dtype is None:
        return D.float16
    if "bfloat16" in str(getattr(dtype, "name", dtype)):
        raise DTypeError("autocast(dtype=bfloat16) is not supported: NumPy has no bfloat16, so gradc has no "
                         "bfloat16 tensors; use autocast() (float16) with a GradScaler")
    dtype = D.get_dtype(dtype)
    if dtype is not D.float16:
        raise DTypeError(f"autocast(dtype={dtype!r}) is not supported: gradc's autocast runs in float16 only "
                         "(NumPy has no bfloat16); use autocast() or autocast(dtype=gradc.float16)")
    return dtype


class Autocast(dispatch.Mode):
    """The transform mode: casts operands per policy, then passes the call down."""
    order = 0

    def bind(self, prim, args, attrs):
        return self.below.bind(prim, cast_operands(prim, args), attrs)

    def low_dtype(self):
        return _local.dtype


_MODE = Autocast()


def _install(delta):
    with _lock:
        _open[0] += delta
        if _open[0] == delta and delta > 0:
            dispatch.push(_MODE)
        elif _open[0] == 0 and delta < 0:
            dispatch.pop(_MODE)


class autocast:
    """Context manager and decorator: ops inside run per the autocast policy.

        with gradc.amp.autocast():
            loss = loss_fn(model(x), y)    # matmuls in float16, reductions and losses in float32
        loss.backward()                    # outside the region, as in PyTorch

    `enabled=False` turns autocast off inside an enclosing region. `device_type` ("cpu" or
    "cuda", also accepted as the first argument as in torch.autocast) is checked and otherwise
    ignored: the policy is the same on every device."""

    def __new__(cls, dtype=None, enabled=True, device_type=None):
        self = super().__new__(cls)
        if callable(dtype) and not isinstance(dtype, (D.DType, type, str)):
            self.__init__()  # bare @autocast: decorate with the defaults
            return self(dtype)
        return self

    def __init__(self, dtype=None, enabled=True, device_type=None):
        if isinstance(dtype, str) and dtype in _DEVICE_TYPES:
            dtype, device_type = None, dtype
        if device_type is not None and device_type not in _DEVICE_TYPES:
            raise DTypeError(f"autocast: unknown device_type {device_type!r}; use 'cpu' or 'cuda'")
        self.enabled = bool(enabled)
        # (a disabled region casts nothing: torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_amp) runs)
        self.dtype = _low_dtype(dtype) if self.enabled else D.float16
        self._prev = []

    def __enter__(self):
        self._prev.append(_local.dtype)
        _local.dtype = self.dtype if self.enabled else None
        if self.enabled:
            _install(+1)
        return self

    def __exit__(self, *exc):
        _local.dtype = self._prev.pop()
        if self.enabled:
            _install(-1)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.dtype, self.enabled):
                return fn(*args, **kwargs)
        return wrapper

    def __repr__(self):
        return f"gradc.amp.autocast(dtype={self.dtype!r}, enabled={self.enabled})"


class device_autocast(autocast):
    """gradc.autocast(device_type, dtype=None, enabled=True, cache_enabled=None): the signature of
    torch.autocast (PyTorch 2.x), device first. The region is gradc.amp.autocast's: the same policy
    on every device, float16 as the low precision (NumPy has no bfloat16, so torch's CPU default of
    bfloat16 is float16 here, with a warning). As in PyTorch, autocast('cuda') where CUDA is not
    available warns and is disabled. cache_enabled is accepted as in torch: gradc keeps no cast
    cache (each op casts its operands, and compiled programs share repeated casts), so it cannot
    change results."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        for name, v in (("device_type", device_type), ("enabled", enabled)):
            if callable(v):
                raise DTypeError(f"autocast: {name} is a function; decorate with the parentheses: "
                                 "@gradc.autocast('cuda')")
        if not isinstance(device_type, str):
            raise DTypeError(f"autocast: device_type must be 'cpu' or 'cuda', got {device_type!r}")
        if not isinstance(enabled, bool):
            raise DTypeError(f"autocast: enabled must be a bool, got {enabled!r}")
        if cache_enabled not in (None, True, False):
            raise DTypeError(f"autocast: cache_enabled must be a bool or None, got {cache_enabled!r}")
        if enabled and device_type.startswith("cuda") and not cuda_available():
            warnings.warn("autocast('cuda') is enabled, but CUDA is not available: it is disabled, as in PyTorch "
                          "(use autocast('cpu') for float16 on the CPU)", UserWarning, stacklevel=2)
            enabled = False
        elif enabled and device_type == "cpu" and dtype is None:
            warnings.warn("autocast('cpu') defaults to bfloat16 in PyTorch, which gradc does not have: float16 is "
                          "used (its range ends at 65504); pass dtype=gradc.float16 to say so", UserWarning, stacklevel=2)
        super().__init__(dtype, enabled, device_type=device_type)
        self.device_type = device_type
