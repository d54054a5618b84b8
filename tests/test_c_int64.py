"""Integer values in C kernels: int64 targets and indices are loaded, compared, selected and
converted inside fused groups (cross-entropy's one-hot and ignore masks run in C), integer
arithmetic is exact and wraps as NumPy's, and what C cannot do as NumPy does (division, float to
integer casts, integer reductions) stays on NumPy. Every result equals eager exactly or within
rounding; an out-of-range target raises eager's error."""
import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc.runtime import native

pytestmark = pytest.mark.skipif(not native.available(), reason=f"backend c: {native.c_status()}")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path / "cache"))


def _ce_step(ignore_index=-100, reduction="mean"):
    def step(logits, target):
        loss = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction=reduction)
        loss.backward()
        return loss, logits.grad
    return step


@pytest.mark.parametrize("ignore", [-100, 2])
def test_cross_entropy_with_int64_targets_runs_in_c(ignore):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 10)).astype(np.float32)
    t = rng.integers(0, 10, size=64)
    t[::7] = ignore if ignore >= 0 else -100
    args = lambda: (gradc.tensor(x, requires_grad=True), gradc.from_numpy(t.copy()))   # noqa: E731
    step = _ce_step(ignore_index=ignore)
    want = step(*args())
    comp = gradc.compile(step, backend="c")
    got = comp(*args())
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), rtol=1e-5, atol=1e-6)
    prog = comp.lower(*args())
    assert not prog.stats["numpy_groups"], prog.stats["numpy_groups"]
    assert "const long long*" in prog.source["program.c"]


def test_out_of_range_target_raises_eagers_error():
    x = gradc.tensor(np.zeros((4, 3), dtype=np.float32), requires_grad=True)
    bad = gradc.from_numpy(np.array([0, 1, 3, 2]))
    step = _ce_step()
    with pytest.raises(gradc.GradcError) as eager:
        step(x, bad)
    comp = gradc.compile(step, backend="c")
    comp(gradc.tensor(np.zeros((4, 3), dtype=np.float32), requires_grad=True), gradc.from_numpy(np.array([0, 1, 2, 2])))
    with pytest.raises(gradc.GradcError) as compiled:
        comp(gradc.tensor(np.zeros((4, 3), dtype=np.float32), requires_grad=True), bad)
    assert type(compiled.value) is type(eager.value) and str(compiled.value) == str(eager.value)


BIG = 2 ** 60 + 12345   # not exact in a double: any trip through floating point shows

INT_CASES = {
    "compare": lambda a, b: ((a == b) | (a < b)).float() * 2.0,
    "where": lambda a, b: gradc.where(a > b, a, b) + 1,
    "maximum": lambda a, b: gradc.maximum(a, b) - gradc.minimum(a, b),
    "arith": lambda a, b: (a + b) * 3 - (-a),
    "abs": lambda a, b: a.abs() + b,                              # (C's fabs is a double's): NumPy's
    "big_literal": lambda a, b: a + BIG,
    "wraps": lambda a, b: a + (2 ** 63 - 1),
    "to_float": lambda a, b: a.float() * 0.5 + b.double(),
    "div": lambda a, b: a / (b * b + 1),                          # true division, in floats
    "from_float": lambda a, b: (a.float() * 0.37).long() + b,     # float to int64: NumPy's
    "int_sum": lambda a, b: (a * b).sum(1),                       # an integer reduction: NumPy's
}


@pytest.mark.parametrize("name", sorted(INT_CASES))
def test_int64_elementwise_equals_eager_exactly(name):
    fn = INT_CASES[name]
    rng = np.random.default_rng(3)
    a = rng.integers(-2 ** 62, 2 ** 62, size=(32, 16))
    a[:, :4] = rng.integers(-50, 50, size=(32, 4))
    b = rng.integers(-50, 50, size=(32, 16))
    b[0, :3] = a[0, :3]
    want = fn(gradc.from_numpy(a), gradc.from_numpy(b)).numpy()
    comp = gradc.compile(fn, backend="c")
    got = comp(gradc.from_numpy(a), gradc.from_numpy(b)).numpy()
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    prog = comp.lower(gradc.from_numpy(a), gradc.from_numpy(b))
    in_c = bool(prog.stats.get("c_kernels"))
    if name in ("abs", "from_float", "int_sum"):
        assert "integer" in " ".join(prog.stats["numpy_groups"].values()) or not in_c, prog.stats
    else:
        assert in_c and not prog.stats["numpy_groups"], prog.stats
