"""Run a generated CUDA program on the CPU, for testing without a GPU (the host check).

The kernels (kernels.cu) are built as host C++ with g++ (the source's host branch: each kernel
runs its real grid and block, every barrier-separated phase as a loop over the block's threads,
warp shuffles emulated lane by lane), and the host module (host.py) runs with NumPy in CuPy's
place. This checks the kernels' index math, reduction trees, shared-memory indexing and numerics
against the NumPy backend, and raises KernelFault when a kernel made a vector access through a
misaligned pointer or the lanes of a warp ended a reduction with different bits. It says nothing
about speed, and races between GPU threads cannot show up here."""
import ctypes
import shutil
import subprocess
import sys

import numpy as np

from . import cache, cuda_graphs


def available():
    return shutil.which("g++") is not None


class KernelFault(AssertionError):
    """A generated kernel did what would fault or diverge on a GPU (see the module docstring)."""


class _Kernel:
    def __init__(self, fn, name, faults):
        self.fn, self.name, self.faults = fn, name, faults
        self.launches = 0

    def __call__(self, grid, block, args):
        conv = []
        for a in args:
            if isinstance(a, np.ndarray):
                if not a.flags.c_contiguous:
                    raise ValueError("kernel operands must be contiguous")
                conv.append(ctypes.c_void_p(a.ctypes.data))
            else:
                conv.append(ctypes.c_longlong(int(a)))
        self.launches += 1
        self.fn(*conv)
        n = self.faults() if self.faults is not None else 0
        if n:
            raise KernelFault(f"kernel {self.name} (grid {grid}, block {block}): {n} misaligned vector accesses "
                              "or warps whose lanes ended a reduction with different bits")


class _Module:
    def __init__(self, lib):
        self.lib = lib

    def get_function(self, name):
        fn = getattr(self.lib, name)
        fn.restype = None
        faults = getattr(self.lib, "gradc_emu_faults", None)
        if faults is not None:
            faults.restype = ctypes.c_int
        return _Kernel(fn, name, faults)


def build(kernels_src):
    """Compile the kernels as a shared library (cached by source hash)."""
    if "__global__ void" not in kernels_src:
        return _Module(None)  # every op runs on the host side: nothing to build
    def compile_cpp(src, out):
        r = subprocess.run(["g++", "-O0", "-shared", "-fPIC", "-std=c++11", "-x", "c++", src, "-o", out],
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"host build of generated CUDA failed:\n{r.stderr[:4000]}")
    # Built once, recorded by the hash of its bytes and loaded only when they match (cache.py).
    return _Module(cache.load_shared_object("g++ -O0 -std=c++11\n" + kernels_src, kernels_src, compile_cpp,
                                            "cuda-emulation", suffix=".cpp"))


def load(program):
    """The program's entry function, running on NumPy arrays."""
    module = build(program.source["kernels.cu"])
    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = np  # NumPy under CuPy's name: the op table's kernels take their NumPy paths
    try:
        host = cache.load_module(program.source["host.py"].replace("import cupy as cp", "import cupy as cp  # emulated"))
    finally:
        if saved is None:
            sys.modules.pop("cupy", None)
        else:
            sys.modules["cupy"] = saved
    return cuda_graphs.checked(host.make(dict(program.ir.constants), module, program.sizes))


def run(program, arrays):
    """Execute a CUDA program on host arrays; returns the outputs as NumPy arrays."""
    return [np.asarray(o) for o in load(program)(*arrays)]

