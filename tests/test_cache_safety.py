"""The compile cache never harms: clear removes only gradc's files, shared objects are verified
against their recorded hash before they are loaded (planted or truncated ones are rebuilt),
tuning.json is validated, an unusable cache folder gives one warning and compiling continues in
memory, and temporary files left by a killed write are cleaned up."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import gradc
from gradc.runtime import cache, tuning
from gradc.testing import assert_close

HAS_CC = shutil.which("cc") or shutil.which("gcc")


@pytest.fixture
def cdir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("GRADC_CACHE_DIR", str(d))
    return d


def _compile_something():
    x = gradc.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    y = gradc.compile(lambda x: (x * 2.0).exp().sum(1))(x)
    assert_close(y, np.exp(np.arange(12, dtype=np.float32).reshape(3, 4) * 2.0).sum(1), rtol=1e-6)


def test_clear_removes_only_gradc_files(cdir):
    cdir.mkdir()
    (cdir / "notes.txt").write_text("mine")
    (cdir / "numpy").mkdir()
    (cdir / "numpy" / "keep.py").write_text("mine too")
    (cdir / "data").mkdir()
    (cdir / "data" / "x.npy").write_bytes(b"123")
    _compile_something()
    assert cache.size()[0] >= 1
    n, _ = cache.clear()
    assert n >= 1
    assert (cdir / "notes.txt").read_text() == "mine"
    assert (cdir / "numpy" / "keep.py").read_text() == "mine too"
    assert (cdir / "data" / "x.npy").read_bytes() == b"123"
    assert cache.size() == (0, 0)


def test_tuning_json_with_infinity_is_measured_again(cdir, monkeypatch):
    cdir.mkdir()
    for bad in ('{"block_bytes": Infinity}', '{"block_bytes": -5}', '[1, 2]', '{"block_bytes": "64k"}',
                '{"block_bytes": 1e400}', '{"block_bytes": true}', '{"block_bytes": 655'):
        (cdir / "tuning.json").write_text(bad)
        monkeypatch.setattr(tuning, "_memo", {})
        monkeypatch.setattr(tuning, "measure", lambda: {"block_bytes": 65536})
        assert tuning.block_bytes() == 65536, bad
        assert json.loads((cdir / "tuning.json").read_text()) == {"block_bytes": 65536}
    monkeypatch.setattr(tuning, "_memo", {})
    _compile_something()


def test_block_bytes_override_is_checked(monkeypatch):
    monkeypatch.setenv("GRADC_BLOCK_BYTES", "4096")
    assert tuning.block_bytes() == 4096
    monkeypatch.setenv("GRADC_BLOCK_BYTES", "lots")
    with pytest.raises(gradc.GradcError, match="GRADC_BLOCK_BYTES"):
        tuning.block_bytes()


@pytest.mark.parametrize("how", ["file", "readonly"])
def test_unusable_cache_folder_warns_once_and_compiles(tmp_path, monkeypatch, how):
    if how == "file":
        d = tmp_path / "afile"
        d.write_text("not a folder")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o500)
    monkeypatch.setenv("GRADC_CACHE_DIR", str(d))
    monkeypatch.setattr(tuning, "_memo", {})
    monkeypatch.setattr(tuning, "measure", lambda: {"block_bytes": 65536})
    monkeypatch.setitem(cache._state, "warned", set())
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        _compile_something()
        x = gradc.tensor(np.ones((5, 3), np.float32))
        assert_close(gradc.compile(lambda x: x.tanh() + 1.0)(x), (np.tanh(np.ones((5, 3))) + 1.0).astype(np.float32), rtol=1e-6)
    msgs = [str(m.message) for m in w if "cannot be used" in str(m.message)]
    assert len(msgs) == 1, msgs
    assert str(d) in msgs[0]


def test_full_cache_folder_warns_and_compiles(cdir, monkeypatch):
    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(cache, "atomic_write", full)
    monkeypatch.setitem(cache._state, "warned", set())
    with pytest.warns(RuntimeWarning, match="No space left"):
        src = "VALUE = 41 + 1\n"
        assert cache.load_module(src).VALUE == 42


def test_killed_write_leftovers_are_swept(cdir):
    folder = cdir / "numpy" / "ab"
    folder.mkdir(parents=True)
    old, fresh = folder / ".abcd.py.k1x2.tmp", folder / ".abcd.py.z9y8.tmp"
    build = cdir / "c" / "cd" / ".build-xyz"
    build.mkdir(parents=True)
    (build / "kernels.c").write_text("int x;")
    for p in (old, fresh):
        p.write_text("partial")
    past = time.time() - 2 * cache.STALE_SECONDS
    os.utime(old, (past, past))
    os.utime(build, (past, past))
    (cdir / "user.tmp").write_text("not gradc's")
    cache.sweep(max_age=cache.STALE_SECONDS - 1)
    assert not old.exists() and not build.exists()
    assert fresh.exists(), "a write in progress in another process must survive"
    assert (cdir / "user.tmp").exists()


def _lib(cdir, tag):
    src = f"int answer(void) {{ return {tag}; }}\n"
    built = []

    def build(s, out):
        built.append(s)
        subprocess.run([HAS_CC, "-shared", "-fPIC", "-O1", s, "-o", out], check=True)
    return src, build, built


@pytest.mark.skipif(not HAS_CC, reason="no C compiler")
def test_shared_object_is_verified_before_loading(cdir, monkeypatch):
    src, build, built = _lib(cdir, 42)
    key = "test-key\n" + src
    lib = cache.load_shared_object(key, src, build, "c")
    assert lib.answer() == 42 and len(built) == 1
    digest = hashlib.sha256(key.encode()).hexdigest()
    so = cdir / "c" / digest[:2] / f"{digest}.so"
    assert so.exists()
    # A fresh process would reuse it without building.
    monkeypatch.setattr(cache, "_libs", {})
    assert cache.load_shared_object(key, src, build, "c").answer() == 42 and len(built) == 1
    # Planted: another library under the entry's name is rebuilt, never run.
    evil_src = "int answer(void) { return 666; }\n"
    subprocess.run([HAS_CC, "-shared", "-fPIC", "-x", "c", "-", "-o", str(so)], input=evil_src, text=True,
                   check=True)
    monkeypatch.setattr(cache, "_libs", {})
    assert cache.load_shared_object(key, src, build, "c").answer() == 42 and len(built) == 2
    # Truncated: rebuilt too (and not failing forever).
    so.write_bytes(so.read_bytes()[:100])
    monkeypatch.setattr(cache, "_libs", {})
    assert cache.load_shared_object(key, src, build, "c").answer() == 42 and len(built) == 3
    monkeypatch.setattr(cache, "_libs", {})
    assert cache.load_shared_object(key, src, build, "c").answer() == 42 and len(built) == 3


@pytest.mark.skipif(shutil.which("g++") is None, reason="the CUDA emulation needs g++")
def test_planted_emulation_library_is_not_loaded(cdir, monkeypatch):
    from gradc.runtime import cuda_emulation
    src = '#include <cstdio>\nextern "C" __global__ void k(){}\nextern "C" int answer() { return 7; }\n'
    src = src.replace("__global__ ", "")
    src = "// __global__ void\n" + src
    mod = cuda_emulation.build(src)
    assert mod.lib.answer() == 7
    for so in (cdir / "cuda-emulation").rglob("*.so"):
        subprocess.run(["g++", "-shared", "-fPIC", "-x", "c++", "-", "-o", str(so)],
                       input='extern "C" int answer() { return 666; }\n', text=True, check=True)
    monkeypatch.setattr(cache, "_libs", {})
    assert cuda_emulation.build(src).lib.answer() == 7
