"""Small PyTorch-parity regressions: each case once gave a different answer from PyTorch (or a
cryptic error where PyTorch works, or a silent NaN where PyTorch raises), eagerly or compiled."""
import numpy as np
import pytest

import gradc
from gradc.errors import LinAlgError

torch = pytest.importorskip("torch")

BACKENDS = ("numpy", "c")


def _close(a, b, tol=1e-6):
    a = a.detach().numpy() if hasattr(a, "numpy") else np.asarray(a)
    b = b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# -- linalg.cholesky --------------------------------------------------------------------------

def test_cholesky_upper_reads_the_upper_triangle():
    a = np.array([[4.0, 1.0], [100.0, 3.0]])
    for upper in (True, False):
        src = a if upper else a.T
        _close(gradc.linalg.cholesky(gradc.tensor(src), upper=upper),
               torch.linalg.cholesky(torch.tensor(src), upper=upper))


@pytest.mark.parametrize("backend", (None,) + BACKENDS)
def test_cholesky_not_positive_definite_raises(backend):
    good = np.array([[4.0, 2.0], [2.0, 3.0]])
    bad = np.stack([good, np.array([[1.0, 2.0], [2.0, 1.0]])])
    fn = gradc.linalg.cholesky if backend is None else gradc.compile(gradc.linalg.cholesky, backend=backend)
    _close(fn(gradc.tensor(good)), torch.linalg.cholesky(torch.tensor(good)))
    with pytest.raises(torch.linalg.LinAlgError, match="order 2"):
        torch.linalg.cholesky(torch.tensor(bad))
    with pytest.raises(LinAlgError, match="not positive-definite .*order 2"):
        fn(gradc.tensor(bad))
    assert issubclass(LinAlgError, RuntimeError) and gradc.linalg.LinAlgError is LinAlgError


def test_multivariate_normal_of_a_matrix_that_is_not_positive_definite_raises():
    cov = [[1.0, 2.0], [2.0, 1.0]]
    with pytest.raises(torch.linalg.LinAlgError):
        torch.distributions.MultivariateNormal(torch.zeros(2), covariance_matrix=torch.tensor(cov), validate_args=False)
    with pytest.raises(LinAlgError, match="order 2"):
        gradc.distributions.MultivariateNormal(gradc.zeros(2), covariance_matrix=gradc.tensor(cov), validate_args=False)


# -- reductions -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ("any", "all"))
def test_any_all_with_dim_and_keepdim(name):
    a = np.array([[True, False, True], [False, False, True]])
    for kw in ({}, {"dim": 1}, {"dim": 0, "keepdim": True}, {"dim": -1, "keepdim": False}):
        got, want = getattr(gradc.tensor(a), name)(**kw), getattr(torch.tensor(a), name)(**kw)
        assert got.dtype == gradc.bool
        _close(got, want)
    f = gradc.compile(lambda x: getattr(x, name)(1), backend="numpy")
    _close(f(gradc.tensor(a)), getattr(torch.tensor(a), name)(1))


# -- modules ----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_module_built_inside_a_compiled_function(backend):
    def f(x):
        conv = gradc.nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect", bias=False)
        with gradc.no_grad():
            conv.weight.fill_(0.5)
        return conv(x)
    x = np.linspace(-1, 1, 2 * 2 * 4 * 5).reshape(2, 2, 4, 5).astype(np.float32)
    want = torch.nn.functional.conv2d(torch.nn.functional.pad(torch.tensor(x), (1, 1, 1, 1), mode="reflect"),
                                      torch.full((3, 2, 3, 3), 0.5))
    _close(f(gradc.tensor(x)), want, 1e-5)
    _close(gradc.compile(f, backend=backend)(gradc.tensor(x)), want, 1e-5)


# -- pooling and resampling -------------------------------------------------------------------

@pytest.mark.parametrize("out", ((2, 3, 2), (4, 1, 3), (None, 2, None)))
def test_adaptive_max_pool3d(out):
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 4, 3)).astype(np.float32)
    want_v, want_i = torch.nn.functional.adaptive_max_pool3d(torch.tensor(x), out, return_indices=True)
    got_v, got_i = gradc.nn.functional.adaptive_max_pool3d(gradc.tensor(x), out, return_indices=True)
    _close(got_v, want_v)
    assert np.array_equal(got_i.numpy(), want_i.numpy())
    f = gradc.compile(lambda t: gradc.nn.AdaptiveMaxPool3d(out)(t), backend="numpy")
    _close(f(gradc.tensor(x[0])), want_v[0])


def test_interpolate_area_5d():
    x = np.random.default_rng(1).standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
    for kw in ({"scale_factor": (1.5, 2, 0.7)}, {"size": (2, 3, 4)}):
        _close(gradc.nn.functional.interpolate(gradc.tensor(x), mode="area", **kw),
               torch.nn.functional.interpolate(torch.tensor(x), mode="area", **kw), 1e-5)


# -- nn.functional ----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", (None,) + BACKENDS)
def test_one_hot_out_of_range_raises(backend):
    f = lambda t, n: gradc.nn.functional.one_hot(t, n)     # noqa: E731
    g = f if backend is None else gradc.compile(f, backend=backend)
    idx = np.array([[0, 2], [4, 1]])
    assert np.array_equal(g(gradc.tensor(idx), 5).numpy(), torch.nn.functional.one_hot(torch.tensor(idx), 5).numpy())
    with pytest.raises(gradc.OutOfRangeError, match="one_hot"):
        g(gradc.tensor(idx), 4)
    with pytest.raises(gradc.OutOfRangeError, match="one_hot"):
        g(gradc.tensor(-idx), 5)


@pytest.mark.parametrize("mode", ("reflect", "replicate", "circular"))
def test_pad_negative_widths_crop_in_every_mode(mode):
    x = np.arange(2 * 5 * 6, dtype=np.float32).reshape(1, 2, 5, 6)
    for widths in ((-1, 2, 0, -2), (2, -2, 1, 0), (-2, -1, 1, 1)):
        _close(gradc.nn.functional.pad(gradc.tensor(x), widths, mode=mode),
               torch.nn.functional.pad(torch.tensor(x), widths, mode=mode))


def test_softmax_and_logsumexp_over_an_empty_dim():
    x = np.zeros((3, 0), np.float32)
    for name in ("softmax", "log_softmax"):
        _close(getattr(gradc.nn.functional, name)(gradc.tensor(x), 1),
               getattr(torch.nn.functional, name)(torch.tensor(x), 1))
    _close(gradc.logsumexp(gradc.tensor(x), 1), torch.logsumexp(torch.tensor(x), 1))
    _close(gradc.logsumexp(gradc.tensor(x), (0, 1), keepdim=True), torch.logsumexp(torch.tensor(x), (0, 1), keepdim=True))


@pytest.mark.parametrize("backend", (None,) + BACKENDS)
def test_binary_cross_entropy_rejects_values_outside_0_1(backend):
    f = lambda p, t: gradc.nn.functional.binary_cross_entropy(p, t)     # noqa: E731
    g = f if backend is None else gradc.compile(f, backend=backend)
    p, t = np.array([0.2, 0.9, 0.5], np.float32), np.array([0.0, 1.0, 0.3], np.float32)
    _close(g(gradc.tensor(p), gradc.tensor(t)), torch.nn.functional.binary_cross_entropy(torch.tensor(p), torch.tensor(t)))
    for bad_p, bad_t, what in ((p * 3, t, "input"), (p, t * 3, "target"), (p * np.nan, t, "input")):
        with pytest.raises(RuntimeError, match=what):
            torch.nn.functional.binary_cross_entropy(torch.tensor(bad_p), torch.tensor(bad_t))
        with pytest.raises(gradc.errors.ValueRangeError, match=f"elements of {what} should be between 0 and 1"):
            g(gradc.tensor(bad_p), gradc.tensor(bad_t))


# -- tensor semantics -------------------------------------------------------------------------

@pytest.mark.parametrize("backend", (None,) + BACKENDS)
def test_div_rounding_modes_and_alpha(backend):
    def f(a, b, x):
        return (gradc.div(a, b, rounding_mode="trunc"), gradc.div(a, b, rounding_mode="floor"), a.div(b),
                gradc.div(x, 0.7, rounding_mode="trunc"), gradc.add(a, b, alpha=3), x.sub(x * 2, alpha=0.5))
    g = f if backend is None else gradc.compile(f, backend=backend)
    a, b, x = np.array([-7, 5, 0, 7, -9]), np.array([2, -3, 4, -2, -3]), np.array([-1.5, 0.2, 2.9], np.float32)
    ta, tb, tx = torch.tensor(a), torch.tensor(b), torch.tensor(x)
    want = (torch.div(ta, tb, rounding_mode="trunc"), torch.div(ta, tb, rounding_mode="floor"), ta.div(tb),
            torch.div(tx, 0.7, rounding_mode="trunc"), torch.add(ta, tb, alpha=3), tx.sub(tx * 2, alpha=0.5))
    for got, w in zip(g(gradc.tensor(a), gradc.tensor(b), gradc.tensor(x)), want):
        assert str(got.dtype).split(".")[-1] == str(w.dtype).split(".")[-1]
        _close(got, w)
    with pytest.raises(gradc.DTypeError, match="alpha"):
        gradc.add(gradc.tensor(a), 1, alpha=0.5)


@pytest.mark.parametrize("backend", (None,) + BACKENDS)
def test_integer_division_by_zero_raises(backend):
    f = lambda a, b: (a // b, a % b)     # noqa: E731
    g = f if backend is None else gradc.compile(f, backend=backend)
    a = np.array([7, -7, 3])
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        torch.tensor(a) // torch.tensor([2, 0, 1])
    for got, want in zip(g(gradc.tensor(a), gradc.tensor([2, 3, -2])), f(torch.tensor(a), torch.tensor([2, 3, -2]))):
        _close(got, want)
    with pytest.raises(gradc.errors.ValueRangeError, match="division by zero"):
        g(gradc.tensor(a), gradc.tensor([2, 0, 1]))
    with pytest.raises(gradc.errors.ValueRangeError, match="division by zero"):
        gradc.tensor(a) % 0


def test_where_with_condition_only_unique_and_cumsum_dtypes():
    x = np.array([[1.0, -1.0, 2.0], [0.0, 3.0, -2.0]], np.float32)
    for got, want in zip(gradc.where(gradc.tensor(x) > 0), torch.where(torch.tensor(x) > 0)):
        _close(got, want)
    v = np.array([1.0, np.nan, 1.0, np.nan], np.float32)
    _close(gradc.unique(gradc.tensor(v)), torch.unique(torch.tensor(v)))
    m = np.array([[3, 1], [2, 3], [3, 1]])
    for got, want in zip(gradc.unique(gradc.tensor(m), dim=0, return_inverse=True, return_counts=True),
                         torch.unique(torch.tensor(m), dim=0, return_inverse=True, return_counts=True)):
        _close(got, want)
    c = np.array([1, 1, 2, 2, 3, 1, 1])
    for got, want in zip(gradc.unique_consecutive(gradc.tensor(c), return_inverse=True, return_counts=True),
                         torch.unique_consecutive(torch.tensor(c), return_inverse=True, return_counts=True)):
        _close(got, want)
    i32 = np.array([1, 2, 3], np.int32)
    assert gradc.tensor(i32).cumsum(0).dtype == gradc.int64 and gradc.tensor(i32).cumprod(0).dtype == gradc.int64


# -- indexing, gather/scatter, einsum ---------------------------------------------------------

def test_indexing_rules():
    x = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    g, t = gradc.tensor(x), torch.tensor(x)
    _close(g[[[0, 2], [1, 1]]], t[[[0, 2], [1, 1]]])          # a list of lists is a tuple of indices
    with pytest.raises(IndexError):
        t[torch.tensor([True, False])]
    with pytest.raises(gradc.OutOfRangeError, match="mask"):
        g[gradc.tensor([True, False])]                     # a mask must match the dims it indexes
    with pytest.raises(gradc.OutOfRangeError):
        g[4]


@pytest.mark.parametrize("backend", (None,) + BACKENDS)
def test_setitem_with_a_repeated_index_writes_the_last_value(backend):
    rows, vals = [0, 2, 0, 1], np.array([[1, 2], [3, 4], [5, 6], [7, 8]], np.float32)

    def f(a, v, lib):
        a = a.clone()
        a[lib.tensor([0, 0, 1])] = 5.0
        a[lib.tensor([2, 2]), lib.tensor([1, 1])] = 7.0
        a[lib.tensor(rows)] = v                             # row 0 written twice: its last write stays
        a.index_put_((lib.tensor([3, 3]),), lib.tensor([[-1.0, -2.0], [9.0, 8.0]]))
        return a.index_copy(0, lib.tensor([1, 1]), v[:2] * 2)
    g = (lambda a, v: f(a, v, gradc)) if backend is None else gradc.compile(lambda a, v: f(a, v, gradc), backend=backend)
    x = np.zeros((4, 2), np.float32)
    _close(g(gradc.tensor(x), gradc.tensor(vals)), f(torch.tensor(x), torch.tensor(vals), torch))


@pytest.mark.parametrize("backend", (None,) + BACKENDS)
def test_gather_and_scatter_reject_out_of_range_indices(backend):
    f = lambda a, i: (a.gather(1, i), a.scatter_add(1, i, a[:, :2]))     # noqa: E731
    g = f if backend is None else gradc.compile(f, backend=backend)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    ok = np.array([[0, 2], [1, 1]])
    for got, want in zip(g(gradc.tensor(a), gradc.tensor(ok)), f(torch.tensor(a), torch.tensor(ok))):
        _close(got, want)
    for bad in (np.array([[0, 3], [1, 1]]), np.array([[0, -1], [1, 1]])):
        with pytest.raises(RuntimeError):
            torch.tensor(a).gather(1, torch.tensor(bad))
        with pytest.raises(gradc.OutOfRangeError, match="gather: index"):
            g(gradc.tensor(a), gradc.tensor(bad))


def test_einsum_implicit_ellipsis_and_broadcasting():
    rng = np.random.default_rng(3)
    a, b, c = (rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 4), (2, 4, 5), (1, 3, 4)))
    for eq, ops in (("...ij,...jk", (a, b)), ("bij,bjk->bik", (c, b)), ("b...d,d->b...", (a, b[0, :, 0]))):
        _close(gradc.einsum(eq, *map(gradc.tensor, ops)), torch.einsum(eq, *map(torch.tensor, ops)), 1e-5)
    with pytest.raises(gradc.ShapeError):
        gradc.dot(gradc.tensor(a[0]), gradc.tensor(a[0]))


def test_descending_sort_and_topk_put_nan_before_inf():
    a = np.array([[np.inf, 0.0, -1.0, np.nan], [np.nan, np.inf, 2.0, np.inf]], np.float32)
    want = torch.tensor(a).sort(dim=1, descending=True, stable=True)
    got = gradc.tensor(a).sort(dim=1, descending=True, stable=True)
    _close(got.values, want.values)
    assert np.array_equal(got.indices.numpy(), want.indices.numpy())
    f = gradc.compile(lambda t: t.topk(2, 1), backend="numpy")
    _close(f(gradc.tensor(a)).values, torch.tensor(a).topk(2, 1).values)


def test_split_mean_dtype_shifts_logspace():
    x = gradc.ones(2, 5)
    with pytest.raises(RuntimeError):
        torch.ones(2, 5).split([1, 3], 1)
    with pytest.raises(gradc.ShapeError, match="sum exactly to 5"):
        x.split([1, 3], 1)
    i = np.array([1, 4, 7, -7])
    _close(gradc.tensor(i).mean(dtype=gradc.float64), torch.tensor(i).mean(dtype=torch.float64))
    for got, want in zip((gradc.tensor(i) << 2, gradc.tensor(i) >> 1, gradc.tensor(i) >> gradc.tensor([0, 1, 2, 1])),
                         (torch.tensor(i) << 2, torch.tensor(i) >> 1, torch.tensor(i) >> torch.tensor([0, 1, 2, 1]))):
        assert np.array_equal(got.numpy(), want.numpy())
    _close(gradc.logspace(0, 2, 5, base=3), torch.logspace(0, 2, 5, base=3))


@pytest.mark.parametrize("backend", (None,) + BACKENDS)
def test_attention_row_that_attends_nowhere_gives_zero(backend):
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4)))
    mask = np.ones((3, 5), bool)
    mask[1] = False
    tq = torch.tensor(q, requires_grad=True)
    want = torch.nn.functional.scaled_dot_product_attention(tq, torch.tensor(k), torch.tensor(v), attn_mask=torch.tensor(mask))
    want.sum().backward()

    def f(q, k, v, m):
        out = gradc.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m)
        out.sum().backward()
        return out
    g = f if backend is None else gradc.compile(f, backend=backend)
    gq = gradc.tensor(q, requires_grad=True)
    _close(g(gq, gradc.tensor(k), gradc.tensor(v), gradc.tensor(mask)), want, 1e-5)
    _close(gq.grad, tq.grad, 1e-5)


def test_attention_with_dropout_and_a_row_that_attends_nowhere():
    # dropout_p > 0 takes the composite path (not the primitive): the fully masked row is 0 there too
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((1, 2, 3, 4)).astype(np.float32) for _ in range(3))
    mask = np.ones((3, 3), bool)
    mask[0] = False
    got = gradc.nn.functional.scaled_dot_product_attention(*map(gradc.tensor, (q, k, v)), attn_mask=gradc.tensor(mask),
                                                           dropout_p=1e-12)
    want = torch.nn.functional.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)), attn_mask=torch.tensor(mask))
    _close(got, want, 1e-5)


def test_multihead_attention_row_that_attends_nowhere_as_pytorch():
    # need_weights=False runs PyTorch's scaled_dot_product_attention (0 for such a row), need_weights=True
    # its softmax (NaN there); both masks, eagerly
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    kpm = np.array([[True, True, True], [False, True, True]])
    am = np.zeros((3, 3), bool)
    am[0] = True
    tm = torch.nn.MultiheadAttention(4, 2, batch_first=True)
    gm = gradc.nn.MultiheadAttention(4, 2, batch_first=True)
    gm.load_state_dict({k: gradc.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    for mask in ({"key_padding_mask": kpm}, {"attn_mask": am}):
        for need_weights in (True, False):
            want = tm(*[torch.tensor(x)] * 3, need_weights=need_weights, **{k: torch.tensor(v) for k, v in mask.items()})
            got = gm(*[gradc.tensor(x)] * 3, need_weights=need_weights, **{k: gradc.tensor(v) for k, v in mask.items()})
            for g, w in zip(got, want):
                if w is not None:
                    np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), atol=1e-6)


@pytest.mark.parametrize("backend", (None,) + BACKENDS)
def test_embedding_max_norm_renormalises_the_rows_it_reads(backend):
    w = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    idx = np.array([[0, 2, 9], [2, 2, 1]])
    te = torch.nn.Embedding(10, 4, max_norm=1.0, norm_type=1.5)
    with torch.no_grad():
        te.weight.copy_(torch.tensor(w))
    want = te(torch.tensor(idx))
    ge = gradc.nn.Embedding(10, 4, max_norm=1.0, norm_type=1.5)
    with gradc.no_grad():
        ge.weight.copy_(gradc.tensor(w))
    f = ge if backend is None else gradc.compile(ge, backend=backend)
    _close(f(gradc.tensor(idx)), want)
    _close(ge.weight, te.weight)


def test_atan2_gradient_at_the_origin_is_zero():
    ta, tb = torch.tensor([0.0, 1.0], requires_grad=True), torch.tensor([0.0, 2.0], requires_grad=True)
    torch.atan2(ta, tb).sum().backward()
    ga, gb = gradc.tensor([0.0, 1.0], requires_grad=True), gradc.tensor([0.0, 2.0], requires_grad=True)
    gradc.atan2(ga, gb).sum().backward()
    _close(ga.grad, ta.grad)
    _close(gb.grad, tb.grad)


def test_int32_indices_are_taken_as_pytorch_takes_them():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    i32 = np.array([0, 2], np.int32)
    g, t, gi, ti = gradc.tensor(x), torch.tensor(x), gradc.tensor(i32), torch.tensor(i32)
    _close(g[gi], t[ti])
    _close(g.index_select(1, gi), t.index_select(1, ti))
    _close(g.gather(1, gi.reshape(1, 2)), t.gather(1, ti.reshape(1, 2)))
    _close(gradc.nn.functional.embedding(gi, g), torch.nn.functional.embedding(ti, t))


def test_a_view_whose_base_changed_in_place_takes_the_change_into_its_history():
    def run(lib):
        grads = []
        a = lib.tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
        b = a * 1.0
        v = b[1:3]
        b.mul_(3.0)                      # the gradient through v includes the 3, as torch regenerates v's grad_fn
        (v * v).sum().backward()
        y = (a * 2).view(4, 3)
        y[:, 0] *= 3                     # getitem, imul through the view, setitem of it: y reads its own write
        (y * y).sum().backward()
        x = lib.ones(3, requires_grad=True)
        buf = lib.zeros(2, 3)
        row = buf[0]
        buf[0] = x * 3                   # a buffer without history takes one: its earlier views see it
        (row * row).sum().backward()
        c = a * 1.0
        flat = c.t().reshape(-1)         # a reshape that copies keeps the old values and their history
        c.mul_(5.0)
        (flat * flat).sum().backward()
        grads += [a.grad, x.grad]
        w = lib.nn.Parameter(lib.ones(3, 2))
        wt = w.t()
        with lib.no_grad():
            w.mul_(2.0)                  # a leaf changed outside autograd
        (wt * 1.0).sum().backward()
        return grads + [w.grad]
    for got, want in zip(run(gradc), run(torch)):
        _close(got, want)


def test_state_dict_lists_a_shared_module_under_each_path():
    def build(nn):
        root = nn.Module()
        root.a = nn.Linear(3, 2)
        root.b = root.a                         # weight tying, as a language model's head and embedding
        root.seq = nn.Sequential(nn.ReLU(), nn.Linear(2, 2))
        return root
    g, t = build(gradc.nn), build(torch.nn)
    assert list(g.state_dict()) == list(t.state_dict())
    g.load_state_dict({k: gradc.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    _close(g.b.weight, t.a.weight)
    assert [n for n, _ in g.named_modules(remove_duplicate=False)] == [n for n, _ in t.named_modules(remove_duplicate=False)]
    assert g.get_submodule("seq.1") is g.seq[1] and g.get_parameter("seq.1.bias") is g.seq[1].bias


def test_cat_of_zero_dimensional_tensors_raises_a_named_error():
    with pytest.raises(RuntimeError):
        torch.cat([torch.tensor(1.0), torch.tensor(2.0)])
    with pytest.raises(gradc.ShapeError, match="zero-dimensional"):
        gradc.cat([gradc.tensor(1.0), gradc.tensor(2.0)])


@pytest.mark.parametrize("backend", (None,) + BACKENDS)
def test_a_parameter_updated_under_no_grad_then_differentiated(backend):
    def run(lib, param):
        w = param(lib.ones(3))

        def step(x):
            with lib.no_grad():
                w.mul_(2)                       # its gradient is with respect to the new value
            loss = (w * x).sum()
            loss.backward()
            return loss
        f = step if lib is torch or backend is None else gradc.compile(step, backend=backend)
        for _ in range(2):
            out = f(lib.tensor([1.0, 2.0, 3.0]))
        return out, w.grad, w
    for got, want in zip(run(gradc, gradc.nn.Parameter), run(torch, torch.nn.Parameter)):
        _close(got, want.detach())


def test_module_and_data_names_scripts_touch():
    def probe(L):
        n = L.nn
        l = n.Linear(2, 2)
        s = n.Sequential(n.ReLU(), n.Tanh())
        popped = s.pop(0)

        class Indices(L.utils.data.Sampler[int]):
            pass

        class Items(L.utils.data.Dataset[int]):
            pass
        lstm = n.LSTM(2, 2)
        lstm.flatten_parameters()
        return [repr(n.Softshrink(0.3)), repr(n.Hardshrink(0.3)), repr(n.Fold(3, 2)), repr(n.Unfold(2)),
                n.LayerNorm(4).elementwise_affine, n.LayerNorm(4, elementwise_affine=False).elementwise_affine,
                (n.ReLU6().min_val, n.ReLU6().max_val), n.Upsample(scale_factor=2).name,
                len(list(n.ModuleList([l, l]).named_parameters(remove_duplicate=False))),
                len(list(n.ModuleList([l, l]).named_parameters())), repr(popped), len(s + n.Sequential(n.ReLU())),
                repr(s)]
    assert probe(gradc) == probe(torch)


SMALL_CASES = {
    "nonzero of a scalar": lambda L: L.nonzero(L.tensor(3.0)),
    "nonzero of a zero scalar": lambda L: L.nonzero(L.tensor(0.0)),
    "nonzero as_tuple of a scalar": lambda L: L.tensor(3.0).nonzero(as_tuple=True)[0],
    "isclose of bools": lambda L: L.isclose(L.tensor([True, False]), L.tensor([True, True])),
    "sum to int32": lambda L: L.arange(5).sum(dtype=L.int32),
    "int32 dot": lambda L: L.dot(L.arange(3, dtype=L.int32), L.arange(3, dtype=L.int32)),
    "copysign promotes": lambda L: L.copysign(L.ones(2), L.ones(2, dtype=L.float64)),
    "copysign of ints by float16": lambda L: L.copysign(L.arange(2), L.ones(2, dtype=L.float16)),
    "arange of a float tensor": lambda L: L.arange(L.tensor(3.5)),
    "arange of an int tensor": lambda L: L.arange(L.tensor(3)),
    "index_fill of ints by a float": lambda L: L.arange(3).index_fill(0, L.tensor([1]), 1.5),
    "index_fill_ of ints by a float": lambda L: L.arange(3).index_fill_(0, L.tensor([1]), 1.5),
    "movedim of a scalar": lambda L: L.tensor(2.0).movedim(0, 0),
    "scatter multiply": lambda L: L.ones(3).scatter(0, L.tensor([0, 0]), L.tensor([2.0, 3.0]), reduce="multiply"),
    "scatter multiply by a number": lambda L: L.ones(3).scatter(0, L.tensor([0, 1]), 2.0, reduce="multiply"),
    "dtype=float is float64": lambda L: L.zeros(2, dtype=float),
    "to(float) is float64": lambda L: L.ones(2).to(float),
    "log1p at inf": lambda L: L.tensor([float("inf"), -1.0, 1e-8]).log1p(),
    "expm1 far left": lambda L: L.tensor([-float("inf"), -200.0, 1e-8]).expm1(),
}


@pytest.mark.parametrize("name", SMALL_CASES)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_small_results_match_torch(name):
    got, want = SMALL_CASES[name](gradc), SMALL_CASES[name](torch)
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], name
    assert got.tolist() == want.tolist(), name


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_with_every_target_ignored_has_a_zero_gradient(smoothing):
    # an all-padding batch: the mean is nan in both libraries, the gradient zero (not nan)
    x = gradc.randn(6, 5, requires_grad=True)
    loss = gradc.nn.functional.cross_entropy(x, gradc.full((6,), -100), label_smoothing=smoothing)
    loss.backward()
    assert np.isnan(loss.item()) and (x.grad.numpy() == 0).all()


EMPTY_BATCHES = {
    "batch_norm training": lambda L: L.nn.functional.batch_norm(L.ones(0, 3), L.zeros(3), L.ones(3), training=True),
    "BatchNorm2d": lambda L: L.nn.BatchNorm2d(3)(L.ones(0, 3, 2, 2)),
    "group_norm": lambda L: L.nn.functional.group_norm(L.ones(0, 4, 3), 2, L.ones(4), L.zeros(4)),
    "attention over no keys": lambda L: L.nn.functional.scaled_dot_product_attention(
        L.ones(2, 3, 4), L.ones(2, 0, 4), L.ones(2, 0, 4)),
}


@pytest.mark.parametrize("name", EMPTY_BATCHES)
def test_empty_batches_as_torch(name):
    got, want = EMPTY_BATCHES[name](gradc), EMPTY_BATCHES[name](torch)
    assert tuple(got.shape) == tuple(want.shape) and got.tolist() == want.tolist()


def test_max_unpool_gradient_with_overlapping_windows():
    def run(L):
        x = L.tensor([[[[0.0, 1, 2], [3, 9, 4], [5, 6, 7]]]], requires_grad=True)
        o, i = L.nn.functional.max_pool2d(x, 3, stride=1, padding=1, return_indices=True)
        o.retain_grad()
        u = L.nn.functional.max_unpool2d(o, i, 3, stride=1, padding=1, output_size=(3, 3))
        (u * L.arange(9.0).reshape(1, 1, 3, 3)).sum().backward()
        return u, o.grad, x.grad
    for got, want in zip(run(gradc), run(torch)):
        _close(got, want)


def test_memory_formats_lay_out_as_torch():
    def run(L):
        x = L.arange(120.0).reshape(2, 3, 4, 5)
        y = x.contiguous(memory_format=L.channels_last)
        conv = L.nn.Conv2d(3, 4, 3).to(memory_format=L.channels_last)
        return [y.stride(), y.is_contiguous(), y.is_contiguous(memory_format=L.channels_last),
                x.to(memory_format=L.channels_last).stride(), conv.weight.stride(), conv.bias.stride(),
                L.empty(2, 3, 4, 5, memory_format=L.channels_last).stride(), (y == x).all().item(),
                repr(L.channels_last), repr(x.layout), x.is_cpu, x.is_signed(), tuple(conv(y).shape)]
    assert run(gradc) == run(torch)


def test_keyword_spellings_of_sizes_and_dims():
    for L in (gradc, torch):
        x = L.arange(6.0).reshape(2, 3)
        assert tuple(x.permute(dims=(1, 0)).shape) == (3, 2) and tuple(x.reshape(shape=(3, 2)).shape) == (3, 2)
        assert tuple(x.view(size=(6,)).shape) == (6,) and tuple(x.expand(size=(2, 2, 3)).shape) == (2, 2, 3)
        assert x.flip(dims=(0,))[0].tolist() == [3.0, 4.0, 5.0] and tuple(L.zeros(size=(2, 3)).shape) == (2, 3)
        assert tuple(L.randint(high=10, size=(3,)).shape) == (3,) and L.randperm(4, dtype=L.float32).dtype == L.float32
        assert x.requires_grad_().numpy(force=True).shape == (2, 3)


MODULE_PATHS = ["modules.utils._pair", "modules.utils._single", "modules.utils._triple", "modules.batchnorm._BatchNorm",
                "modules.batchnorm._NormBase", "modules.conv._ConvNd", "modules.loss._Loss", "modules.loss._WeightedLoss",
                "modules.module.Module", "modules.linear.Linear", "modules.activation.ReLU", "modules.container.Sequential",
                "modules.pooling.MaxPool2d", "modules.sparse.Embedding", "modules.rnn.LSTM", "modules.dropout.Dropout",
                "modules.normalization.LayerNorm", "modules.instancenorm._InstanceNorm", "parameter.Parameter",
                "modules.padding.ZeroPad2d", "modules.upsampling.Upsample", "modules.flatten.Flatten",
                "modules.transformer.TransformerEncoderLayer", "modules.pixelshuffle.PixelShuffle", "modules.Conv2d"]


@pytest.mark.parametrize("path", MODULE_PATHS)
def test_torch_module_paths(path):
    import importlib

    def find(root):
        mod, _, name = f"{root}.nn.{path}".rpartition(".")
        return getattr(importlib.import_module(mod), name)
    got, want = find("gradc"), find("torch")
    assert got.__name__ == want.__name__
    if path.startswith("modules.utils"):
        assert got(3) == want(3) and got((1, 2)) == want((1, 2))


NAMES = {
    "conv2d": lambda L: L.conv2d(L.ones(1, 2, 4, 4), L.ones(3, 2, 3, 3)),
    "dropout in eval": lambda L: L.dropout(L.ones(3), 0.5, False),
    "embedding, table first": lambda L: L.embedding(L.arange(8.0).reshape(4, 2), L.tensor([1, 3])),
    "layer_norm": lambda L: L.layer_norm(L.arange(6.0).reshape(2, 3), (3,)),
    "max_pool2d": lambda L: L.max_pool2d(L.arange(16.0).reshape(1, 1, 4, 4), 2),
    "eq_": lambda L: L.tensor([1.0, 2.0, 3.0]).eq_(2.0),
    "cumsum_": lambda L: L.arange(4).cumsum_(0),
    "divide_": lambda L: L.tensor([1.0, 2.0]).divide_(2),
    "remainder_": lambda L: L.arange(5).remainder_(3),
    "rsub": lambda L: L.rsub(L.tensor([1.0, 2.0]), 1),
    "unravel_index": lambda L: L.stack(L.unravel_index(L.tensor([5, 1]), (2, 3))),
    "scalar_tensor": lambda L: L.scalar_tensor(3),
    "asarray": lambda L: L.asarray([1, 2]),
    "sigmoid_": lambda L: L.sigmoid_(L.zeros(2)),
    "clamp_": lambda L: L.clamp_(L.ones(2), 0, 0.5),
    "hann_window": lambda L: L.hann_window(8),
    "hamming_window": lambda L: L.hamming_window(5, periodic=False),
    "blackman_window": lambda L: L.blackman_window(6),
    "bartlett_window": lambda L: L.bartlett_window(7),
    "kaiser_window": lambda L: L.kaiser_window(6),
    "cpu:0": lambda L: L.ones(2).to("cpu:0"),
}


@pytest.mark.parametrize("name", NAMES)
def test_names_match_torch(name):
    got, want = NAMES[name](gradc), NAMES[name](torch)
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-7)


def test_autograd_backward_of_several_outputs():
    for L in (gradc, torch):
        x = L.ones(3, requires_grad=True)
        L.autograd.backward([(x * 2).sum(), x * 3], [None, L.ones(3)])
        assert x.grad.tolist() == [5.0, 5.0, 5.0]


def test_sync_batch_norm_in_one_process_is_batch_norm():
    def run(L):
        L.manual_seed(0)
        model = L.nn.Sequential(L.nn.Conv2d(3, 4, 1), L.nn.BatchNorm2d(4), L.nn.Sequential(L.nn.BatchNorm1d(4)))
        model[1].running_mean.fill_(0.5)
        converted = L.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return converted, converted[1].running_mean
    (g, g_mean), (t, t_mean) = run(gradc), run(torch)
    assert repr(g) == repr(t) and g_mean.tolist() == t_mean.tolist() == [0.5] * 4
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32)
    _close(g[1](gradc.tensor(x)), t[1](torch.tensor(x)))
    _close(g[1].running_mean, t[1].running_mean)
    assert isinstance(g[1], gradc.nn.modules.batchnorm._BatchNorm)


def test_sync_batch_norm_refuses_training_across_ranks(monkeypatch):
    bn = gradc.nn.SyncBatchNorm(4)
    monkeypatch.setattr(gradc.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(gradc.distributed, "get_world_size", lambda: 2)
    with pytest.raises(gradc.GradcError, match="several ranks"):
        bn(gradc.ones(2, 4))
    bn.eval()
    assert bn(gradc.ones(2, 4)).shape == (2, 4)   # running statistics need no other rank


def test_max_unpool_keeps_an_infinite_value():
    def run(L):
        x = L.tensor([[[[0.0, float("inf")], [1.0, 2.0]]]], requires_grad=True)
        o, i = L.nn.functional.max_pool2d(x, 1, return_indices=True)
        u = L.nn.functional.max_unpool2d(o, i, 1)
        u.sum().backward()
        return u, x.grad
    for got, want in zip(run(gradc), run(torch)):
        _close(got, want)
