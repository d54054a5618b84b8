"""Session-wide test setup.

Every CUDA source the suite generates (through gradc.codegen.cuda_backend) is recorded, and when
`nvcc` is on PATH the session ends by compiling each one with `nvcc -ptx` for sm_80 and sm_90: a
kernel that does not compile fails the run even on machines without a GPU."""
import concurrent.futures
import hashlib
import os
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
                       capture_output=True, text=True, timeout=300)
    return path, arch, r.returncode, r.stderr


def pytest_sessionfinish(session, exitstatus):
    if not _SOURCES or shutil.which("nvcc") is None:
        return
    with tempfile.TemporaryDirectory() as d:
        jobs = []
        for key, src in _SOURCES.items():
            path = os.path.join(d, f"{key[:16]}.cu")
            with open(path, "w") as f:
                f.write(src)
            jobs += [(path, arch) for arch in ARCHS]
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            results = list(pool.map(lambda j: _nvcc(*j), jobs))
        failed = [(p, a, err) for p, a, rc, err in results if rc != 0]
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        line = (reporter.write_line if reporter else print)
        line(f"nvcc -ptx: compiled {len(_SOURCES)} generated CUDA sources for {', '.join(ARCHS)}: "
             f"{len(results) - len(failed)} ok, {len(failed)} failed")
        for p, a, err in failed[:5]:
            line(f"--- {os.path.basename(p)} ({a}) ---\n{err[:3000]}")
        if failed:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
