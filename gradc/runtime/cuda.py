"""Loading CUDA programs: kernels are compiled with NVRTC through CuPy on first use (CuPy keeps
compiled modules in its on-disk cache, keyed by the source), and the generated host module is
imported through gradc's own cache. A compile error shows the numbered source and the message.
The program's entry runs through a CUDA graph once warm (runtime/cuda_graphs.py; opt out with
GRADC_CUDA_GRAPHS=0)."""
from ..device import DeviceError, cupy_module, is_available
from ..errors import GradcError
from ..ops import OPS
from . import cache, cuda_graphs

OPTIONS = ("--std=c++14",)


def numbered(source):
    return "\n".join(f"{i:5d}  {line}" for i, line in enumerate(source.splitlines(), 1))


def compile_module(kernels_src):
    """A cupy.RawModule with every kernel compiled (raises GradcError with the source on failure)."""
    if not is_available():
        raise DeviceError("running a CUDA program needs a CUDA GPU and CuPy (pip install 'gradc[cuda]'); "
                          "lowering and dumping CUDA code works without one")
    cp = cupy_module()
    cache.store(kernels_src, suffix=".cu", kind="cuda")
    module = cp.RawModule(code=kernels_src, options=OPTIONS)
    try:
        module.compile()
    except Exception as e:  # cupy.cuda.compiler.CompileException
        raise GradcError(f"generated CUDA failed to compile:\n{e}\n--- source ---\n{numbered(kernels_src)}") from None
    return module


def load(kernels_src, host_src, constants, sizes=None):
    module = compile_module(kernels_src)
    host = cache.load_module(host_src)
    run = host.make(constants, module, sizes)
    # A collective talks to the other ranks from the host on every call; a replayed graph would
    # skip that on some ranks and not others (a miss reruns the host function), so it is never captured.
    collective = any(OPS[name[2:]].kind == "collective" for name in dir(host)
                     if name.startswith("K_") and name[2:] in OPS)
    return cuda_graphs.GraphRunner(run, cupy_module()) if cuda_graphs.enabled() and not collective else \
        cuda_graphs.checked(run)
