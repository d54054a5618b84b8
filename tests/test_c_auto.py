"""backend="auto" on the CPU: C where a compiler works, probed once per machine (kept on disk under
the compiler's identity and probed again when it changes), NumPy with one notice where none
works; artifacts regenerated for the backend of the machine that loads them; the flags small
programs build with; threads of the kernels and of NumPy's BLAS (never both pools at once)."""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import gradc
from gradc.ops import OPS, primitive
from gradc.ops.rules import elementwise_shape, floating
from gradc.runtime import native
from gradc.testing import assert_close

pytestmark = pytest.mark.skipif(not native.available(), reason=f"backend c: {native.c_status()}")


@pytest.fixture(autouse=True)
def _auto(monkeypatch, tmp_path):
    """No GRADC_BACKEND (auto decides), a cache folder of the test's own, the probe redone after."""
    monkeypatch.delenv("GRADC_BACKEND", raising=False)
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path / "cache"))
    native.reset()
    yield
    native.reset()


def _fn(x):
    return (x * 1.5).tanh().exp().sum(1)


def test_auto_is_c_where_a_compiler_works():
    x = gradc.randn(16, 8)
    f = gradc.compile(_fn)
    assert f.lower(x).backend == "c"
    assert_close(f(x), _fn(x), rtol=1e-5, atol=1e-5)
    assert native.auto_status().startswith("c for CPU inputs") and "cuda for GPU inputs" in native.auto_status()


def test_auto_without_a_compiler_is_numpy_with_one_notice(monkeypatch, tmp_path):
    cc = str(tmp_path / "no-such-cc")
    monkeypatch.setenv("CC", cc)
    x = gradc.randn(16, 8)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        f = gradc.compile(_fn)
        assert f.lower(x).backend == "numpy"
        assert_close(f(x), _fn(x), rtol=1e-5, atol=1e-5)
        assert gradc.compile(lambda x: x * 2.0)(x).shape == (16, 8)
    notices = [str(w.message) for w in seen if "runs on NumPy" in str(w.message)]
    assert len(notices) == 1, notices
    assert cc in notices[0] and "set CC" in notices[0]
    assert native.auto_status().startswith("numpy for CPU inputs") and cc in native.auto_status()
    monkeypatch.setenv("GRADC_BACKEND", "c")   # an explicit choice still fails loudly, naming the compiler
    with pytest.raises(gradc.GradcError, match="no-such-cc"):
        gradc.compile(_fn)(x)


def _wrapper(tmp_path, name="cc-wrapper"):
    """A compiler command that logs each run to a file, then runs the system's cc."""
    log = tmp_path / f"{name}.log"
    script = tmp_path / name
    script.write_text(f"#!/bin/sh\necho run >> '{log}'\nexec {native.probe()['cc'][0]} \"$@\"\n")
    script.chmod(0o755)
    return script, log


def _runs(log):
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_probe_is_kept_per_machine_and_redone_when_the_compiler_changes(monkeypatch, tmp_path):
    script, log = _wrapper(tmp_path)
    monkeypatch.setenv("CC", str(script))
    native.reset()
    assert native.probe()["cc"] == [str(script)]
    first = _runs(log)
    assert first >= 2                       # --version and at least one probe build
    native.reset()                          # a new process: the answer comes from native.json
    assert native.probe()["cc"] == [str(script)] and _runs(log) == first
    known = json.loads((tmp_path / "cache" / "native.json").read_text())
    assert any(str(script) in json.dumps(json.loads(k)["identity"]) for k in known)

    script.write_text(script.read_text() + "# upgraded\n")   # another compiler at the same path
    native.reset()
    assert "cc" in native.probe() and _runs(log) > first

    (tmp_path / "cache" / "native.json").write_text('{"x": [1, {"cc": 3}]')   # damaged: probed again
    native.reset()
    again = _runs(log)
    assert "cc" in native.probe() and _runs(log) > again


def test_a_forged_probe_record_is_not_trusted(monkeypatch, tmp_path):
    script, log = _wrapper(tmp_path)
    monkeypatch.setenv("CC", str(script))
    native.reset()
    native.probe()
    path = tmp_path / "cache" / "native.json"
    known = json.loads(path.read_text())
    path.write_text(json.dumps({k: {"cc": "not a list", "flags": 7} for k in known}))
    native.reset()
    before = _runs(log)
    found = native.probe()
    assert found["cc"] == [str(script)] and isinstance(found["flags"], list) and _runs(log) > before


def test_small_programs_build_fast_and_user_flags_are_kept(monkeypatch):
    monkeypatch.delenv("GRADC_CFLAGS", raising=False)
    native.reset()
    found = native.probe()
    small = native.build_flags(found, native.SMALL_ELEMENTS - 1)
    assert "-O1" in small and "-O3" not in small and "-fopenmp" not in small and "-lmvec" not in small
    assert native.build_flags(found, native.SMALL_ELEMENTS) == found["flags"]
    monkeypatch.setenv("GRADC_CFLAGS", "-O2")
    native.reset()
    found = native.probe()
    assert "-O2" in native.build_flags(found, 1) and "-O1" not in native.build_flags(found, 1)
    x = gradc.randn(4, 5)
    assert_close(gradc.compile(_fn, backend="c")(x), _fn(x), rtol=1e-5, atol=1e-5)


def _mlp():
    gradc.manual_seed(0)
    return gradc.nn.Sequential(gradc.nn.Linear(8, 16), gradc.nn.GELU(), gradc.nn.Linear(16, 4))


def test_artifact_for_c_regenerates_for_numpy_without_a_compiler(monkeypatch, tmp_path):
    model, x = _mlp(), gradc.randn(32, 8)
    with gradc.no_grad():
        want = model(x).numpy()
    path = gradc.export(model, x, backend="c").save(tmp_path / "m.gradc")
    assert gradc.load(path).backend == "c"
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        loaded = gradc.load(path)
    assert loaded.backend == "numpy" and loaded.stats["artifact_backend"] == "c"
    assert any(str(path) in str(w.message) and "regenerated for NumPy" in str(w.message) for w in seen)
    np.testing.assert_allclose(loaded(x).numpy(), want, rtol=1e-5, atol=1e-6)


def test_artifact_exported_with_auto_gets_the_best_backend_where_it_loads(monkeypatch, tmp_path):
    model, x = _mlp(), gradc.randn(32, 8)
    with gradc.no_grad():
        want = model(x).numpy()
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))   # exported where no compiler works
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = gradc.export(model, x)
    assert prog.backend == "numpy"
    path = prog.save(tmp_path / "m.gradc")
    monkeypatch.delenv("CC")                                  # loaded where one does
    loaded = gradc.load(path)
    assert loaded.backend == "c" and loaded.stats["artifact_backend"] == "numpy"
    np.testing.assert_allclose(loaded(x).numpy(), want, rtol=1e-5, atol=1e-6)
    pinned = gradc.export(model, x, backend="numpy").save(tmp_path / "n.gradc")
    assert gradc.load(pinned).backend == "numpy"             # an explicit choice is kept


# ---------------------------------------------------------------------- threads
BLAS_SEEN = []


def _record_blas(xp, x):
    """Identity that records how many threads NumPy's BLAS has while it runs."""
    BLAS_SEEN.append([p.get_num_threads() for p in native.blas_pools()])
    return x.copy()


@pytest.fixture
def blas_probe():
    name = "test_blas_threads"
    prim = primitive(name, "opaque", 1, elementwise_shape(name), floating(name), _record_blas, templates={
        "numpy/ops.j2": '{% from "numpy/statements.j2" import kernel %}'
                        '{% macro test_blas_threads(a, out=None) %}{{ kernel("test_blas_threads", [a], out=out) }}'
                        '{% endmacro %}'})
    BLAS_SEEN.clear()
    threads = native.get_num_threads()
    try:
        yield prim
    finally:
        OPS.pop(name, None)
        gradc.set_num_threads(threads)


def test_blas_and_parallel_kernels_never_both_use_the_threads(blas_probe):
    if not native.blas_pools():
        pytest.skip("NumPy's BLAS exposes no thread pool here")
    gradc.set_num_threads(2)
    a, b = gradc.randn(32, 32), gradc.randn(32, 32)
    x = gradc.randn(1024, 256)          # a parallel kernel (262144 elements) beside a small matmul

    def fn(a, b, x):
        return blas_probe.bind(a @ b), (x * 1.5).tanh().exp().sum(1)
    f = gradc.compile(fn, backend="c")
    got = f(a, b, x)
    assert_close(got[0], a @ b, rtol=1e-5, atol=1e-5)
    assert_close(got[1], _fn(x), rtol=1e-5, atol=1e-4)
    assert BLAS_SEEN and all(seen == [1] * len(seen) for seen in BLAS_SEEN), BLAS_SEEN
    assert [p.get_num_threads() for p in native.blas_pools()] == [2] * len(native.blas_pools())
    # matmuls that are most of the work keep BLAS's threads and run the kernels on one
    assert native.thread_plan(1 << 18, 1 << 30, True, threads=2) == (1, None)
    assert native.thread_plan(1 << 18, 1 << 20, True, threads=2) == (2, 1)
    assert native.thread_plan(1 << 18, 0, True, threads=2) == (2, None)
    assert native.thread_plan(1 << 18, 1 << 20, False, threads=2) == (2, None)
    assert native.thread_plan(1 << 18, 1 << 20, True, threads=1) == (1, None)


def test_set_num_threads_sets_blas_and_omp_num_threads_is_read():
    if not native.blas_pools():
        pytest.skip("NumPy's BLAS exposes no thread pool here")
    threads = native.get_num_threads()
    try:
        gradc.set_num_threads(1)
        assert [p.get_num_threads() for p in native.blas_pools()] == [1] * len(native.blas_pools())
    finally:
        gradc.set_num_threads(threads)
    out = subprocess.run([sys.executable, "-c", "from gradc.runtime import native; print(native.get_num_threads())"],
                         env=dict(os.environ, OMP_NUM_THREADS="3"), capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "3", out.stderr
