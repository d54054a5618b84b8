"""Building and loading the C backend's programs, and choosing a backend on this machine.

The compiler is `CC` when set, else the first of cc, gcc and clang on PATH, else the optional
`ziglang` package (`python -m ziglang cc`, pip-installable on machines without a compiler). It is
probed once per machine (a small OpenMP translation unit must build, load and run) and the answer
is kept in the cache folder (native.json) keyed by the compiler, its version and the flags, so
`gradc info` can name them. Flags: GRADC_CFLAGS, else `-O3 -march=native`; `-fno-math-errno` is
the only math relaxation, and it keeps NaN, inf and signed zero exactly as without it. Shared
objects are built by content hash and verified before they are loaded (cache.load_shared_object);
they are loaded with ctypes (no build step of its own and part of Python; each kernel call passes
raw addresses, which is all a kernel needs).

Threads: `set_num_threads(n)` (gradc.set_num_threads), else OMP_NUM_THREADS, else the cores this
process may run on. The kernels' OpenMP threads and NumPy's BLAS never run at the same time (the
host module calls one after the other), and OpenMP threads wait passively between kernels, so the
two pools never compete for the cores."""
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

from ..errors import GradcError
from . import cache

DEFAULT_CFLAGS = ("-O3", "-march=native")
_BASE_FLAGS = ("-std=c11", "-shared", "-fPIC", "-fopenmp", "-fno-math-errno")
_PROBE = ("#include <math.h>\nint gradc_probe(void) { int n = 0;\n"
          "#pragma omp parallel reduction(+:n)\n  n += 1;\n  return n > 0 && erff(0.0f) == 0.0f; }\n")
_PROBE_SIMD = ("#include <math.h>\n#pragma omp declare simd notinbranch\nfloat erff(float);\n"
               "int gradc_probe(void) { float x[64], s = 0;\n  for (int i = 0; i < 64; i++) x[i] = i * 0.01f;\n"
               "#pragma omp simd reduction(+:s)\n  for (int i = 0; i < 64; i++) s += erff(x[i]);\n"
               "  return s > 0; }\n")
_state = {"threads": None, "probe": None}
_libs = []


# ---------------------------------------------------------------------- threads
def get_num_threads():
    if _state["threads"] is not None:
        return _state["threads"]
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def set_num_threads(n):
    """Threads the C backend's kernels use (like torch.set_num_threads)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GradcError(f"set_num_threads takes a positive integer, got {n!r}")
    _state["threads"] = n
    for lib in _libs:
        lib.gradc_set_threads(n)


# ---------------------------------------------------------------------- the compiler
def cflags():
    env = os.environ.get("GRADC_CFLAGS")
    user = tuple(shlex.split(env)) if env is not None else DEFAULT_CFLAGS
    return user + _BASE_FLAGS


def _candidates():
    cc = os.environ.get("CC")
    if cc:
        return [shlex.split(cc)]
    found = [[p] for p in (shutil.which(n) for n in ("cc", "gcc", "clang")) if p]
    try:
        import importlib.util
        if importlib.util.find_spec("ziglang") is not None:
            found.append([sys.executable, "-m", "ziglang", "cc"])
    except (ImportError, ValueError):
        pass
    return found


def _version(cmd):
    try:
        r = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=60)
        return (r.stdout or r.stderr).splitlines()[0].strip() if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def compile_c(cmd, flags, src, out):
    libs = [f for f in flags if f.startswith("-l")]   # after the source, where the linker needs them
    r = subprocess.run(cmd + [f for f in flags if not f.startswith("-l")] + [src, "-o", out] + libs + ["-lm"],
                       capture_output=True, text=True)
    if r.returncode:
        raise GradcError(f"the C compiler ({' '.join(cmd)}) failed on generated code:\n{r.stderr[:4000]}\n"
                         "set CC to another compiler, GRADC_CFLAGS to other flags, or use backend='numpy'")


def probe():
    """{"cc": [...], "version": str, "flags": [...]} of a working compiler, or {"error": why}.
    Probed once per process, and once per machine through native.json in the cache folder."""
    if _state["probe"] is not None:
        return _state["probe"]
    flags = list(cflags())
    result = {"error": "no C compiler found (set CC, install gcc or clang, or pip install ziglang)"}
    path = cache.cache_dir() / "native.json"
    try:
        known = json.loads(path.read_text())
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    # Without an OpenMP runtime (zig cc links none) kernels still build, on one thread, with
    # -fopenmp-simd keeping the vectorisation pragmas.
    serial = [f for f in flags if f != "-fopenmp"] + ["-fopenmp-simd"]
    # glibc's libmvec where it links: vectorised erf/exp/log/tanh/sin/cos/pow in the kernels
    simd = flags + ["-DGRADC_SIMD_MATH", "-lmvec"]
    for cmd in _candidates():
        version = _version(cmd)
        if version is None:
            result = {"error": f"the C compiler {' '.join(cmd)!r} does not run"}
            continue
        for fl in (simd, flags, serial):
            key = json.dumps([cmd, version, fl])
            if known.get(key) == "ok" or _works(cmd, fl, _PROBE_SIMD if fl is simd else _PROBE):
                result = {"cc": cmd, "version": version, "flags": fl, "openmp": fl is not serial}
                if known.get(key) != "ok":
                    known[key] = "ok"
                    cache.write_entry(path, json.dumps(known, indent=1))
                break
            result = {"error": f"{' '.join(cmd)} cannot build and load shared objects with {' '.join(fl)}"}
        if "cc" in result:
            break
    _state["probe"] = result
    return result


def _works(cmd, flags, probe_src):
    """Whether `cmd` builds a shared object with `flags` that loads and runs the probe."""
    import ctypes
    try:
        with tempfile.TemporaryDirectory(prefix="gradc-probe-") as tmp:
            src, out = os.path.join(tmp, "probe.c"), os.path.join(tmp, "probe.so")
            with open(src, "w") as f:
                f.write(probe_src)
            compile_c(cmd, flags, src, out)
            return ctypes.CDLL(out).gradc_probe() == 1
    except (GradcError, OSError):
        return False


def available():
    return "cc" in probe()


def reset():
    """Forget the probe (CC, GRADC_CFLAGS or PATH changed)."""
    _state["probe"] = None


# ---------------------------------------------------------------------- backend choice
def choose_backend(on_cuda):
    """"auto": GRADC_BACKEND when set (numpy, c or cuda); else cuda where the inputs are on a
    GPU, else numpy. (Choosing c on its own where a compiler works waits until every test runs
    through it; `c_status()` says whether it would work here.)"""
    env = os.environ.get("GRADC_BACKEND")
    if env:
        if env not in ("numpy", "c", "cuda"):
            raise GradcError(f"GRADC_BACKEND={env!r}: choose numpy, c or cuda (or unset it for auto)")
        return env
    if on_cuda:
        return "cuda"
    return "numpy"


def c_status():
    """One line for `gradc info`: the compiler and flags backend 'c' builds with, or why it cannot."""
    found = probe()
    if "cc" not in found:
        return f"unavailable ({found['error']})"
    threads = "" if found.get("openmp", True) else "; no OpenMP runtime: kernels run on one thread"
    return f"{' '.join(found['cc'])} ({found['version']}), flags {' '.join(found['flags'])}{threads}"


# ---------------------------------------------------------------------- loading
def load(source, consts):
    """The entry function of a C program: its shared object built (or taken from the cache after
    verification), its host module imported."""
    found = probe()
    if "cc" not in found:
        raise GradcError(f"backend 'c' needs a C compiler: {found['error']}; or compile with backend='numpy'")
    c_src = source["program.c"]
    key = "\n".join([" ".join(found["cc"]), found["version"], " ".join(found["flags"]), c_src])
    lib = cache.load_shared_object(key, c_src, lambda s, o: compile_c(found["cc"], found["flags"], s, o), "c")
    if lib not in _libs:
        _libs.append(lib)
    lib.gradc_set_threads(get_num_threads())
    return cache.load_module(source["host.py"]).make(consts, lib)


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # read when libgomp starts: idle threads sleep
