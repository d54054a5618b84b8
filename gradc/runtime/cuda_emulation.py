"""Run a generated CUDA program on the CPU, for testing without a GPU.

The kernels (kernels.cu) are built as host C++ with g++ (the template's non-CUDA branch defines
one thread per block), and the host module (host.py) runs with NumPy in CuPy's place. This checks
the generated kernels' index math and numerics against the NumPy backend; it says nothing about
speed, and races between GPU threads cannot show up here."""
import ctypes
import shutil
import subprocess
import sys

import numpy as np

from . import cache


def available():
    return shutil.which("g++") is not None


class _Kernel:
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, grid, block, args):
        conv = []
        for a in args:
            if isinstance(a, np.ndarray):
                if not a.flags.c_contiguous:
                    raise ValueError("kernel operands must be contiguous")
                conv.append(ctypes.c_void_p(a.ctypes.data))
            else:
                conv.append(ctypes.c_longlong(int(a)))
        self.fn(*conv)


class _Module:
    def __init__(self, lib):
        self.lib = lib

    def get_function(self, name):
        fn = getattr(self.lib, name)
        fn.restype = None
        return _Kernel(fn)


def build(kernels_src):
    """Compile the kernels as a shared library (cached by source hash)."""
    if "__global__ void" not in kernels_src:
        return _Module(None)  # every op runs on the host side: nothing to build
    def compile_cpp(src, out):
        r = subprocess.run(["g++", "-O0", "-shared", "-fPIC", "-std=c++17", "-x", "c++", src, "-o", out],
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"host build of generated CUDA failed:\n{r.stderr[:4000]}")
    # Built once, recorded by the hash of its bytes and loaded only when they match (cache.py).
    return _Module(cache.load_shared_object("g++ -O0 -std=c++17\n" + kernels_src, kernels_src, compile_cpp,
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
    return host.make(dict(program.ir.constants), module)


def run(program, arrays):
    """Execute a CUDA program on host arrays; returns the outputs as NumPy arrays."""
    return [np.asarray(o) for o in load(program)(*arrays)]

