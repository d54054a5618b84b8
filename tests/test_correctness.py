"""Regressions for results that were silently wrong: losses and indices as in PyTorch, float16
reductions without autocast, in-place changes of leaves inside gradc.compile."""
import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn



def _torch():
    return pytest.importorskip("torch")


def _pair(a, requires_grad=True):
    t = _torch()
    return gradc.tensor(a, requires_grad=requires_grad), t.tensor(a, requires_grad=requires_grad)


@pytest.mark.parametrize("kwargs", [
    {}, {"ignore_index": 1}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.2},
    {"weight": [0.5, 2.0, 1.0, 0.25]}, {"weight": [0.5, 2.0, 1.0, 0.25], "ignore_index": 0, "label_smoothing": 0.1},
    {"ignore_index": 3, "reduction": "sum", "label_smoothing": 0.3},
])
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5)])
def test_cross_entropy_and_nll_options_match_torch(kwargs, shape):
    t = _torch()
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(shape)
    target = rng.integers(0, 4, (shape[0],) + shape[2:])
    target.flat[0] = -100  # the default ignore_index: never counted
    gx, tx = _pair(logits)
    kw_g = {k: (gradc.tensor(v, dtype=gradc.float64) if k == "weight" else v) for k, v in kwargs.items()}
    kw_t = {k: (t.tensor(v, dtype=t.float64) if k == "weight" else v) for k, v in kwargs.items()}
    if "ignore_index" in kwargs:
        target.flat[0] = kwargs["ignore_index"]
    g = F.cross_entropy(gx, gradc.tensor(target), **kw_g)
    r = t.nn.functional.cross_entropy(tx, t.tensor(target), **kw_t)
    np.testing.assert_allclose(g.detach().numpy(), r.detach().numpy(), rtol=1e-10, atol=1e-12)
    g.sum().backward()
    r.sum().backward()
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    if not kwargs.get("label_smoothing"):
        kw_g.pop("label_smoothing", None), kw_t.pop("label_smoothing", None)
        logp = rng.standard_normal(shape)
        np.testing.assert_allclose(
            F.nll_loss(gradc.tensor(logp), gradc.tensor(target), **kw_g).numpy(),
            t.nn.functional.nll_loss(t.tensor(logp), t.tensor(target), **kw_t).numpy(), rtol=1e-10)


def test_ignored_rows_leave_the_mean_and_get_no_gradient():
    x = gradc.tensor([[1.0, 2.0, 3.0], [3.0, 1.0, 0.0]], requires_grad=True)
    loss = F.cross_entropy(x, gradc.tensor([2, -100]))
    expected = -np.log(np.exp(3.0) / np.exp([1.0, 2.0, 3.0]).sum())  # the mean over one counted row
    assert abs(loss.item() - expected) < 1e-6
    loss.backward()
    assert np.all(x.grad.numpy()[1] == 0)


def test_class_probability_targets_match_torch():
    t = _torch()
    rng = np.random.default_rng(1)
    logits, probs = rng.standard_normal((5, 3)), rng.dirichlet(np.ones(3), 5)
    for ls in (0.0, 0.25):
        g = F.cross_entropy(gradc.tensor(logits), gradc.tensor(probs), label_smoothing=ls)
        r = t.nn.functional.cross_entropy(t.tensor(logits), t.tensor(probs), label_smoothing=ls)
        assert abs(g.item() - r.item()) < 1e-10


@pytest.mark.parametrize("bad", [4, -1, 7])
def test_out_of_range_targets_and_indices_raise(bad):
    with pytest.raises(gradc.OutOfRangeError, match=str(bad)) as e:
        F.cross_entropy(gradc.randn(2, 4), gradc.tensor([0, bad]))
    assert isinstance(e.value, IndexError) and isinstance(e.value, gradc.GradcError)
    emb = nn.Embedding(4, 3)
    with pytest.raises(IndexError, match=str(bad)):
        emb(gradc.tensor([1, bad]))


def test_float16_reductions_and_norms_accumulate_in_float32():
    x = gradc.full((1000,), 100.0, dtype=gradc.float16)
    assert x.mean().dtype is gradc.float16 and x.mean().item() == 100.0
    assert np.isfinite(x.var().item()) and x.var().item() == 0.0
    ln = nn.LayerNorm(4096).half()
    y = gradc.tensor(np.random.default_rng(0).standard_normal((2, 4096)) * 3 + 5, dtype=gradc.float16)
    out = ln(y)
    assert out.dtype is gradc.float16
    ref = (y.float() - y.float().mean(-1, keepdim=True)) / (y.float().var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
    np.testing.assert_allclose(out.detach().float().numpy(), ref.numpy(), atol=2e-2)
    s = gradc.tensor(np.linspace(-30, 30, 50), dtype=gradc.float16).softmax(0)
    assert s.dtype is gradc.float16 and abs(s.float().sum().item() - 1) < 1e-2


def test_in_place_change_of_a_leaf_inside_compile_raises_as_eagerly():
    w = gradc.ones(3, requires_grad=True)

    def f(x):
        w.add_(x)
        return w.sum()
    with pytest.raises(gradc.AutogradError, match="leaf"):
        f(gradc.ones(3))
    with pytest.raises(gradc.AutogradError, match="leaf"):
        gradc.compile(f, fullgraph=True)(gradc.ones(3))
    assert np.array_equal(w.detach().numpy(), np.ones(3))


@pytest.mark.parametrize("make,error,text", [
    (lambda: gradc.ones(3) * 10 ** 400, gradc.DTypeError, "does not fit"),
    (lambda: gradc.ones(2, dtype=gradc.int64) + 2 ** 63, gradc.DTypeError, "does not fit"),
    (lambda: gradc.full((2,), 2 ** 63, dtype=gradc.int64), gradc.DTypeError, "does not fit"),
    (lambda: gradc.zeros(-1), gradc.ShapeError, "non-negative"),
    (lambda: gradc.randn(3, -2), gradc.ShapeError, "non-negative"),
    (lambda: gradc.zeros(2 ** 40, 2 ** 30), gradc.ShapeError, "2\\*\\*63"),
    (lambda: gradc.zeros(3, 0).amax(1), gradc.ShapeError, "empty"),
    (lambda: gradc.zeros(0, 2).argmax(0), gradc.ShapeError, "empty"),
    (lambda: gradc.ones(1, 1, 4).expand(2 ** 31, 2 ** 31, 4).sum(), gradc.ShapeError, "2\\*\\*63"),
])
def test_bad_sizes_and_scalars_get_named_errors(make, error, text):
    with pytest.raises(error, match=text):
        make()


def test_empty_reductions_follow_torch():
    t = _torch()
    for name in ("sum", "mean"):
        g = getattr(gradc.zeros(3, 0), name)(1).numpy()
        r = getattr(t.zeros(3, 0), name)(1).numpy()
        np.testing.assert_array_equal(g, r)


def test_a_huge_expand_fails_as_fast_compiled_as_eagerly():
    import time
    start = time.perf_counter()
    with pytest.raises(gradc.ShapeError):
        gradc.compile(lambda x: x.expand(2 ** 31, 2 ** 31, 4).sum(), fullgraph=True)(gradc.ones(1, 1, 4))
    assert time.perf_counter() - start < 5.0


NAN = float("nan")


@pytest.mark.parametrize("name,f,data", [
    ("clamp_nan_bound", lambda a: a.clamp(min=NAN), [1.0, NAN, -2.0, 3.0]),
    ("clamp_bounds_and_ties", lambda a: a.clamp(0.0, 2.0), [1.0, NAN, -2.0, 3.0, 0.0, 2.0]),
    ("clamp_tensor_bounds", lambda a: a.clamp(a * 0, a * 0 + 2), [1.0, NAN, -2.0, 3.0, 0.0, 2.0]),
    ("maximum_nan", lambda a: a.maximum(a * 0 + 2.0), [1.0, NAN, 2.0, 3.0]),
    ("minimum_nan", lambda a: a.minimum(a * 0 + 2.0), [1.0, NAN, 2.0, 3.0]),
    ("max_dim_ties", lambda a: a.max(0).values, [[1.0, 2.0], [1.0, 2.0]]),
    ("min_dim_ties", lambda a: a.min(1).values, [[1.0, 1.0], [3.0, 2.0]]),
    ("max_with_nan", lambda a: a.max(), [1.0, NAN, -2.0]),
    ("relu_nan", lambda a: a.relu(), [1.0, NAN, -2.0]),
])
def test_nan_and_tie_handling_follows_torch(name, f, data):
    t = _torch()
    g, r = gradc.tensor(data, requires_grad=True), t.tensor(data, requires_grad=True)
    go, to = f(g), f(r)
    np.testing.assert_array_equal(go.detach().numpy(), to.detach().numpy())
    go.sum().backward()
    to.sum().backward()
    np.testing.assert_array_equal(g.grad.numpy(), r.grad.numpy(), err_msg=name)
    compiled = gradc.compile(lambda a: f(a), fullgraph=True)
    np.testing.assert_array_equal(compiled(gradc.tensor(data)).numpy(), to.detach().numpy())


def test_sign_of_nan_is_zero_as_in_torch():
    x = gradc.tensor([NAN, -0.0, 2.0, -3.0])
    assert gradc.sign(x).tolist() == [0.0, 0.0, 1.0, -1.0]
    assert gradc.compile(gradc.sign)(x).tolist() == [0.0, 0.0, 1.0, -1.0]


def test_out_of_range_targets_raise_in_compiled_code_too():
    step = gradc.compile(lambda x, t: F.cross_entropy(x, t), fullgraph=True)
    x = gradc.randn(3, 4)
    assert np.isfinite(step(x, gradc.tensor([0, 3, -100])).item())
    with pytest.raises(gradc.OutOfRangeError, match="-5"):
        step(x, gradc.tensor([0, -5, 1]))
    emb = nn.Embedding(4, 2)
    look = gradc.compile(lambda i: emb(i), fullgraph=True)
    assert look(gradc.tensor([0, 3])).shape == (2, 2)
    with pytest.raises(IndexError, match="4"):
        look(gradc.tensor([4, 0]))
