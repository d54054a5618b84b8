"""PyTorch parity for the tensor surface real scripts use (values and float64 gradients), and
eager = compiled for the differentiable ones."""
import math
import warnings

import numpy as np
import pytest

import gradc

torch = pytest.importorskip("torch")
RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 4, 5))
M = RNG.standard_normal((4, 6))
IDX = RNG.integers(0, 4, (3, 2, 5))

# name, gradc fn, torch fn, float inputs (gradients checked), extra non-differentiable inputs
CASES = [
    ("tril", lambda x: gradc.tril(x, 1), lambda x: torch.tril(x, 1), [M]),
    ("triu", lambda x: x.triu(-1), lambda x: x.triu(-1), [M]),
    ("masked_fill", lambda x: x.masked_fill(x > 0.3, -1.5), lambda x: x.masked_fill(x > 0.3, -1.5), [A]),
    ("where_method", lambda x: x.where(x > 0, x * 2), lambda x: x.where(x > 0, x * 2), [A]),
    ("gather", lambda x: gradc.gather(x, 1, gradc.tensor(IDX)), lambda x: torch.gather(x, 1, torch.tensor(IDX)), [A]),
    ("scatter_add", lambda x: x.scatter_add(1, gradc.tensor(IDX), gradc.ones(3, 2, 5, dtype=gradc.float64) * 2),
     lambda x: x.scatter_add(1, torch.tensor(IDX), torch.ones(3, 2, 5, dtype=torch.float64) * 2), [A]),
    ("index_select", lambda x: x.index_select(2, gradc.tensor([4, 0, 0])),
     lambda x: x.index_select(2, torch.tensor([4, 0, 0])), [A]),
    ("roll", lambda x: x.roll((1, -2), (0, 2)), lambda x: x.roll((1, -2), (0, 2)), [A]),
    ("roll_flat", lambda x: gradc.roll(x, 3), lambda x: torch.roll(x, 3), [A]),
    ("flip", lambda x: x.flip((0, 2)), lambda x: x.flip((0, 2)), [A]),
    ("repeat", lambda x: x.repeat(2, 1, 3), lambda x: x.repeat(2, 1, 3), [M]),
    ("unflatten", lambda x: x.unflatten(1, (2, 2)), lambda x: x.unflatten(1, (2, 2)), [A]),
    ("einsum_bmm", lambda x, y: gradc.einsum("bij,jk->bki", x, y), lambda x, y: torch.einsum("bij,jk->bki", x, y),
     [A, RNG.standard_normal((5, 2))]),
    ("einsum_trace_outer", lambda x, y: gradc.einsum("ii,j->j", x, y), lambda x, y: torch.einsum("ii,j->j", x, y),
     [M[:4, :4], RNG.standard_normal(3)]),
    ("einsum_ellipsis", lambda x: gradc.einsum("...ij->...ji", x), lambda x: torch.einsum("...ij->...ji", x), [A]),
    ("bmm", lambda x, y: gradc.bmm(x, y), lambda x, y: torch.bmm(x, y), [A, RNG.standard_normal((3, 5, 2))]),
    ("outer", lambda x, y: gradc.outer(x, y), lambda x, y: torch.outer(x, y), [M[0], M[1, :4]]),
    ("cumsum", lambda x: x.cumsum(1), lambda x: x.cumsum(1), [A]),
    ("prod", lambda x: x.prod(2), lambda x: x.prod(2), [A]),
    ("prod_all", lambda x: x.prod(), lambda x: x.prod(), [M[:2]]),
    ("logsumexp", lambda x: x.logsumexp(-1), lambda x: x.logsumexp(-1), [A]),
    ("log1p", lambda x: (x.abs() * 1e-9).log1p() * 1e9 + x.abs().log1p(),
     lambda x: (x.abs() * 1e-9).log1p() * 1e9 + x.abs().log1p(), [A]),
    ("expm1", lambda x: (x * 1e-9).expm1() * 1e9 + x.expm1(), lambda x: (x * 1e-9).expm1() * 1e9 + x.expm1(), [A]),
    ("norm", lambda x: x.norm(), lambda x: x.norm(), [A]),
    ("norm_dim", lambda x: x.norm(1, dim=1), lambda x: x.norm(1, dim=1), [A]),
    ("norm_inf", lambda x: x.norm(math.inf, dim=0), lambda x: x.norm(math.inf, dim=0), [M]),
    ("nan_to_num", lambda x: (x / (x > 0.5).double() - 1).nan_to_num(0.5, 9.0),
     lambda x: (x / (x > 0.5).double() - 1).nan_to_num(0.5, 9.0), [M]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_with_gradients(case):
    name, gfn, tfn, inputs = case
    g_in = [gradc.tensor(a, requires_grad=True) for a in inputs]
    t_in = [torch.tensor(a, requires_grad=True) for a in inputs]
    g, t = gfn(*g_in), tfn(*t_in)
    np.testing.assert_allclose(g.detach().numpy(), t.detach().numpy(), rtol=1e-9, atol=1e-9)
    w = RNG.standard_normal(t.shape)
    (g * gradc.tensor(w)).sum().backward()
    (t * torch.tensor(w)).sum().backward()
    for gi, ti in zip(g_in, t_in):
        np.testing.assert_allclose(gi.grad.numpy(), ti.grad.numpy(), rtol=1e-9, atol=1e-9, err_msg=name)
    compiled = gradc.compile(lambda *xs: gfn(*xs), fullgraph=True)
    np.testing.assert_allclose(compiled(*[gradc.tensor(a) for a in inputs]).numpy(), t.detach().numpy(),
                               rtol=1e-9, atol=1e-9)


def test_setitem_matches_torch_and_is_differentiable():
    g = gradc.tensor(M, requires_grad=True)
    t = torch.tensor(M, requires_grad=True)
    gy, ty = g * 1.0, t * 1.0
    for key in (1, (slice(None), 2), (gradc.tensor([0, 3]),), (slice(1, 3), slice(None, None, 2))):
        tkey = tuple(torch.tensor(k.numpy()) if isinstance(k, gradc.Tensor) else k for k in key) \
            if isinstance(key, tuple) else key
        gy[key] = gy[key] * 3.0 + 1.0
        ty[tkey] = ty[tkey] * 3.0 + 1.0
    mask = M > 0.5
    gy[gradc.tensor(mask)] = 0.0
    ty[torch.tensor(mask)] = 0.0
    np.testing.assert_allclose(gy.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
    gy.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-12)


def test_setitem_inside_compile_equals_eager():
    def f(x):
        y = x * 2.0
        y[:, 1:3] = 0.0
        y[0] = x[1]
        return y
    x = gradc.tensor(M)
    np.testing.assert_array_equal(gradc.compile(f, fullgraph=True)(x).numpy(), f(x).numpy())


def test_masked_select_is_eager_only_with_a_clear_error():
    x = gradc.tensor(M)
    np.testing.assert_array_equal(x.masked_select(x > 0).numpy(), M[M > 0])
    with pytest.raises(gradc.TraceError, match="masked_select"):
        gradc.compile(lambda x: x.masked_select(x > 0), fullgraph=True)(x)


def test_habits():
    loss = gradc.tensor(0.123456)
    assert f"{loss:.4f}" == "0.1235" and f"{gradc.tensor([2.5]):.1f}" == "2.5"
    x = gradc.ones(2, 3, dtype=gradc.float64)
    assert x.new_zeros(4).dtype is gradc.float64 and x.new_full((2,), 7.0).tolist() == [7.0, 7.0]
    assert x.new_ones((1, 2)).shape == (1, 2) and gradc.is_tensor(x) and not gradc.is_tensor(M)
    assert gradc.numel(x) == 6 and x.numel() == 6
    gradc.manual_seed(0)
    a = gradc.randint(10, (50,))
    b = gradc.randint(3, 10, (50,))
    assert a.shape == (50,) and 0 <= a.min().item() and a.max().item() < 10
    assert 3 <= b.min().item() and b.max().item() < 10
    u = gradc.zeros(10000).uniform_(-2.0, 3.0)
    assert -2.0 <= u.min().item() and u.max().item() < 3.0 and abs(u.mean().item() - 0.5) < 0.05
    n = gradc.zeros(10000).normal_(1.0, 2.0)
    assert abs(n.mean().item() - 1.0) < 0.1 and abs(n.std().item() - 2.0) < 0.1
    assert gradc.allclose(x, x + 1e-9) and not gradc.allclose(x, x + 1) and gradc.equal(x, x.clone())
    v = gradc.tensor([1.0, math.inf, -math.inf, math.nan])
    assert v.isnan().tolist() == [False, False, False, True]
    assert v.isinf().tolist() == [False, True, True, False]
    assert v.isfinite().tolist() == [True, False, False, False]


def test_sort_topk_match_torch_with_gradients():
    x = RNG.standard_normal((4, 7))
    g, t = gradc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    gv, gi = g.topk(3, dim=1)
    tv, ti = t.topk(3, dim=1)
    np.testing.assert_array_equal(gi.numpy(), ti.numpy())
    (gv * 2).sum().backward()
    (tv * 2).sum().backward()
    np.testing.assert_array_equal(g.grad.numpy(), t.grad.numpy())
    s = gradc.tensor([3.0, math.nan, 1.0, 3.0, -math.inf])
    ts = torch.tensor([3.0, math.nan, 1.0, 3.0, -math.inf])
    for desc in (False, True):
        np.testing.assert_array_equal(s.argsort(descending=desc).numpy(), ts.argsort(descending=desc, stable=True).numpy())


def test_integer_floor_division_and_remainder_follow_python():
    a, b = np.array([7, -7, 7, -7]), np.array([2, 2, -2, -2])
    assert (gradc.tensor(a) // gradc.tensor(b)).tolist() == (a // b).tolist()
    assert (gradc.tensor(a) % gradc.tensor(b)).tolist() == (a % b).tolist()
    assert (gradc.tensor([5.5, -5.5]) % 2).tolist() == [1.5, 0.5]
    assert gradc.tensor([0.5, 1.5, 2.5, -0.5]).round().tolist() == [0.0, 2.0, 2.0, -0.0]
    assert gradc.tensor([1.2345]).round(decimals=2).item() == pytest.approx(1.23)


@pytest.mark.parametrize("replacement", [True, False])
def test_multinomial_draws_the_distribution_reproducibly(replacement):
    p = gradc.tensor([[0.1, 0.0, 0.6, 0.3], [1.0, 1.0, 1.0, 1.0]])
    gradc.manual_seed(3)
    a = gradc.multinomial(p, 2, replacement=replacement)
    gradc.manual_seed(3)
    assert gradc.multinomial(p, 2, replacement=replacement).tolist() == a.tolist()
    draws = np.concatenate([gradc.multinomial(p[0], 1, replacement=replacement).numpy() for _ in range(4000)])
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.6, 0.3], atol=0.03)
    if not replacement:
        rows = gradc.multinomial(p, 3).numpy()
        assert all(len(set(r)) == 3 for r in rows) and 1 not in rows[0]
    compiled = gradc.compile(lambda q: gradc.multinomial(q, 2, replacement=replacement), fullgraph=True)
    gradc.manual_seed(5)
    c = compiled(p)
    gradc.manual_seed(5)
    assert c.tolist() == gradc.multinomial(p, 2, replacement=replacement).tolist()


def test_int32_promotes_and_compiles_as_torch():
    a = np.array([[1, -2, 3], [4, 5, -6]], dtype=np.int32)
    g, t = gradc.from_numpy(a), torch.from_numpy(a)
    assert g.dtype is gradc.int32 and gradc.int is gradc.int32
    for f in (lambda x: x + 2, lambda x: x * x, lambda x: x + x.long(), lambda x: x / 2, lambda x: x * 1.5,
              lambda x: x // 2, lambda x: x % 4, lambda x: x.sum(), lambda x: x.float() + x, lambda x: -x.abs()):
        gr, tr = f(g), f(t)
        assert str(gr.dtype).split(".")[-1] == str(tr.dtype).split(".")[-1], (gr.dtype, tr.dtype)
        np.testing.assert_array_equal(gr.numpy(), tr.numpy())
        np.testing.assert_array_equal(gradc.compile(f, fullgraph=True)(g).numpy(), tr.numpy())
    assert gradc.randint(0, 5, (3,), dtype=gradc.int32).dtype is gradc.int32
    assert gradc.zeros(2, dtype=gradc.int32).dtype is gradc.int32 and g.to(gradc.int64).dtype is gradc.int64


def test_bfloat16_is_named_and_refused_with_the_alternative():
    assert repr(gradc.bfloat16) == "gradc.bfloat16" and not gradc.cuda.is_bf16_supported()
    for use in (lambda: gradc.ones(2).to(gradc.bfloat16), lambda: gradc.zeros(2, dtype=gradc.bfloat16),
                lambda: gradc.tensor([1.0], dtype=gradc.bfloat16)):
        with pytest.raises(gradc.DTypeError, match="float16 with autocast"):
            use()


def test_mark_dynamic_checks_its_arguments():
    x = gradc.ones(3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gradc.mark_dynamic(x, 0)
    with pytest.raises(gradc.ShapeError, match="out of range"):
        gradc.mark_dynamic(x, 2)
    with pytest.raises(TypeError):
        gradc.mark_dynamic(M, 0)
