"""Building and loading the C backend's programs, and choosing a backend on this machine.

The compiler is `CC` when set, else the first of cc, gcc and clang on PATH, else the optional
`ziglang` package (`python -m ziglang cc`, pip-installable on machines without a compiler). It is
probed once per machine (a small OpenMP translation unit must build, load and run): the answer is
kept in the cache folder (native.json) under the compiler command, its identity (real path, size
and modification time of what it runs), the flags and the CPU, so a compiler that was upgraded or
replaced is probed again, and `gradc info` can name what is used. Flags: GRADC_CFLAGS, else
`-O3 -march=native`. The only math relaxations are `-fno-math-errno` and `-fno-trapping-math` (no
errno, no floating-point traps: gcc may then turn selects into vector blends); both keep NaN, inf
and signed zero exactly as without them. `-fwrapv` makes integer arithmetic wrap, as NumPy's
does. Shared objects are built by content hash (source, compiler,
flags, CPU) and verified before they are loaded (cache.load_shared_object); they are loaded with
ctypes (no build step of its own and part of Python; each kernel call passes raw addresses, which
is all a kernel needs).

backend="auto" (`choose_backend`): GRADC_BACKEND when set, else cuda for inputs on a GPU, else c
where the probe found a compiler, else numpy with a one-time notice saying why and how to fix it.

Threads: `set_num_threads(n)` (gradc.set_num_threads: the kernels and NumPy's BLAS, through
threadpoolctl), else OMP_NUM_THREADS (which OpenBLAS reads too), else the cores this process may
run on. The kernels' OpenMP threads and NumPy's BLAS never run at the same time (the host module
calls one after the other), OpenMP threads wait passively between kernels, and in a program that
has both parallel kernels and matmuls only one of the two pools runs on several threads
(`thread_plan`), so spinning BLAS threads never compete with the kernels for the cores."""
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import warnings

from ..errors import GradcError
from . import cache

DEFAULT_CFLAGS = ("-O3", "-march=native")
_BASE_FLAGS = ("-std=c11", "-shared", "-fPIC", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-fwrapv")   # (integers wrap as NumPy's)
_PROBE = ("#include <math.h>\nint gradc_probe(void) { int n = 0;\n"
          "#pragma omp parallel reduction(+:n)\n  n += 1;\n  return n > 0 && erff(0.0f) == 0.0f; }\n")
_PROBE_SIMD = ("#include <math.h>\n#pragma omp declare simd notinbranch\nfloat erff(float);\n"
               "int gradc_probe(void) { float x[64], s = 0;\n  for (int i = 0; i < 64; i++) x[i] = i * 0.01f;\n"
               "#pragma omp simd reduction(+:s)\n  for (int i = 0; i < 64; i++) s += erff(x[i]);\n"
               "  return s > 0; }\n")
_state = {"threads": None, "probe": None}
_libs = []
_notices = set()
_COMMENT = re.compile(r"/\*.*?\*/", re.S)   # generated C has comments of this form only, and no strings


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
    """Threads gradc's CPU work uses (like torch.set_num_threads): the C backend's kernels and
    NumPy's BLAS (through threadpoolctl)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GradcError(f"set_num_threads takes a positive integer, got {n!r}")
    _state["threads"] = n
    for pool in blas_pools():
        pool.set_num_threads(n)
    for lib in _libs:
        lib.gradc_set_threads(n)


# ---------------------------------------------------------------------- BLAS beside the kernels
# One element of a kernel's work costs about as much time as this many matmul FLOPs on a core
# (a few bytes moved at memory speed against fused multiply-adds at cache speed).
FLOPS_PER_ELEMENT = 50


def blas_pools():
    """The thread pools of the BLAS libraries loaded in this process (NumPy's OpenBLAS), found once."""
    if _state.get("blas") is None:
        import threadpoolctl
        _state["blas"] = [c for c in threadpoolctl.ThreadpoolController().lib_controllers if c.user_api == "blas"]
    return _state["blas"]


def thread_plan(elements, blas_flops, parallel, threads=None):
    """(kernel threads, BLAS threads or None for unchanged) while a C program runs. Its kernels
    and its BLAS calls run one after the other, but OpenBLAS's threads keep spinning for a while
    after each call: with both pools at N threads, N spinning BLAS threads would compete with the
    kernels' N. So in a program with parallel kernels and matmuls one pool gets the threads: BLAS
    when the matmuls are most of the work (FLOPs above FLOPS_PER_ELEMENT per kernel element), the
    kernels otherwise, and the other runs on one thread."""
    n = get_num_threads() if threads is None else threads
    if n == 1 or not blas_flops or not parallel:
        return n, None
    if blas_flops > FLOPS_PER_ELEMENT * elements:
        return 1, None
    return n, 1


def _pinned(run, lib, kernels, blas):
    """`run` with the kernels on `kernels` threads and BLAS on `blas` threads for the call."""
    pools = blas_pools() if blas is not None else []

    def call(*args):
        before = [p.get_num_threads() for p in pools]
        lib.gradc_set_threads(kernels)
        for p in pools:
            p.set_num_threads(blas)
        try:
            return run(*args)
        finally:
            lib.gradc_set_threads(get_num_threads())
            for p, k in zip(pools, before):
                p.set_num_threads(k)
    return call


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


def _identity(cmd):
    """What the compiler command runs, as [[real path, size, mtime_ns], ...]: each word of `cmd` that
    names a file (through PATH for a bare name), and the ziglang package for `-m ziglang`. A
    compiler upgraded, replaced or moved on PATH gets a new identity, so its probe is run again."""
    files = []
    for word in cmd:
        found = word if os.sep in word else shutil.which(word)
        if found and os.path.isfile(found):
            files.append(found)
    if "ziglang" in cmd:
        try:
            import importlib.util
            spec = importlib.util.find_spec("ziglang")
            if spec is not None and spec.origin:
                files.append(spec.origin)
        except (ImportError, ValueError):
            pass
    out = []
    for f in files:
        try:
            real = os.path.realpath(f)
            st = os.stat(real)
            out.append([real, st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([f, None, None])
    return out


def compile_c(cmd, flags, src, out):
    libs = [f for f in flags if f.startswith("-l")]   # after the source, where the linker needs them
    r = subprocess.run(cmd + [f for f in flags if not f.startswith("-l")] + [src, "-o", out] + libs + ["-lm"],
                       capture_output=True, text=True)
    if r.returncode:
        raise GradcError(f"the C compiler ({' '.join(cmd)}) failed on generated code:\n{r.stderr[:4000]}\n"
                         "set CC to another compiler, GRADC_CFLAGS to other flags, or use backend='numpy'")


def machine():
    """The CPU the binaries are built for (-march=native): architecture, model and feature flags, so
    a cache folder shared between machines never hands one a shared object built for another."""
    if _state.get("machine") is None:
        model = flags = ""
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    name, _, value = line.partition(":")
                    name = name.strip()
                    if name in ("model name", "cpu model", "CPU part") and not model:
                        model = value.strip()
                    elif name in ("flags", "Features") and not flags:
                        flags = value.strip()
                    if model and flags:
                        break
        except OSError:
            pass
        _state["machine"] = " ".join([platform.machine(), model, cache.digest(flags)[:16]])
    return _state["machine"]


SMALL_ELEMENTS = 1 << 12   # a program whose kernels iterate fewer elements per call is built at -O1
_SMALL_DROPS = ("-fopenmp", "-fopenmp-simd", "-DGRADC_SIMD_MATH", "-lmvec")


def build_flags(found, elements):
    """The flags a program is built with. With the default flags a small program (its kernels
    iterate fewer than SMALL_ELEMENTS elements per call: microseconds of work, on one thread) is
    built at -O1 without the OpenMP runtime and libmvec, in half the compile time of -O3 (which
    buys such kernels nothing measurable); GRADC_CFLAGS, when set, is used for every program."""
    flags = list(found["flags"])
    if os.environ.get("GRADC_CFLAGS") is not None or elements >= SMALL_ELEMENTS:
        return flags
    return ["-O1" if f in ("-O2", "-O3") else f for f in flags if f not in _SMALL_DROPS] + ["-fopenmp-simd"]


def _env_key():
    return (os.environ.get("CC"), os.environ.get("PATH"), os.environ.get("GRADC_CFLAGS"))


def _read_known(path):
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _valid_record(rec, cmd):
    """A probe result read from native.json, checked field by field (the file may be damaged)."""
    if not isinstance(rec, dict):
        return None
    ok = (rec.get("cc") == cmd and isinstance(rec.get("version"), str) and isinstance(rec.get("openmp"), bool)
          and isinstance(rec.get("flags"), list) and all(isinstance(f, str) for f in rec["flags"]))
    return {"cc": cmd, "version": rec["version"], "flags": list(rec["flags"]), "openmp": rec["openmp"]} if ok else None


def probe():
    """{"cc": [...], "version": str, "flags": [...], "openmp": bool} of a working compiler, or
    {"error": why}. Probed once per process (again when CC, PATH or GRADC_CFLAGS change) and once
    per machine: native.json in the cache folder keeps each compiler's result under its command,
    identity (real path, size and mtime of what it runs) and flags, so a cached answer is used only
    for the very compiler it was found with."""
    env = _env_key()
    if _state["probe"] is not None and _state["probe"][0] == env:
        return _state["probe"][1]
    flags = list(cflags())
    result = {"error": "no C compiler found (set CC, install gcc or clang, or pip install ziglang)"}
    path = cache.cache_dir() / "native.json"
    known = _read_known(path)
    for cmd in _candidates():
        key = json.dumps({"cc": cmd, "identity": _identity(cmd), "flags": flags, "machine": machine()})
        rec = _valid_record(known.get(key), cmd)
        if rec is None or "cc" not in rec:
            rec = _probe_compiler(cmd, flags)
            if "cc" in rec:   # a failure is not kept: the next process tries again (it may be fixed)
                known = _read_known(path)   # another process may have added its compilers meanwhile
                known[key] = rec
                cache.write_entry(path, json.dumps(known, indent=1))
        result = rec
        if "cc" in result:
            break
    _state["probe"] = (env, result)
    return result


def _probe_compiler(cmd, flags):
    version = _version(cmd)
    if version is None:
        return {"error": f"the C compiler {' '.join(cmd)!r} does not run"}
    # Without an OpenMP runtime (zig cc links none) kernels still build, on one thread, with
    # -fopenmp-simd keeping the vectorisation pragmas.
    serial = [f for f in flags if f != "-fopenmp"] + ["-fopenmp-simd"]
    # glibc's libmvec where it links: vectorised erf/exp/log/tanh/sin/cos/pow in the kernels
    simd = flags + ["-DGRADC_SIMD_MATH", "-lmvec"]
    for fl in (simd, flags, serial):
        if _works(cmd, fl, _PROBE_SIMD if fl is simd else _PROBE):
            return {"cc": cmd, "version": version, "flags": fl, "openmp": fl is not serial}
    return {"error": f"{' '.join(cmd)} cannot build and load shared objects with {' '.join(flags)}"}


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
    """Forget this process's probe (it is redone by itself when CC, GRADC_CFLAGS or PATH change)."""
    _state["probe"] = None


# ---------------------------------------------------------------------- backend choice
def _auto(on_cuda):
    """(backend, why) of backend="auto" for inputs on a GPU (on_cuda) or on the CPU."""
    env = os.environ.get("GRADC_BACKEND")
    if env:
        if env not in ("numpy", "c", "cuda"):
            raise GradcError(f"GRADC_BACKEND={env!r}: choose numpy, c or cuda (or unset it for auto)")
        return env, "GRADC_BACKEND"
    if on_cuda:
        return "cuda", "inputs on a GPU"
    found = probe()
    if "cc" in found:
        return "c", f"C compiler {' '.join(found['cc'])}"
    return "numpy", found["error"]


def choose_backend(on_cuda):
    """"auto": GRADC_BACKEND when set (numpy, c or cuda); else cuda where the inputs are on a
    GPU, else c where a C compiler works (`probe`), else numpy, said once per process with the
    reason and the fix."""
    backend, why = _auto(on_cuda)
    if backend == "numpy" and why != "GRADC_BACKEND":
        notice_fallback(f"backend='auto' runs on NumPy here: {why}")
    return backend


def notice_fallback(why):
    """One warning per process and reason that code runs on the NumPy backend, with the fix."""
    if why in _notices:
        return
    _notices.add(why)
    warnings.warn(f"gradc: {why}. For the faster C backend set CC to a working C compiler (or pip install "
                  "'gradc[c]' for zig cc); GRADC_BACKEND=numpy chooses NumPy without this notice.",
                  RuntimeWarning, stacklevel=4)


def auto_status():
    """One line for `gradc info`: what backend='auto' picks here for CPU and for GPU inputs."""
    cpu, why = _auto(False)
    gpu, _ = _auto(True)
    return f"{cpu} for CPU inputs ({why}), {gpu} for GPU inputs"


def c_status():
    """One line for `gradc info`: the compiler and flags backend 'c' builds with, or why it cannot."""
    found = probe()
    if "cc" not in found:
        return f"unavailable ({found['error']})"
    threads = "" if found.get("openmp", True) else "; no OpenMP runtime: kernels run on one thread"
    small = "" if os.environ.get("GRADC_CFLAGS") is not None else \
        f" (programs under {SMALL_ELEMENTS} elements per call: {' '.join(build_flags(found, 0))})"
    return f"{' '.join(found['cc'])} ({found['version']}), flags {' '.join(found['flags'])}{small}{threads}"


# ---------------------------------------------------------------------- loading
def load(source, consts, sizes=None):
    """The entry function of a C program: its shared object built (or taken from the cache after
    verification), its host module imported."""
    host = cache.load_module(source["host.py"])
    if not host.C_KERNELS:   # every group runs through NumPy: nothing to build
        return host.make(consts, None, sizes)
    found = probe()
    if "cc" not in found:
        raise GradcError(f"backend 'c' needs a C compiler: {found['error']}; or compile with backend='numpy'")
    # Comments (the model lines each kernel came from, the graph hash) do not change the binary: the
    # library is built from, and cached under, the code without them, so programs that differ only
    # there (the same kernels traced from another line or another test) share one build.
    code = _COMMENT.sub(" ", source["program.c"])
    elements, parallel, blas_flops = host.figures(sizes)
    flags = build_flags(found, elements)
    key = "\n".join([" ".join(found["cc"]), found["version"], " ".join(flags), machine(), code])
    lib = cache.load_shared_object(key, code, lambda s, o: compile_c(found["cc"], flags, s, o), "c")
    if lib not in _libs:
        _libs.append(lib)
    lib.gradc_set_threads(get_num_threads())
    run = host.make(consts, lib, sizes)
    kernels, blas = thread_plan(elements, blas_flops, parallel)
    return run if (kernels, blas) == (get_num_threads(), None) else _pinned(run, lib, kernels, blas)


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # read when libgomp starts: idle threads sleep
