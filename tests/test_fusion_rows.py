"""Row flattening before fusion: ops over the last axis of (B, T, D) and (B, H, T, T) values run as
rank-2 row groups of B*T (or B*H*T) rows, on every backend, with the same values and gradients as
eager; operands broadcast over part of the lead, reductions over leading axes, values returned
in their original shapes and reshapes that undo the flattening all keep eager's results."""
import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc.passes.fusion import describe
from gradc.testing import assert_close

BACKENDS = ("numpy", "c")


def _c_works():
    try:
        gradc.compile(lambda x: x * 2.0, backend="c")(gradc.ones(2, 2))
        return True
    except gradc.GradcError:
        return False


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch, tmp_path):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    if request.param == "c" and not _c_works():
        pytest.skip("no working C compiler for backend='c'")
    return request.param


def _check(fn, arrays, backend, grad=True, tol=1e-5):
    """fn's value (and the gradients of a weighted sum of it) compiled against eager."""
    rng = np.random.default_rng(5)

    def run(f):
        xs = [gradc.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
        y = f(*xs)
        if grad:
            w = gradc.tensor(rng.uniform(-1, 1, y.shape).astype(np.float32))
            (y * w).sum().backward()
        return y.detach().numpy(), [x.grad.numpy() if x.grad is not None else None for x in xs]

    def step(*xs):
        return fn(*xs)

    want, want_g = run(step)
    rng = np.random.default_rng(5)
    got, got_g = run(gradc.compile(step, backend=backend))
    assert got.shape == want.shape
    assert_close(got, want, rtol=tol, atol=tol)
    for g, w in zip(got_g, want_g):
        if w is not None:
            assert_close(g, w, rtol=tol, atol=tol)


def _groups(fn, *arrays):
    graph, _ = gradc.compile(fn).trace(*[gradc.tensor(a) for a in arrays])
    return [line for line in describe(graph).splitlines() if line.startswith("group")]


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_layer_norm_over_btd_is_one_group_of_bt_rows():
    x, w, b = _randn(4, 6, 32), _randn(32, seed=1), _randn(32, seed=2)
    groups = _groups(lambda x, w, b: F.layer_norm(x, (32,), w, b), x, w, b)
    assert len(groups) == 1 and "over 24 rows" in groups[0], groups


def test_attention_softmax_with_mask_is_one_group_of_bht_rows():
    s, mask = _randn(2, 3, 8, 8), np.triu(np.full((8, 8), -1e9, np.float32), 1)
    groups = _groups(lambda s, m: F.softmax(s * 0.5 + m, dim=-1), s, mask)
    soft = [g for g in groups if "exp" in g.split()]
    assert len(soft) == 1 and "over 48 rows" in soft[0] and "max" in soft[0] and "add" in soft[0], groups


@pytest.mark.parametrize("shape", [(4, 6, 32), (2, 3, 5, 16), (1, 7, 9), (3, 1, 8)], ids=str)
def test_layer_norm_softmax_log_softmax(backend, shape):
    x, w, b = _randn(*shape), _randn(shape[-1], seed=1), _randn(shape[-1], seed=2)
    _check(lambda x, w, b: F.layer_norm(x, (shape[-1],), w, b), [x, w, b], backend)
    _check(lambda x: F.softmax(x, dim=-1) * F.log_softmax(x, dim=-1), [x], backend)


def test_cross_entropy_over_btv(backend):
    logits = _randn(2, 5, 7)
    target = np.random.default_rng(3).integers(0, 7, size=(2, 5))
    _check(lambda z, t: F.cross_entropy(z.reshape(10, 7), t.reshape(10)), [logits, target], backend)


@pytest.mark.parametrize("other", [(6, 1, 8), (1, 5, 8), (5, 8), (8,), (6, 5, 1), (1, 1, 8)], ids=str)
def test_operands_broadcast_over_part_of_the_lead(backend, other):
    x, y = _randn(6, 5, 8), _randn(*other, seed=4)
    _check(lambda x, y: ((x * y).tanh() - (x + y).amax(-1, keepdim=True)).exp(), [x, y], backend)


@pytest.mark.parametrize("dims,keepdim", [((0, 1), False), ((0, 1), True), ((-1,), False), ((2, 3), True),
                                          ((0, 1, 2), False)], ids=str)
def test_sums_over_leading_and_trailing_axes(backend, dims, keepdim):
    x = _randn(3, 4, 5, 6)
    _check(lambda x: (x.sin() * 2.0).sum(dims, keepdim=keepdim) * 3.0, [x], backend)


def test_flattened_values_returned_and_reshaped(backend):
    x = _randn(4, 6, 8)

    def f(x):
        h = (x * 2.0).relu()
        return h + h.reshape(24, 8).reshape(4, 6, 8).sum(-1, keepdim=True), h.reshape(4, 48)

    for fn in (lambda x: f(x)[0], lambda x: f(x)[1]):
        _check(fn, [x], backend)
    got = gradc.compile(f, backend=backend)(gradc.tensor(x))
    want = f(gradc.tensor(x))
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert_close(g.numpy(), w.numpy(), rtol=1e-6, atol=1e-6)


def test_integer_and_bool_values_keep_their_dtype(backend):
    x = np.random.default_rng(6).integers(-5, 5, size=(3, 4, 5))

    def f(x):
        return gradc.where(x > 0, x * 2, x - 1).sum(-1), (x == 1).sum(-1)

    got = gradc.compile(f, backend=backend)(gradc.tensor(x))
    want = f(gradc.tensor(x))
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g.numpy(), w.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_near_and_below_underflow_equals_eager(backend, dtype):
    # a masked softmax feeds exp with -1e9; the C kernel skips exp below the underflow bound
    v = np.array([-1e9, -1e4, -746.0, -745.1, -200.0, -104.0, -103.97, -103.9, -90.0, -87.0, -0.0, 1.0,
                  -np.inf, np.inf, np.nan], dtype=dtype)
    x = np.tile(v, (4, 1))
    got = gradc.compile(lambda t: (t * 1.0).exp(), backend=backend)(gradc.tensor(x)).numpy()
    want = gradc.tensor(x).exp().numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(got[ok & (want == 0)], want[ok & (want == 0)])   # underflow: exactly 0
    np.testing.assert_array_max_ulp(got[ok], want[ok], maxulp=2)   # elsewhere within libm rounding
