"""Session-wide test setup.

Every CUDA source the suite generates (through gradc.codegen.cuda_backend) is recorded, and when
`nvcc` is on PATH the session ends by compiling each one with `nvcc -ptx` for sm_80 and sm_90: a
kernel that does not compile fails the run even on machines without a GPU."""
import concurrent.futures
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import gradc.codegen.cuda_backend as cuda_backend

_SOURCES = {}
_generate = cuda_backend.generate


def _recording_generate(*args, **kwargs):
    result = _generate(*args, **kwargs)
    _SOURCES.setdefault(hashlib.sha256(result[0].encode()).hexdigest(), result[0])
    return result


cuda_backend.generate = _recording_generate
ARCHS = ("sm_80", "sm_90")


def _nvcc(path, arch):
    r = subprocess.run(["nvcc", "-ptx", f"-arch={arch}", "-x", "cu", path, "-o", os.devnull],
                       capture_output=True, text=True, timeout=900)
    return path, arch, r.returncode, r.stderr


def _one_unit(sources):
    """All sources as one translation unit (kernel names made unique per source): one nvcc run
    per architecture instead of one per program."""
    parts = []
    for k, src in enumerate(sources):
        parts.append(f"// ---- source {k}\n" + re.sub(r"__global__ void (__launch_bounds__\(\d+\) )?(\w+)\(",
                                                                 rf"__global__ void \1s{k}_\2(", src))
    return "\n".join(parts)


def pytest_sessionfinish(session, exitstatus):
    if not _SOURCES or shutil.which("nvcc") is None:
        return
    sources = list(_SOURCES.values())
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "generated.cu")
        with open(path, "w") as f:
            f.write(_one_unit(sources))
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(ARCHS)) as pool:
            results = list(pool.map(lambda a: _nvcc(path, a), ARCHS))
        failed = [(a, err) for _, a, rc, err in results if rc != 0]
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        line = (reporter.write_line if reporter else print)
        line(f"nvcc -ptx: {len(sources)} generated CUDA sources for {', '.join(ARCHS)}: "
             + ("all compiled" if not failed else f"FAILED for {', '.join(a for a, _ in failed)}"))
        for a, err in failed:
            errors = [ln for ln in err.splitlines() if "error" in ln][:20]
            line(f"--- {a} ---\n" + "\n".join(errors or err.splitlines()[:40]))
        if failed:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
