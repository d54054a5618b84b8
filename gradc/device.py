"""Devices: "cpu" (NumPy arrays) and "cuda[:N]" (CuPy arrays). The same op kernels run on both,
since each kernel receives the array module of its operands."""
import functools

import numpy as np

from .errors import DeviceError


class Device:
    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        self.type = type
        self.index = index

    def __repr__(self):
        return f"device(type='{self.type}'" + (f", index={self.index})" if self.index is not None else ")")

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, Device) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    def __reduce__(self):  # pickle and deepcopy give back the CPU singleton (code tests `is CPU`)
        return (device, (str(self),))

    # `with gradc.device("cuda"):` makes it the device of new tensors made without one, as torch's.
    def __enter__(self):
        global _default
        _entered.append(_default)
        _default = self
        return self

    def __exit__(self, *exc):
        global _default
        _default = _entered.pop()

    @property
    def xp(self):
        """The array module that holds this device's data."""
        return np if self.type == "cpu" else cupy_module()


CPU = Device("cpu")
_default = CPU       # where creation functions put a tensor when no device is given
_entered = []        # the defaults that `with device(...)` blocks replaced, innermost last


def set_default_device(d):
    """torch.set_default_device: the device of tensors that creation functions (and new modules'
    parameters) make without a device argument; None restores the CPU."""
    global _default
    _default = CPU if d is None else device(d)


def get_default_device():
    return _default


def creation_device(spec):
    """The device a creation function puts its tensor on: `spec`, or the default; checked to exist."""
    return require(device(spec) if spec is not None else _default)


def device(spec, index=None):
    """Parse "cpu", "cuda", "cuda:N", ("cuda", N) or a Device; unknown strings raise DeviceError."""
    if index is not None:
        if not isinstance(spec, str) or ":" in spec or not isinstance(index, int) or index < 0:
            raise DeviceError(f"device({spec!r}, {index!r}): expected a device type and an index, as ('cuda', 0)")
        spec = f"{spec}:{index}" if spec != "cpu" else spec
    if spec is None:
        return CPU
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise DeviceError(f"expected a device such as 'cpu' or 'cuda:0', got {spec!r}")
    kind, _, idx = spec.partition(":")
    if kind == "cpu" and idx in ("", "0"):   # (torch names the one CPU "cpu" and accepts "cpu:0")
        return CPU
    if kind == "cuda" and (not idx or idx.isdigit()):
        return Device("cuda", int(idx) if idx else 0)
    raise DeviceError(f"unknown device {spec!r}; expected 'cpu', 'cuda' or 'cuda:N'")


def require(dev):
    """Check that a device exists here before any data goes to it."""
    if dev.type == "cuda":
        n = device_count()
        if n == 0:
            raise DeviceError(why_no_cuda())
        if dev.index >= n:
            raise DeviceError(f"device {dev} does not exist: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})")
    return dev


@functools.lru_cache(maxsize=None)
def cupy_module():
    try:
        import cupy
    except ImportError:
        raise DeviceError("CUDA needs CuPy, which is not installed: pip install 'gradc[cuda]'") from None
    return cupy


def why_no_cuda():
    try:
        cp = cupy_module()
    except DeviceError as e:
        return str(e)
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # CuPy raises its own runtime errors when no driver or GPU exists
        return f"CuPy is installed but no usable CUDA GPU was found ({type(e).__name__}: {e}); run on the CPU with device='cpu'"
    return "no CUDA GPU was found; run on the CPU with device='cpu'"


@functools.lru_cache(maxsize=None)
def device_count():
    try:
        return int(cupy_module().cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def is_available():
    return device_count() > 0


def common_device(name, tensors, where=None):
    """The one device all of an op's operands are on (a DeviceError naming both when they differ)."""
    dev = tensors[0].device
    for t in tensors:
        if t.device is not dev and t.device != dev:
            at = f" at {where}" if where else ""
            raise DeviceError(f"{name}: operands are on different devices ({dev} and {t.device}){at}; "
                              f"move them to one device with .to('{dev}')")
    return dev
