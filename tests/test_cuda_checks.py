"""Index checks (class labels, gather indices) in CUDA programs: a kernel records a failed check on
the device and the record is read after the call, so nothing reads the device during a call (a CUDA
graph can capture it); the error is eager's, and no state is updated by a call whose check failed.
Checked on the host (kernels built for the CPU with their real grid and block)."""
import re

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn, optim
from gradc.errors import OutOfRangeError
from gradc.runtime import cuda_emulation, cuda_graphs

import strict_cupy as sc

pytestmark = pytest.mark.skipif(not cuda_emulation.available(), reason="needs g++ to build kernels for the host")


@pytest.fixture(autouse=True, scope="module")
def _cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADC_CACHE_DIR", str(tmp_path_factory.mktemp("gradc_cache")))
        yield


def _eager_error(fn, *args):
    with pytest.raises(OutOfRangeError) as e:
        fn(*args)
    return str(e.value)


def _run_body(prog):
    src = prog.source["host.py"]
    return src[src.index("    def run("):src.index("        return (")]


@pytest.mark.parametrize("n", [8, 300, 5000], ids=["one-block", "two-blocks", "many-blocks"])
def test_a_failed_check_raises_eager_error_after_the_call(n):
    rng = np.random.default_rng(0)
    logits = gradc.tensor(rng.standard_normal((n, 5)).astype(np.float32))
    good = rng.integers(0, 5, size=n)
    good[::7] = -100

    def loss(z, y):
        return F.cross_entropy(z, y, ignore_index=-100)
    prog = gradc.compile(loss, backend="cuda").lower(logits, gradc.tensor(good))
    assert "K_check_index(" not in _run_body(prog) and re.search(r"check\d+\(\(\d+,\)", _run_body(prog))
    run = cuda_emulation.load(prog)
    np.testing.assert_allclose(np.asarray(run(logits._data, good)[0]), loss(logits, gradc.tensor(good)).item(),
                               rtol=1e-5)
    for positions, value in (([n - 1], 5), ([n // 2, n - 3], -1), ([1, 0], 10 ** 12)):
        bad = good.copy()
        bad[positions] = value
        bad[positions[1:]] = value + 1 if len(positions) > 1 else value   # the first position is reported
        want = _eager_error(loss, logits, gradc.tensor(bad))
        with pytest.raises(OutOfRangeError) as e:
            run(logits._data, bad)
        assert str(e.value) == want
        run(logits._data, good)   # the record was cleared: the next good call passes


def test_an_embedding_index_is_checked_on_the_host_before_its_gather():
    """gather checks its own indices, reading the device: the check before it stays synchronous, so
    the error is eager's (the gather would raise its own first)."""
    emb = nn.Embedding(10, 4)

    def f(idx):
        return emb(idx).sum()
    idx = gradc.tensor(np.arange(6))
    prog = gradc.compile(f, backend="cuda").lower(idx)
    assert "K_check_index(" in _run_body(prog) and "gradc_checks" not in prog.source["host.py"]
    bad = np.arange(6)
    bad[3] = 10
    arrays = [bad if t is idx else t._data.copy() for t in prog.resolve([idx])]
    with pytest.raises(OutOfRangeError) as e:
        cuda_emulation.run(prog, arrays)
    assert str(e.value) == _eager_error(f, gradc.tensor(bad))


def test_a_call_whose_check_failed_updates_no_state():
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    opt = optim.Adam(model.parameters(), lr=0.01)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    x, y = gradc.randn(6, 8), gradc.tensor(np.arange(6) % 3)
    step(x, y)   # eagerly: the optimizer state exists
    prog = gradc.compile(step, backend="cuda").lower(x, y)
    assert "K_check_index(" not in _run_body(prog)
    assert "if (gradc_checks_passed(gradc_checks," in prog.source["kernels.cu"]   # the in-place updates
    tensors = prog.resolve([x, y])
    arrays = [t._data.copy() for t in tensors]
    before = [a.copy() for a in arrays]
    bad = arrays[1].copy()
    bad[2] = 3
    want = _eager_error(step, x, gradc.tensor(bad))
    arrays[1] = bad
    run = cuda_emulation.load(prog)
    with pytest.raises(OutOfRangeError) as e:
        run(*arrays)
    assert str(e.value) == want
    for a, b in zip(arrays[2:], before[2:]):   # parameters, moments and the step count: untouched
        np.testing.assert_array_equal(a, b)
    arrays[1] = before[1]
    got = run(*arrays)
    np.testing.assert_allclose(np.asarray(got[0]), step(x, y).item(), rtol=1e-5)
    for e in prog.effects:
        if e.kind == "data":
            np.testing.assert_allclose(np.asarray(got[e.out]), tensors[e.slot].detach().numpy(), rtol=2e-5, atol=1e-6)


def test_checks_are_read_after_a_captured_call():
    """On the CuPy stand-in's streams: a program whose check records into device memory is captured
    and replayed, and its record is read after each call, outside the capture."""
    record = sc.StrictArray(np.zeros(2, dtype=np.int64))

    def k_check(idx, rec):
        bad = np.flatnonzero((idx._a < 0) | (idx._a >= 4))
        if bad.size:
            rec._a[0], rec._a[1] = idx._a.size - bad[0], idx._a[bad[0]]

    def run(idx):
        sc.launch(k_check, idx, record)
        return (idx,)

    def errors():
        found = record.tolist()   # a read of the device: refused inside a capture
        if found[0]:
            record.fill(0)
            raise OutOfRangeError(f"index {found[1]} is out of range")
    run.errors = errors
    g = cuda_graphs.GraphRunner(run, sc.MODULE)
    idx = sc.StrictArray(np.array([0, 1, 2, 3]))
    for _ in range(3):
        g(idx)
    assert g.disabled is None and g.replays == 2
    idx._a[2] = 7
    with pytest.raises(OutOfRangeError, match="index 7"):
        g(idx)
    assert g.replays == 3 and g.disabled is None
    idx._a[2] = 2
    g(idx)
    plain = lambda: ()   # noqa: E731  (no checks: nothing to read after the call)
    assert cuda_graphs.checked(plain) is plain and cuda_graphs.checked(run) is not run
