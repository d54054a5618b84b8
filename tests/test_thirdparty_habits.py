"""Idioms of well-known PyTorch scripts that gradc got wrong or lacked, each checked against
PyTorch: word_language_model's batchify (narrow), its tied decoder weight (state-dict order) and
its hand-written SGD update (p.data.add_(p.grad, alpha=-lr)), compiled as well as eagerly; the
update written as `p -= lr * p.grad` (augmented assignment writes into the tensor); in-place
unary ops (relu_, exp_, lerp_, ...), which must also differentiate like PyTorch's."""
import numpy as np
import pytest

import gradc
from gradc.testing import gradcheck

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))


def _np(t):
    return t.detach().numpy()


@pytest.mark.parametrize("args", [(0, 0, 4), (0, 2, 2), (1, -3, 2), (-1, 1, 0)])
def test_narrow_matches_pytorch(args):
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    np.testing.assert_array_equal(_np(gradc.tensor(a).narrow(*args)), torch.tensor(a).narrow(*args).numpy())
    np.testing.assert_array_equal(_np(gradc.narrow(gradc.tensor(a), *args)), torch.narrow(torch.tensor(a), *args).numpy())


def test_narrow_out_of_range_is_a_named_error():
    with pytest.raises(gradc.ShapeError, match="exceeds dim 1 of size 6"):
        gradc.zeros(4, 6).narrow(1, 4, 3)


def test_narrow_is_differentiable_and_compiles():
    x = gradc.tensor(np.arange(8, dtype=np.float32), requires_grad=True)
    (x.narrow(0, 2, 3) * 2).sum().backward()
    np.testing.assert_array_equal(_np(x.grad), [0, 0, 2, 2, 2, 0, 0, 0])
    f = gradc.compile(lambda t: t.narrow(0, 1, 4) + 1)
    np.testing.assert_array_equal(_np(f(gradc.arange(8.0))), np.arange(1, 5) + 1)


def _tied(lib):
    class Tied(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = lib.nn.Embedding(5, 4)
            self.decoder = lib.nn.Linear(4, 5)
            self.decoder.weight = self.encoder.weight  # word_language_model's --tied

        def forward(self, x):
            return self.decoder(self.encoder(x))
    return Tied()


def test_reassigned_parameter_keeps_its_place_in_the_state_dict():
    assert list(_tied(gradc).state_dict()) == list(_tied(torch).state_dict())
    m = gradc.nn.Linear(2, 3)
    m.bias = gradc.nn.Parameter(gradc.zeros(3))
    m.weight = gradc.nn.Parameter(gradc.zeros(3, 2))
    assert list(m.state_dict()) == ["weight", "bias"]


def _sgd_by_hand(lib, update, compile=False, steps=3):
    lib.manual_seed(0)
    model = _tied(lib)
    torch.manual_seed(0)
    init = _tied(torch).state_dict()
    model.load_state_dict({k: lib.tensor(v.numpy()) for k, v in init.items()})
    x, y = lib.tensor([0, 1, 2, 3]), lib.tensor([1, 2, 3, 4])

    def step(x, y, lr):
        model.zero_grad()
        loss = lib.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        lib.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        for p in model.parameters():
            if update == "data":
                p.data.add_(p.grad, alpha=-lr)
            else:
                with lib.no_grad():
                    p -= lr * p.grad
        return loss

    fn = gradc.compile(step) if compile else step
    losses = [fn(x, y, 0.5).item() for _ in range(steps)]
    return losses, {k: _np(v) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("update", ["data", "isub"])
@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_hand_written_sgd_update_matches_pytorch(update, compile):
    t_losses, t_state = _sgd_by_hand(torch, update)
    g_losses, g_state = _sgd_by_hand(gradc, update, compile)
    assert t_losses[0] != t_losses[-1]  # the update moved the parameters
    np.testing.assert_allclose(g_losses, t_losses, rtol=1e-5, atol=1e-6)
    for k in t_state:
        np.testing.assert_allclose(g_state[k], t_state[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_write_through_detach_is_seen_by_the_source_when_compiled():
    def f(p, x):
        d = p.detach()
        d.mul_(2)            # p shares d's storage: p is doubled too
        return p + x, d.sum()

    tp, gp = torch.ones(3), gradc.ones(3)
    t_out = f(tp, torch.ones(3))
    g_out = gradc.compile(f)(gp, gradc.ones(3))
    np.testing.assert_array_equal(_np(g_out[0]), t_out[0].numpy())
    np.testing.assert_array_equal(_np(g_out[1]), t_out[1].numpy())
    np.testing.assert_array_equal(_np(gp), tp.numpy())


def test_augmented_assignment_writes_into_the_tensor():
    for lib in (gradc, torch):
        a = lib.tensor([0.5, -1.0, 2.0])
        alias = a
        a += 1
        a *= 3
        a -= lib.tensor([1.0, 1.0, 1.0])
        a /= 2
        assert alias is a
    np.testing.assert_allclose(_np(alias), [1.75, -0.5, 4.0])
    i = gradc.tensor([5, 7])
    i //= 2
    np.testing.assert_array_equal(_np(i), [2, 3])
    i %= 2
    np.testing.assert_array_equal(_np(i), [0, 1])
    with pytest.raises(gradc.AutogradError, match="leaf tensor that requires grad"):
        w = gradc.ones(2, requires_grad=True)
        w += 1


INPLACE = [("relu_", ()), ("exp_", ()), ("sigmoid_", ()), ("tanh_", ()), ("pow_", (2,)), ("neg_", ()),
           ("abs_", ()), ("clamp_min_", (0.1,)), ("clamp_max_", (0.2,)), ("reciprocal_", ()),
           ("lerp_", "end"), ("sqrt_", "pos"), ("log_", "pos")]


@pytest.mark.parametrize("name,args", INPLACE, ids=[n for n, _ in INPLACE])
def test_in_place_unary_matches_pytorch_values_and_gradients(name, args):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(6).astype(np.float32)
    if args == "pos":
        a, args = np.abs(a) + 0.5, ()
    end = rng.standard_normal(6).astype(np.float32)
    res = []
    for lib in (gradc, torch):
        x = lib.tensor(a, requires_grad=True)
        y = x * 1.5
        call = (lib.tensor(end), 0.3) if args == "end" else args
        out = getattr(y, name)(*call)
        assert out is y
        (out * lib.tensor(end)).sum().backward()
        res.append((_np(y), _np(x.grad)))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-6, atol=1e-7)


def test_in_place_unary_compiled_equals_eager():
    def f(x):
        y = x * 2
        y.sigmoid_()
        y.lerp_(x, 0.25)
        return y

    x = gradc.tensor(np.linspace(-2, 2, 7, dtype=np.float32))
    np.testing.assert_allclose(_np(gradc.compile(f)(x)), _np(f(x)), rtol=1e-6)


@pytest.mark.parametrize("through_detach", [False, True])
def test_in_place_write_into_a_traced_view_is_a_trace_error(through_detach):
    def f(x):
        v = x[0:2]
        if through_detach:
            v = v.detach()
        v.mul_(2)
        return v

    with pytest.raises(gradc.TraceError, match="in-place change of a view"):
        gradc.compile(f, fullgraph=True)(gradc.ones(3))


def test_relu_and_dropout_take_pytorchs_inplace_flag():
    a = np.array([-1.0, 0.5, 2.0], dtype=np.float32)
    for lib in (gradc, torch):
        x = lib.tensor(a, requires_grad=True)
        y = x * 2
        out = lib.nn.ReLU(True)(y)
        assert out is y
        z = x * 3
        assert lib.nn.functional.relu(z, inplace=True) is z
        w = x * 1
        d = lib.nn.functional.dropout(w, p=1.0, training=True, inplace=True)
        assert d is w
        (y.sum() + z.sum() + (w * 5).sum()).backward()
        if lib is gradc:
            g = (_np(y), _np(z), _np(w), _np(x.grad))
    np.testing.assert_allclose(g[0], y.detach().numpy())
    np.testing.assert_allclose(g[1], z.detach().numpy())
    np.testing.assert_allclose(g[2], w.detach().numpy())
    np.testing.assert_allclose(g[3], x.grad.numpy())
    assert repr(gradc.nn.ReLU(inplace=True)) == repr(torch.nn.ReLU(inplace=True))
    assert repr(gradc.nn.Dropout(0.2)) == repr(torch.nn.Dropout(0.2))
    m = gradc.nn.Dropout(0.5, inplace=True).eval()
    x = gradc.ones(4)
    assert m(x) is x


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_softmax_without_dim_takes_pytorchs_legacy_dim(ndim):
    a = np.random.default_rng(ndim).standard_normal((2, 3, 4, 5)[:ndim]).astype(np.float32)
    for name in ("softmax", "log_softmax", "softmin"):
        with pytest.warns(UserWarning, match="Implicit dimension choice"):
            ours = getattr(gradc.nn.functional, name)(gradc.tensor(a))
        with pytest.warns(UserWarning):
            theirs = getattr(torch.nn.functional, name)(torch.tensor(a))
        np.testing.assert_allclose(_np(ours), theirs.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    for ours, theirs in ((gradc.nn.Softmax(), torch.nn.Softmax()), (gradc.nn.LogSoftmax(), torch.nn.LogSoftmax())):
        with pytest.warns(UserWarning):
            np.testing.assert_allclose(_np(ours(gradc.tensor(a))), theirs(torch.tensor(a)).numpy(), rtol=1e-5, atol=1e-6)


def test_softmax_dtype_casts_first():
    a = np.array([[1.0, 2.0, 3.0]], dtype=np.float16)
    ours = gradc.nn.functional.softmax(gradc.tensor(a), dim=-1, dtype=gradc.float32)
    theirs = torch.nn.functional.softmax(torch.tensor(a), dim=-1, dtype=torch.float32)
    assert ours.dtype is gradc.float32
    np.testing.assert_allclose(_np(ours), theirs.numpy(), rtol=1e-6)
    ours = gradc.nn.functional.log_softmax(gradc.tensor(a), 1, dtype=gradc.float64)
    assert ours.dtype is gradc.float64
    np.testing.assert_allclose(_np(ours), torch.log_softmax(torch.tensor(a).double(), 1).numpy(), rtol=1e-12)


def test_multinomial_after_top_k_masking_never_draws_a_zero_probability_and_does_not_warn(recwarn):
    gradc.manual_seed(0)
    logits = gradc.tensor([[1.0, 3.0, 2.0, 0.5, 2.5]])
    v, _ = gradc.topk(logits, 2)
    logits[logits < v[:, [-1]]] = -float("Inf")  # nanoGPT's generate
    probs = gradc.nn.functional.softmax(logits, dim=-1)
    draws = gradc.multinomial(probs.expand(200, 5), num_samples=2).numpy()
    assert set(np.unique(draws)) == {1, 4}
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_backends_switches_as_scripts_set_them():
    gradc.backends.cuda.matmul.allow_tf32 = True   # nanoGPT's start-up lines
    gradc.backends.cudnn.allow_tf32 = True
    gradc.backends.cudnn.benchmark = True
    assert gradc.backends.cuda.matmul.allow_tf32 is True and gradc.backends.cudnn.benchmark is True
    assert gradc.backends.cudnn.is_available() is False and gradc.backends.mps.is_available() is False
    gradc.backends.cuda.matmul.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    with pytest.raises(gradc.GradcError, match="benchmarks is not a switch gradc has"):
        gradc.backends.cudnn.benchmarks = True
    assert gradc.get_float32_matmul_precision() == torch.get_float32_matmul_precision() == "highest"
    gradc.set_float32_matmul_precision("high")
    assert gradc.get_float32_matmul_precision() == "high"
    gradc.set_float32_matmul_precision("highest")
    with pytest.raises(ValueError, match="must be 'highest', 'high' or 'medium'"):
        gradc.set_float32_matmul_precision("low")


def test_legacy_typed_constructors_match_pytorch():
    ints = np.arange(4, dtype=np.int32).reshape(2, 2)
    for name in ("FloatTensor", "DoubleTensor", "LongTensor", "IntTensor", "BoolTensor", "HalfTensor"):
        ours, theirs = getattr(gradc, name), getattr(torch, name)
        for args in ((ints,), ([1.0, 0.0, 2.5],), ((2.0, 3.0),)):
            a, b = ours(*args), theirs(*args)
            assert a.dtype.name == str(b.dtype).replace("torch.", ""), (name, args)
            np.testing.assert_array_equal(_np(a), b.numpy())
        assert ours(2, 3).shape == tuple(theirs(2, 3).shape) and ours().shape == (0,)
        assert isinstance(ours([1]), ours) and not isinstance(gradc.zeros(1, dtype=gradc.float64 if name != "DoubleTensor" else gradc.float32), ours)
    t = gradc.ones(2)
    assert gradc.FloatTensor(t) is t
    with pytest.raises(gradc.DTypeError, match="tensor.to"):
        gradc.LongTensor(t)


def test_finfo_and_iinfo_match_pytorch():
    for name in ("float16", "float32", "float64"):
        ours, theirs = gradc.finfo(getattr(gradc, name)), torch.finfo(getattr(torch, name))
        for field in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution"):
            assert getattr(ours, field) == getattr(theirs, field), (name, field)
    for name in ("int32", "int64"):
        ours, theirs = gradc.iinfo(getattr(gradc, name)), torch.iinfo(getattr(torch, name))
        assert (ours.bits, ours.min, ours.max) == (theirs.bits, theirs.min, theirs.max)
    assert gradc.finfo().eps == torch.finfo().eps
    assert gradc.get_default_dtype() is gradc.float32
    with pytest.raises(gradc.DTypeError, match="iinfo"):
        gradc.finfo(gradc.int64)


_R = np.random.default_rng(7)
_X = _R.standard_normal((4, 6)).astype(np.float32)
_Y = _R.standard_normal((6, 5)).astype(np.float32)
_V = _R.standard_normal(5).astype(np.float32)

# (name, function of (lib, x) where x is a (4, 6) float tensor); differentiable ones also compare gradients
SURFACE = [
    ("select", lambda t, x: x.select(1, -2), True),
    ("unbind", lambda t, x: t.stack([r * (i + 1) for i, r in enumerate(x.unbind(1))]), True),
    ("addmm", lambda t, x: t.addmm(t.tensor(_V), x, t.tensor(_Y), beta=0.5, alpha=2.0), True),
    ("addmm_beta0", lambda t, x: t.addmm(t.full((5,), float("nan")), x, t.tensor(_Y), beta=0), True),
    ("baddbmm", lambda t, x: t.baddbmm(t.ones(2, 2, 2), x.view(2, 2, 6), x.view(2, 6, 2), alpha=0.5), True),
    ("addmv", lambda t, x: t.addmv(t.ones(4), x[:, :5], t.tensor(_V)), True),
    ("repeat_interleave", lambda t, x: t.repeat_interleave(x[:2], 3, dim=1), True),
    ("repeat_interleave_flat", lambda t, x: x[:2, :2].repeat_interleave(2), True),
    ("tile", lambda t, x: x[:2, :3].tile(2, 1, 2), True),
    ("tile_tuple", lambda t, x: t.tile(x[0], (2,)), True),
    ("diag_2d", lambda t, x: t.diag(x), True),
    ("diag_2d_k", lambda t, x: t.diag(x, 2), True),
    ("diag_2d_negk", lambda t, x: x.diag(-1), True),
    ("diag_1d", lambda t, x: t.diag(x[0, :3]), True),
    ("diag_1d_k", lambda t, x: t.diag(x[0, :3], 1), True),
    ("diag_1d_negk", lambda t, x: t.diag(x[0, :3], -2), True),
    ("fmod", lambda t, x: t.fmod(x * 3, 0.7), True),
    ("fmod_int", lambda t, x: t.fmod(t.tensor([-7, 7, -6, 5]), 3), False),
    ("fmod_negdiv", lambda t, x: (x * 3).fmod(-0.7), True),
    ("log2", lambda t, x: x.abs().log2(), True),
    ("log10", lambda t, x: t.log10(x.abs() + 1), True),
    ("count_nonzero", lambda t, x: t.count_nonzero(x > 0.3), False),
    ("count_nonzero_dim", lambda t, x: (x > 0).count_nonzero(dim=1), False),
    ("meshgrid_ij", lambda t, x: t.stack(t.meshgrid(x[0, :3], x[1, :2], indexing="ij")), True),
    ("meshgrid_xy", lambda t, x: t.stack(t.meshgrid(x[0, :3], x[1, :2], x[2, :4], indexing="xy")), True),
    ("cumprod", lambda t, x: t.cumprod(x, dim=1), True),
    ("cumprod_zero", lambda t, x: (x * (x > -0.5)).cumprod(0), True),
    ("cumprod_schedule", lambda t, x: t.cumprod(1 - t.linspace(1e-4, 0.02, 300), dim=0), False),
    ("int", lambda t, x: (x * 10).int(), False),
    ("nonzero", lambda t, x: (x > 0.5).nonzero(), False),
    ("nonzero_tuple", lambda t, x: t.stack(t.nonzero(x > 0.5, as_tuple=True)), False),
    ("argwhere", lambda t, x: t.argwhere(x > 0.5), False),
    ("bincount", lambda t, x: t.bincount(t.tensor([0, 3, 3, 1]), minlength=6), False),
    ("bincount_w", lambda t, x: t.bincount(t.tensor([0, 3, 3, 1]), weights=x[0, :4]), False),
    ("unique", lambda t, x: t.unique(t.tensor([3, 1, 3, 2, 1]), return_inverse=True, return_counts=True), False),
]


@pytest.mark.parametrize("name,fn,diff", SURFACE, ids=[s[0] for s in SURFACE])
def test_everyday_surface_matches_pytorch(name, fn, diff):
    res = []
    for lib in (gradc, torch):
        x = lib.tensor(_X, requires_grad=diff)
        out = fn(lib, x)
        outs = out if isinstance(out, tuple) else (out,)
        if diff:
            sum(((o * (i + 1)).sum() for i, o in enumerate(outs)), lib.zeros(())).backward()
        res.append(([(_np(o), o.dtype) for o in outs], _np(x.grad) if diff else None))
    (ours, g_ours), (theirs, g_theirs) = res
    assert len(ours) == len(theirs)
    for (a, da), (b, db) in zip(ours, theirs):
        assert str(da).split(".")[-1] == str(db).split(".")[-1], (da, db)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    if diff:
        np.testing.assert_allclose(g_ours, g_theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["select", "addmm", "baddbmm", "repeat_interleave", "tile", "diag_2d_k", "cumprod",
                                  "diag_1d_negk", "fmod", "meshgrid_xy", "unbind"])
def test_everyday_surface_compiled_equals_eager(name):
    fn = next(s[1] for s in SURFACE if s[0] == name)
    x = gradc.tensor(_X)
    np.testing.assert_allclose(_np(gradc.compile(lambda x: fn(gradc, x))(x)), _np(fn(gradc, x)), rtol=1e-6, atol=1e-7)


def test_data_dependent_shapes_are_eager_only_with_a_trace_error():
    for fn in (lambda x: (x > 0).nonzero(), lambda x: gradc.unique(x), lambda x: gradc.bincount(x.long())):
        with pytest.raises(gradc.TraceError, match="depends on the tensor's values"):
            gradc.compile(fn, fullgraph=True)(gradc.tensor([1.0, 0.0, 2.0]))


def test_named_errors_for_what_is_not_supported():
    with pytest.raises(gradc.TraceError, match="output_size="):
        gradc.compile(lambda x, r: gradc.repeat_interleave(x, r), fullgraph=True)(gradc.ones(3), gradc.tensor([1, 2, 3]))
    with pytest.raises(gradc.ShapeError, match="out of range for dim 1 of size 6"):
        gradc.zeros(4, 6).select(1, 6)
    with pytest.raises(gradc.DTypeError, match="1-D integer tensor"):
        gradc.bincount(gradc.ones(3))
    with pytest.warns(UserWarning, match="indexing argument"):
        gradc.meshgrid(gradc.arange(2), gradc.arange(3))


def test_tensor_compares_unequal_to_none_and_strings_as_in_pytorch():
    for lib in (gradc, torch):
        x = lib.tensor([1, 2])
        assert (x != None) is True and (x == None) is False and (x == "a") is False  # noqa: E711
    np.testing.assert_array_equal(_np(gradc.tensor([1, 2]) == 1), [True, False])


def _conv_relu(lib):
    lib.manual_seed(0)
    return lib.nn.Sequential(lib.nn.Conv2d(3, 4, 3), lib.nn.LeakyReLU(0.2, inplace=True),
                             lib.nn.Conv2d(4, 2, 3, bias=False), lib.nn.ReLU(inplace=True))


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_in_place_activation_right_after_a_conv_matches_pytorch(compile):
    """VGG / DCGAN discriminator style: Conv2d then ReLU(inplace=True) or LeakyReLU(0.2, inplace=True).
    The conv's result is a channels-last view nothing else holds, so the write is the view's own."""
    t_model, g_model = _conv_relu(torch), _conv_relu(gradc)
    g_model.load_state_dict({k: gradc.tensor(v.numpy()) for k, v in t_model.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    t_out = t_model(torch.tensor(x))
    t_out.square().sum().backward()

    def step(x):
        out = g_model(x)
        out.square().sum().backward()
        return out

    g_out = (gradc.compile(step, fullgraph=True) if compile else step)(gradc.tensor(x))
    np.testing.assert_allclose(_np(g_out), t_out.detach().numpy(), rtol=1e-5, atol=1e-6)
    for (name, gp), tp in zip(g_model.named_parameters(), t_model.parameters()):
        np.testing.assert_allclose(_np(gp.grad), tp.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_clone_then_in_place_compiles():
    def f(x):
        y = x.clone()
        y.add_(1)
        return y, x

    y, x = gradc.compile(f, fullgraph=True)(gradc.ones(3))
    np.testing.assert_array_equal(_np(y), [2, 2, 2])
    np.testing.assert_array_equal(_np(x), [1, 1, 1])


def test_in_place_write_into_a_view_of_a_live_tensor_writes_through_eagerly_and_is_refused_traced():
    def f(x):
        z = x * 2
        v = z.t()
        v.mul_(2)   # z changes too
        return z

    with pytest.raises(gradc.TraceError, match="base tensor is still in use"):
        gradc.compile(f, fullgraph=True)(gradc.ones(2, 3))
    x, t = gradc.ones(2, 3, requires_grad=True), torch.ones(2, 3, requires_grad=True)
    f(x).sum().backward()
    f(t).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())   # 4 everywhere


def test_traced_writes_that_a_live_view_would_see_are_trace_errors():
    def sibling(x):
        z = x * 2
        a, b = z.t(), z.reshape(6)
        del z
        a.mul_(2)   # eagerly b changes too
        return b

    def base(x):
        z = x * 2
        a = z.t()
        z.add_(1)   # eagerly a changes too
        return a

    for fn in (sibling, base):
        assert fn(gradc.ones(2, 3)).sum().item() in (24.0, 18.0)  # eagerly the view sees the write
        with pytest.raises(gradc.TraceError, match="in-place change"):
            gradc.compile(fn, fullgraph=True)(gradc.ones(2, 3))

    def dead_view(x):
        z = x * 2
        z.t().sum()
        z.add_(1)
        return z

    np.testing.assert_array_equal(_np(gradc.compile(dead_view, fullgraph=True)(gradc.ones(2, 3))), np.full((2, 3), 3.0))


@pytest.mark.parametrize("make", [lambda nn: nn.BatchNorm2d(4, bias=False), lambda nn: nn.GroupNorm(2, 4, bias=False),
                                  lambda nn: nn.InstanceNorm2d(4, affine=True, bias=False),
                                  lambda nn: nn.BatchNorm1d(4, affine=False, bias=False)],
                         ids=["batchnorm", "groupnorm", "instancenorm", "batchnorm_no_affine"])
def test_norm_layers_take_pytorchs_bias_flag(make):
    x = np.random.default_rng(2).standard_normal((3, 4, 5, 5)).astype(np.float32)
    res = []
    for lib in (gradc, torch):
        m = make(lib.nn)
        assert m.bias is None
        inp = lib.tensor(x if not isinstance(m, lib.nn.BatchNorm1d) else x[:, :, 0, 0], requires_grad=True)
        out = m(inp)
        (out * lib.tensor(np.arange(out.numel(), dtype=np.float32).reshape(out.shape))).sum().backward()
        res.append((list(m.state_dict()), _np(out), _np(inp.grad)))
    assert res[0][0] == res[1][0]
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res[0][2], res[1][2], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (10, 3, True), (2, 4, False), (12, 4, False),
                                                  (7, 2, True)])
def test_distributed_sampler_splits_like_pytorch(n, replicas, drop_last):
    from torch.utils.data import DistributedSampler as TorchSampler
    for rank in range(replicas):
        ours = gradc.utils.data.DistributedSampler(list(range(n)), replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = TorchSampler(list(range(n)), replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_distributed_sampler_shuffles_one_order_for_all_ranks_per_epoch():
    from gradc.utils.data import DataLoader, DistributedSampler, TensorDataset
    samplers = [DistributedSampler(list(range(12)), 3, r, seed=5) for r in range(3)]
    first = [list(s) for s in samplers]
    assert sorted(sum(first, [])) == list(range(12))        # the ranks' shares partition the dataset
    assert first != [list(range(12))[r::3] for r in range(3)]
    for s in samplers:
        s.set_epoch(1)
    second = [list(s) for s in samplers]
    assert sorted(sum(second, [])) == list(range(12)) and second != first
    samplers[0].set_epoch(0)
    assert list(samplers[0]) == first[0]                     # an epoch's order is reproducible
    loader = DataLoader(TensorDataset(gradc.arange(12.0)), batch_size=2, sampler=samplers[1])
    assert [b[0].tolist() for b in loader] == [[float(i) for i in second[1][j:j + 2]] for j in (0, 2)]
    with pytest.raises(ValueError, match="Invalid rank 3"):
        DistributedSampler(list(range(4)), num_replicas=3, rank=3)
    with pytest.raises(ValueError, match="init_process_group"):
        DistributedSampler(list(range(4)))


def _hooked(lib):
    lib.manual_seed(0)
    m = lib.nn.Sequential(lib.nn.Linear(4, 3), lib.nn.ReLU(), lib.nn.Linear(3, 2))
    feats, order = {}, []

    def save(name):
        def hook(module, args, output):
            feats[name] = output.detach()
        return hook

    handles = [m[0].register_forward_hook(save("fc1")), m[1].register_forward_hook(save("relu"))]
    m[2].register_forward_pre_hook(lambda mod, args: (args[0] * 2,))           # replaces the input
    m[2].register_forward_hook(lambda mod, args, out: out + 1)                  # replaces the output
    m[2].register_forward_hook(lambda mod, args, out: order.append("second"))
    m[2].register_forward_hook(lambda mod, args, out: order.append("first"), prepend=True)
    m.register_forward_pre_hook(lambda mod, args, kwargs: ((args[0] - 1,), kwargs), with_kwargs=True)
    return m, feats, order, handles


def test_forward_hooks_match_pytorch():
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    res = []
    for lib in (gradc, torch):
        m, feats, order, handles = _hooked(lib)
        if lib is gradc:
            m.load_state_dict({k: gradc.tensor(v.numpy()) for k, v in _hooked(torch)[0].state_dict().items()})
        out = m(lib.tensor(x))
        handles[0].remove()
        feats.clear()
        m(lib.tensor(x))
        res.append((_np(out), sorted(feats), order))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-6)
    assert res[0][1] == res[1][1] == ["relu"]
    assert res[0][2] == res[1][2] == ["first", "second"] * 2


def test_a_hook_registered_after_compiling_is_traced():
    m = gradc.nn.Linear(3, 2)
    f = gradc.compile(m)
    x = gradc.ones(1, 3)
    before = _np(f(x))
    with m.register_forward_hook(lambda mod, args, out: out * 10):
        np.testing.assert_allclose(_np(f(x)), before * 10, rtol=1e-6)
    np.testing.assert_allclose(_np(f(x)), before, rtol=1e-6)


def _critic(lib):
    lib.manual_seed(0)
    return lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.LeakyReLU(0.2), lib.nn.Linear(8, 1))


def test_wgan_gp_gradient_penalty_matches_pytorch():
    """WGAN-GP: the critic's gradient at interpolated samples, by autograd.grad(create_graph=True),
    is penalised and differentiated again."""
    rng = np.random.default_rng(4)
    real, fake, alpha = (rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal((6, 4)).astype(np.float32),
                         rng.uniform(size=(6, 1)).astype(np.float32))
    t_critic = _critic(torch)
    res = []
    for lib in (gradc, torch):
        D = _critic(lib) if lib is gradc else t_critic
        if lib is gradc:
            D.load_state_dict({k: gradc.tensor(v.detach().numpy()) for k, v in t_critic.state_dict().items()})
        a = lib.tensor(alpha)
        interpolates = (a * lib.tensor(real) + (1 - a) * lib.tensor(fake)).requires_grad_(True)
        d_interpolates = D(interpolates)
        gradients = lib.autograd.grad(outputs=d_interpolates, inputs=interpolates,
                                      grad_outputs=lib.ones_like(d_interpolates), create_graph=True,
                                      retain_graph=True, only_inputs=True)[0]
        gradient_penalty = ((gradients.norm(2, dim=1) - 1) ** 2).mean() * 10
        loss = D(lib.tensor(fake)).mean() - D(lib.tensor(real)).mean() + gradient_penalty
        loss.backward()
        res.append([_np(gradients), gradient_penalty.item()] + [_np(p.grad) for p in D.parameters()])
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_autograd_grad_options_match_pytorch():
    for lib in (gradc, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = lib.tensor([3.0], requires_grad=True)
        h = x * 3
        out = (h * h).sum()
        gx, gh = lib.autograd.grad(out, [x, h], retain_graph=True)
        np.testing.assert_allclose(_np(gx), [18.0, 36.0])
        np.testing.assert_allclose(_np(gh), [6.0, 12.0])
        assert x.grad is None                                        # nothing accumulates into .grad
        assert lib.autograd.grad(out, [x, y], allow_unused=True, retain_graph=True)[1] is None
        np.testing.assert_array_equal(_np(lib.autograd.grad(out, [y], allow_unused=True, materialize_grads=True)[0]), [0.0])
        v = lib.autograd.Variable(lib.ones(2), requires_grad=True)
        assert v.requires_grad
    with pytest.raises(gradc.AutogradError, match="does not appear in the graph"):
        x = gradc.ones(2, requires_grad=True)
        gradc.autograd.grad((x * 2).sum(), [x, gradc.ones(1, requires_grad=True)])
    x = gradc.tensor([0.5, -1.0], dtype=gradc.float64, requires_grad=True)   # through a saved output
    g, = gradc.autograd.grad(x.tanh().sum(), x, create_graph=True)
    t = np.tanh([0.5, -1.0])
    np.testing.assert_allclose(gradc.autograd.grad(g.sum(), x)[0].numpy(), -2 * t * (1 - t * t))
    with pytest.raises(gradc.TraceError, match="inside gradc.compile"):
        gradc.compile(lambda x: gradc.autograd.grad((x * x).sum(), x)[0], fullgraph=True)(gradc.ones(2, requires_grad=True))
    with pytest.warns(UserWarning, match="running it eagerly"):   # without fullgraph: the call runs eagerly
        g = gradc.compile(lambda x: gradc.autograd.grad((x * x).sum(), x)[0])(gradc.ones(2, requires_grad=True))
    np.testing.assert_array_equal(_np(g), [2.0, 2.0])



def test_autograd_grad_of_several_outputs_sharing_a_subgraph_matches_pytorch():
    # p feeds y1 directly and y2 through a long chain: every node must wait for all its consumers,
    # whichever output reaches it first (ordering by distance from the first output dropped y2's part)
    def grads(lib):
        a = lib.tensor(np.linspace(-1, 1, 5), requires_grad=True)
        p = (a * 3.0).tanh() * 2.0
        n = p
        for _ in range(5):
            n = n * 1.5 + 0.1
        return _np(lib.autograd.grad([(p * p).sum(), (n * p).sum()], [a])[0])
    np.testing.assert_allclose(grads(gradc), grads(torch), rtol=1e-12)

@pytest.mark.parametrize("shape,r", [((2, 8, 3, 5), 2), ((9, 2, 2), 3), ((1, 2, 4, 2, 3), 2)])
def test_pixel_shuffle_and_unshuffle_match_pytorch(shape, r):
    a = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    w = np.random.default_rng(6).standard_normal(shape[:-3] + (shape[-3] // (r * r), shape[-2] * r,
                                                                shape[-1] * r)).astype(np.float32)
    res = []
    for lib in (gradc, torch):
        x = lib.tensor(a, requires_grad=True)
        up = lib.nn.PixelShuffle(r)(x)
        back = lib.nn.functional.pixel_unshuffle(up, r)
        ((up * lib.tensor(w)).sum() + (back * back).sum()).backward()
        res.append((_np(up), _np(back), _np(x.grad)))
    for a_, b_ in zip(*res):
        np.testing.assert_allclose(a_, b_, rtol=1e-6, atol=1e-6)
    f = gradc.compile(lambda x: gradc.nn.functional.pixel_shuffle(x, r) * 2)
    np.testing.assert_allclose(_np(f(gradc.tensor(a))), res[1][0] * 2, rtol=1e-6)
    with pytest.raises(gradc.ShapeError, match="upscale_factor"):
        gradc.nn.functional.pixel_shuffle(gradc.ones(1, 3, 2, 2), 2)


def test_sigmoid_keeps_its_precision_in_the_tails_eager_and_compiled():
    xs = [-100.0, -40.0, -20.0, -17.0, -10.0, -1.0, 0.0, 3.0, 20.0]
    for dt in ("float32", "float64", "float16"):
        want = torch.tensor(xs, dtype=getattr(torch, dt)).sigmoid().double().numpy()
        x = gradc.tensor(xs, dtype=getattr(gradc, dt))
        for got in (x.sigmoid(), gradc.compile(lambda x: x.sigmoid() * 1)(x),
                    gradc.compile(lambda x: x.sigmoid() * 1, backend="c")(x)):
            np.testing.assert_allclose(got.numpy().astype(np.float64), want, rtol=2e-3 if dt == "float16" else 1e-6)
    # log(sigmoid(-20)) is -20, and BCE on a confident wrong sigmoid has a finite gradient
    z = gradc.tensor([-20.0], requires_grad=True)
    loss = gradc.nn.functional.binary_cross_entropy(z.sigmoid(), gradc.ones(1))
    loss.backward()
    assert loss.item() == pytest.approx(20.0, rel=1e-5) and z.grad.item() == pytest.approx(-1.0, rel=1e-5)


@pytest.mark.parametrize("expr", ["x.var(0, False)", "x.var(0, True, True)", "x.std(False)", "x.std(1, False, True)",
                                  "T.std(x, 0, False)", "T.var_mean(x, 1, False)[0]", "T.std_mean(x, False)[0]",
                                  "x.std(dim=0, keepdim=True)", "x.var(correction=0)"])
def test_std_and_var_take_pytorchs_positional_order(expr):
    x = [[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]]
    got = eval(expr, {"x": gradc.tensor(x), "T": gradc})
    want = eval(expr, {"x": torch.tensor(x), "T": torch})
    assert got.shape == tuple(want.shape)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_std_of_a_constant_has_a_zero_gradient_as_in_pytorch():
    for lib in (gradc, torch):
        x = lib.tensor([[3.0, 1.0], [3.0, 2.0]], requires_grad=True)
        x.std(0).sum().backward()
        assert x.grad.tolist()[0][0] == 0.0 and np.isfinite(np.asarray(x.grad.tolist())).all()


def test_cumsum_is_a_scan_an_inf_reaches_only_later_places():
    for v in ([1.0, float("inf"), 2.0], [1.0, 2.0, float("nan"), 3.0], [1.0, -float("inf"), float("inf")]):
        np.testing.assert_array_equal(gradc.tensor(v).cumsum(0).numpy(), torch.tensor(v).cumsum(0).numpy())
    a = np.random.default_rng(0).random((3, 37, 5))
    for d in (0, 1, -1):
        np.testing.assert_allclose(gradc.tensor(a).cumsum(d).numpy(), torch.tensor(a).cumsum(d).numpy(), rtol=1e-12)
    x = gradc.rand(100_000)   # no n x n matrix: as the matmul form it was, this would need 40 GB
    np.testing.assert_allclose(x.cumsum(0).numpy(), np.cumsum(x.numpy(), dtype=np.float64), rtol=1e-4)
    assert gradcheck(lambda t: t.cumsum(1), (gradc.tensor(a[0, :9], dtype=gradc.float64,
                                                            requires_grad=True),))


def test_masked_fill_and_prod_keep_pytorchs_dtypes():
    for lib in (gradc, torch):
        m = lib.tensor([True, False])
        assert lib.tensor([1, 2]).masked_fill(m, 2.5).tolist() == [2, 2]
        assert lib.tensor([1, 2]).masked_fill(m, 2.5).dtype == lib.int64
        assert lib.tensor([False, False]).masked_fill(m, 2).tolist() == [True, False]
        with pytest.raises(Exception):
            lib.tensor([1, 2]).masked_fill(m, float("-inf"))
        big = lib.tensor([2 ** 16, 2 ** 16], dtype=lib.int32).prod()
        assert big.item() == 2 ** 32 and big.dtype == lib.int64


@pytest.mark.parametrize("expr", ["T.cat([T.tensor([]), T.ones(2, 2)])", "T.cat([T.ones(2, 2), T.tensor([])], 1)",
                                  "T.ones(2, 3, 4).flip(0, 2)", "T.ones(2, 3, 4).flip([1])", "T.arange(0).chunk(2)",
                                  "T.arange(5, 0, -1)", "T.tensor(3)", "T.tensor(True)", "T.zeros(2, 0)",
                                  "T.zeros(0, dtype=T.int32)", "T.tensor(2, dtype=T.int32)"])
def test_shapes_and_reprs_as_pytorch_gives_them(expr):
    got, want = eval(expr, {"T": gradc}), eval(expr, {"T": torch})
    assert repr(got).replace("gradc.", "torch.") == repr(want)


@pytest.mark.parametrize("expr", ["T.arange(5, 0)", "T.arange(0, 5, -1)", "T.ones(3).clamp()"])
def test_what_pytorch_refuses_is_a_named_error(expr):
    with pytest.raises(RuntimeError):
        eval(expr, {"T": torch})
    with pytest.raises(gradc.GradcError):
        eval(expr, {"T": gradc})


def test_a_grad_of_another_shape_is_refused():
    x = gradc.ones(2, requires_grad=True)
    with pytest.raises(gradc.ShapeError, match=r"shape \(3,\) to a tensor of shape \(2,\)"):
        x.grad = gradc.ones(3)
    x.grad = gradc.zeros(2)
    assert x.grad.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("expr", ["x.sum(axis=1)", "x.mean(axis=0)", "T.amax(x, axis=1)", "x.softmax(axis=1)",
                                  "x.cumsum(axis=1)", "x.std(axis=0)", "T.mean(x, axis=1, keepdim=True)"])
def test_numpys_axis_is_taken_for_dim_as_pytorch_does(expr):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = eval(expr, {"x": gradc.tensor(a), "T": gradc})
    want = eval(expr, {"x": torch.tensor(a), "T": torch})
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


@pytest.mark.parametrize("expr", ["h.norm()", "T.linalg.vector_norm(h)", "F.normalize(h, dim=0)", "F.rms_norm(h, (4,))",
                                  "h.std()", "F.layer_norm(h, (4,))"])
def test_float16_norms_accumulate_in_float32_as_pytorch_does(expr):
    import torch.nn.functional as TF
    values = [300.0, 300.0, 300.0, 310.0]   # squares overflow float16
    got = eval(expr, {"h": gradc.tensor(values, dtype=gradc.float16), "T": gradc, "F": gradc.nn.functional})
    want = eval(expr, {"h": torch.tensor(values, dtype=torch.float16), "T": torch, "F": TF})
    assert got.dtype is gradc.float16
    np.testing.assert_allclose(got.numpy().astype(np.float32), want.float().numpy(), rtol=2e-3)


@pytest.mark.parametrize("kind", ["slice-mul", "transpose-add", "diagonal-fill", "strided-sigmoid", "two-writes",
                                  "zero-row", "view-of-view", "buffer-copy", "buffer-rows"])
def test_in_place_ops_on_views_write_through_to_the_base_as_in_pytorch(kind):
    def run(T):
        x = T.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
        w = T.tensor(np.arange(12.0).reshape(4, 3) / 7, requires_grad=True)
        y = x * 2
        if kind == "slice-mul":
            y[:2].mul_(3)
        elif kind == "transpose-add":
            y.t().add_(w)
        elif kind == "diagonal-fill":
            y.diagonal().fill_(5)
        elif kind == "strided-sigmoid":
            y[1:, ::2].sigmoid_()
        elif kind == "two-writes":
            v = y[:, 1:]
            v.mul_(w[:3, :3])
            v.add_(1)
        elif kind == "zero-row":
            y[0].zero_()
        elif kind == "view-of-view":
            y.view(12)[3:7].mul_(2)
        elif kind == "buffer-copy":   # a zeros buffer filled with values that have history
            y = T.zeros(3, 4)
            y[:, 1].copy_(x[:, 0] * 3)
            y[2].add_(x[1])
        else:
            y = T.zeros(2, 3, 4)
            for t in range(2):
                y[t].copy_(x.sigmoid() * (t + 1))
        (y * y).sum().backward()
        return [y.detach().numpy(), x.grad.numpy(), np.zeros(1) if w.grad is None else w.grad.numpy()]

    for got, want in zip(run(gradc), run(torch)):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_bce_of_a_saturated_sigmoid_has_pytorchs_finite_gradient():
    def run(T):
        x = T.tensor([30.0, 5.0, -120.0, 0.3], requires_grad=True)   # sigmoid(30) == 1, sigmoid(-120) == 0
        t = T.tensor([1.0, 1.0, 1.0, 0.2], requires_grad=True)
        loss = T.nn.BCELoss()(T.sigmoid(x), t)
        loss.backward()
        return [loss.item()] + x.grad.tolist() + t.grad.tolist()[1::2]   # (PyTorch's is inf at 0 and 1)
    np.testing.assert_allclose(run(gradc), run(torch), rtol=1e-5)
    step = gradc.compile(lambda x: gradc.nn.functional.binary_cross_entropy(x.sigmoid(), gradc.ones(3)))
    x = gradc.tensor([30.0, 5.0, -120.0], requires_grad=True)
    step(x).backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_script_idioms_of_tutorials_and_examples(tmp_path):
    # the Quickstart's device line, DDP's device(type, index), torch.trace
    device = gradc.accelerator.current_accelerator().type if gradc.accelerator.is_available() else "cpu"
    assert device == "cpu" and str(gradc.device("cuda", 1)) == "cuda:1"
    a = [[1.0, 2.0], [3.0, 4.0]]
    assert gradc.trace(gradc.tensor(a)).item() == torch.trace(torch.tensor(a)).item() == 5.0
    # init_hidden's weight.new(...).zero_(), and loading pretrained vectors through .data
    for lib in (gradc, torch):
        emb = lib.nn.Embedding(4, 3)
        weight = next(emb.parameters()).data
        assert tuple(weight.new(2, 5).zero_().shape) == (2, 5) and weight.new([1.0, 2.0]).dtype == lib.float32
        emb.weight.data = lib.from_numpy(np.ones((5, 3), dtype=np.float32))
        assert tuple(emb.weight.shape) == (5, 3) and emb.weight.requires_grad
        assert emb(lib.tensor([4])).sum().item() == 3.0
    # NumPy scalars keep their dtype, as returns built by numpy in REINFORCE
    for src in ["T.tensor(np.float64(2.5))", "T.tensor([np.float64(1.0), 2.0])", "T.tensor([2.0, np.float32(1.0)])",
                "T.tensor(np.int32(2))", "T.tensor([1.5, 2.0])"]:
        assert str(eval(src, {"T": gradc, "np": np}).dtype)[6:] == str(eval(src, {"T": torch, "np": np}).dtype)[6:]
    # an old checkpoint's map_location=lambda storage, loc: storage; autocast(bfloat16) when disabled
    gradc.save({"w": gradc.ones(2)}, tmp_path / "ck.pt")
    assert gradc.load(tmp_path / "ck.pt", map_location=lambda storage, loc: storage)["w"].tolist() == [1.0, 1.0]
    with gradc.autocast(device_type="cpu", dtype=gradc.bfloat16, enabled=False):
        assert (gradc.ones(2, 2) @ gradc.ones(2, 2)).dtype is gradc.float32


def test_formatting_a_traced_loss_runs_the_call_eagerly_and_a_kept_traced_tensor_is_named():
    printed = []

    @gradc.compile
    def step(x):
        loss = (x * 2).sum()
        printed.append(f"loss {loss:.4f}")
        return loss

    with pytest.warns(UserWarning, match="running it eagerly"):
        assert step(gradc.ones(3)).item() == 6.0
    assert printed == ["loss 6.0000"]
    seen = []

    @gradc.compile
    def keep(x):   # the value it returns is a new tensor on every call, not the traced one kept here
        y = (x * 2).sum()
        seen.append(y)
        return y

    keep(gradc.ones(2))
    with pytest.raises(gradc.TraceError, match="kept in Python state"):
        seen[0].item()


def test_regression_losses_warn_and_broadcast_a_target_of_another_shape_as_pytorch():
    out, target = np.linspace(-1, 1, 5, dtype=np.float32).reshape(5, 1), np.linspace(0, 2, 5, dtype=np.float32)
    for name in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"):
        ours_in, theirs_in = gradc.tensor(out, requires_grad=True), torch.tensor(out, requires_grad=True)
        with pytest.warns(UserWarning, match="different to the input size"):
            ours = getattr(gradc.nn.functional, name)(ours_in, gradc.tensor(target))
        with pytest.warns(UserWarning):
            theirs = getattr(torch.nn.functional, name)(theirs_in, torch.tensor(target))
        ours.backward()
        theirs.backward()
        np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-6)
        np.testing.assert_allclose(_np(ours_in.grad), theirs_in.grad.numpy(), rtol=1e-6, atol=1e-8)
    with pytest.raises(gradc.ShapeError, match="cannot be broadcast"), pytest.warns(UserWarning):
        gradc.nn.functional.mse_loss(gradc.ones(2), gradc.ones(3))


def _backward_hook_record(lib):
    """Full backward hooks and pre-hooks on a Sequential's layers and on a two-output module, one of
    them scaling its grad_input, removed again for a second backward: what each saw, and the grads."""
    nn, seen = lib.nn, []

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(3, 2)

        def forward(self, x, y, k=1.0):
            return self.a(x) * 2, self.b(y), k

    m, two = nn.Sequential(nn.Linear(3, 3), nn.ReLU()), Two()
    with lib.no_grad():
        for lin, w in ((m[0], np.arange(9).reshape(3, 3) / 10 - 0.3), (two.a, np.ones((4, 3))),
                       (two.b, np.full((2, 3), 0.5))):
            lin.weight.copy_(lib.tensor(w.astype(np.float32)))
            lin.bias.zero_()

    def grads(gs):
        return [None if g is None else g.detach().numpy().copy() for g in gs]

    def hook(mod, grad_input, grad_output):
        seen.append(("hook", type(mod).__name__, grads(grad_input), grads(grad_output)))

    def pre(mod, grad_output):
        seen.append(("pre", type(mod).__name__, grads(grad_output)))
        return tuple(None if g is None else g * 3 for g in grad_output)

    m[1].register_full_backward_hook(hook)
    m[0].register_full_backward_hook(hook)
    two.register_full_backward_pre_hook(pre)
    two.register_full_backward_hook(hook)
    handle = two.a.register_full_backward_hook(lambda mod, gi, go: tuple(g * 10 for g in gi))
    x = lib.tensor(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    y = lib.tensor(np.linspace(-2, 1, 6, dtype=np.float32).reshape(2, 3))
    p, q, _ = two(m(x), y)
    (p.sum() + 0 * q.sum()).backward()
    first = x.grad.numpy().copy()
    handle.remove()
    x.grad = None
    p, q, _ = two(x, y)
    p.sum().backward()
    return seen, [first, x.grad.numpy().copy(), two.b.weight.grad.numpy().copy()]


def test_module_backward_hooks_see_and_replace_gradients_as_in_pytorch():
    (ours, ours_grads), (theirs, theirs_grads) = _backward_hook_record(gradc), _backward_hook_record(torch)
    assert [r[:2] for r in ours] == [r[:2] for r in theirs]
    assert len(ours) == 6
    for a, b in zip(ours, theirs):
        for xs, ys in zip(a[2:], b[2:]):
            assert [x is None for x in xs] == [y is None for y in ys], (a[:2], xs, ys)
            for x, y in zip(xs, ys):
                if x is not None:
                    np.testing.assert_allclose(x, y, rtol=1e-6)
    for a, b in zip(ours_grads, theirs_grads):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_a_backward_hook_fires_without_input_gradients_and_a_compiled_call_runs_it_eagerly():
    lin, seen = gradc.nn.Linear(2, 2), []
    lin.register_full_backward_hook(lambda mod, gi, go: seen.append((gi, tuple(go[0].shape))))
    lin(gradc.ones(1, 2)).sum().backward()
    assert seen == [((None,), (1, 2))]
    step = gradc.compile(lambda x: lin(x).sum())
    with pytest.warns(UserWarning, match="backward hooks"):
        loss = step(gradc.ones(3, 2))
    loss.backward()
    assert len(seen) == 2 and seen[1][1] == (3, 2)


def test_generator_keyword_draws_from_that_generator_and_leaves_the_global_one_alone():
    def draws(g):
        return [gradc.rand(2, generator=g), gradc.randn(3, generator=g), gradc.randint(0, 10, (4,), generator=g),
                gradc.randperm(5, generator=g), gradc.multinomial(gradc.tensor([0.2, 0.8]), 3, True, generator=g),
                gradc.empty(3).normal_(generator=g), gradc.empty(2).uniform_(generator=g),
                gradc.bernoulli(gradc.full((3,), 0.5), generator=g),
                gradc.nn.init.kaiming_normal_(gradc.empty(2, 3), generator=g)]
    gradc.manual_seed(0)
    first = draws(gradc.Generator().manual_seed(3))
    after = gradc.rand(2)
    gradc.manual_seed(0)
    assert all((a == b).all() for a, b in zip(first, draws(gradc.Generator().manual_seed(3))))
    gradc.manual_seed(0)
    assert (gradc.rand(2) == after).all()   # the generator's draws took nothing from the global stream
    g = gradc.Generator().manual_seed(1)
    step = gradc.compile(lambda x: x + gradc.rand(2, generator=g))
    with pytest.warns(UserWarning, match="generator="):
        step(gradc.zeros(2))


def test_a_range_indexes_like_a_list_and_std_of_one_element_is_nan():
    for lib in (torch, gradc):
        x = lib.zeros(3, 4)
        x[range(3), lib.tensor([1, 2, 3])] = 5.0
        assert x.sum().item() == 15.0 and tuple(x[range(2)].shape) == (2, 4) and x[range(3), 1].tolist() == [5, 0, 0]
    assert np.isnan(gradc.tensor([3.0]).std().item()) and np.isnan(gradc.tensor([[1.0, 2.0]]).std(0).numpy()).all()
    assert gradc.tensor([2.0, 2.0]).std().item() == 0.0


def test_a_backward_hook_sees_the_output_a_forward_hook_returned():
    def run(lib):
        seen, lin = [], lib.nn.Linear(2, 1)
        with lib.no_grad():
            lin.weight.fill_(1.0)
            lin.bias.fill_(0.0)
        lin.register_forward_hook(lambda m, i, o: o * 2)
        lin.register_full_backward_hook(lambda m, gi, go: seen.append((go[0].numpy().copy(), gi[0].numpy().copy())))
        (lin(lib.ones(1, 2, requires_grad=True)) * 3).sum().backward()
        return seen
    (go, gi), = run(gradc)
    (t_go, t_gi), = run(torch)
    np.testing.assert_array_equal(go, t_go)
    np.testing.assert_array_equal(gi, t_gi)


def test_keepdims_foreach_ops_and_constants_as_pytorch():
    for lib in (torch, gradc):
        x = lib.ones(2, 3)
        assert tuple(x.sum(1, keepdims=True).shape) == (2, 1) == tuple(lib.mean(x, 1, keepdims=True).shape)
        assert tuple(x.max(1, keepdims=True)[0].shape) == (2, 1)
    results = []
    for lib in (torch, gradc):
        a, b = [lib.ones(2), lib.full((3,), 2.0)], [lib.full((2,), 3.0), lib.ones(3)]
        assert lib._foreach_mul_(a, 0.5)[1] is a[1]
        lib._foreach_add_(a, b, alpha=2)
        lib._foreach_lerp_(a, b, 0.25)
        lib._foreach_addcmul_(a, b, b, value=0.1)
        lib._foreach_mul_(a, [2.0, 3.0])
        results.append([t.numpy().copy() for t in a + list(lib._foreach_sqrt(a))] + [t.numpy() for t in lib._foreach_norm(a)])
    for ours, theirs in zip(results[1], results[0]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert (gradc.pi, gradc.e, gradc.inf) == (torch.pi, torch.e, torch.inf) and np.isnan(gradc.nan)


def test_torch_compiler_reset_disable_and_is_compiling():
    f = gradc.compile(lambda x: x * 2)
    f(gradc.ones(2))
    f(gradc.ones(2))
    assert f.trace_count == 1
    gradc.compiler.reset()
    f(gradc.ones(2))
    assert f.trace_count == 2
    gradc._dynamo.reset()
    assert gradc._dynamo.mark_dynamic is gradc.mark_dynamic

    @gradc.compiler.disable
    def side(x):
        return x + 1
    g = gradc.compile(lambda x: side(x) * 2)
    with pytest.warns(UserWarning, match="compiler.disable"):
        np.testing.assert_array_equal(g(gradc.ones(2)).numpy(), [4.0, 4.0])
    assert not gradc.compiler.is_compiling()
    np.testing.assert_array_equal(gradc.compile(lambda x: x + gradc.compiler.is_compiling())(gradc.zeros(1)).numpy(), [1.0])


def test_format_grad_fn_names_and_volatile_as_pytorch():
    for lib in (torch, gradc):
        assert f"{lib.tensor([1.0])}" == "tensor([1.])" and f"{lib.tensor(1.5)}" == "1.5"
        assert type(lib.ones(1, requires_grad=True).mul(2).grad_fn).__name__ == "MulBackward0" or \
            lib.ones(1, requires_grad=True).mul(2).grad_fn.name() == "MulBackward0"
    with pytest.warns(UserWarning, match="volatile"):
        v = gradc.autograd.Variable(gradc.ones(2), volatile=True)
    assert v.shape == (2,)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
                                  "Rprop", "ASGD"])
def test_optimizers_take_pytorchs_implementation_keywords_and_keep_them_in_their_groups(name):
    import inspect
    assert set(inspect.signature(getattr(torch.optim, name).__init__).parameters) <= \
        set(inspect.signature(getattr(gradc.optim, name).__init__).parameters)
    ours = getattr(gradc.optim, name)([gradc.nn.Parameter(gradc.ones(2))], lr=0.01, foreach=False)
    theirs = getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))], lr=0.01, foreach=False)
    assert set(ours.state_dict()["param_groups"][0]) == set(theirs.state_dict()["param_groups"][0])
    with pytest.raises(gradc.GradcError, match="differentiable=True"):
        getattr(gradc.optim, name)([gradc.nn.Parameter(gradc.ones(2))], lr=0.01, differentiable=True)


def test_repeat_interleave_by_counts_and_torch_namespaces_for_autocast_finfo():
    for lib in (torch, gradc):
        assert lib.repeat_interleave(lib.tensor([1, 2]), lib.tensor([1, 2])).tolist() == [1, 2, 2]
        assert lib.repeat_interleave(lib.tensor([2, 0, 1])).tolist() == [0, 0, 2]
        assert lib.tensor([[1, 2], [3, 4]]).repeat_interleave(lib.tensor([1, 2]), dim=0).tolist() == [[1, 2], [3, 4], [3, 4]]
    x = gradc.tensor([1.0, 2.0], requires_grad=True)
    x.repeat_interleave(gradc.tensor([2, 3])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 3.0])
    f = gradc.compile(lambda a, r: a.repeat_interleave(r, dim=0, output_size=3))
    np.testing.assert_array_equal(f(gradc.tensor([1.0, 2.0]), gradc.tensor([1, 2])).numpy(), [1.0, 2.0, 2.0])
    with gradc.cpu.amp.autocast():
        assert gradc.is_autocast_enabled("cpu") and gradc.get_autocast_dtype("cpu") is gradc.float16
    assert not gradc.is_autocast_enabled()
    ours, theirs = gradc.finfo(gradc.bfloat16), torch.finfo(torch.bfloat16)
    assert (ours.bits, ours.eps, ours.max, ours.min, ours.tiny) == (theirs.bits, theirs.eps, theirs.max, theirs.min,
                                                                   theirs.tiny)


def test_sdpa_backend_selectors_to_empty_and_load_state_dict_repr():
    from gradc.nn.attention import SDPBackend, sdpa_kernel
    q = gradc.randn(1, 2, 3, 4)
    plain = gradc.nn.functional.scaled_dot_product_attention(q, q, q)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]):
        np.testing.assert_array_equal(gradc.nn.functional.scaled_dot_product_attention(q, q, q).numpy(), plain.numpy())
    with pytest.raises(ValueError, match="SDPBackend"):
        sdpa_kernel("flash")
    gradc.backends.cuda.enable_flash_sdp(False)
    assert not gradc.backends.cuda.flash_sdp_enabled()
    gradc.backends.cuda.enable_flash_sdp(True)
    m = gradc.nn.Linear(2, 2)
    assert repr(m.load_state_dict(m.state_dict())) == repr(torch.nn.Linear(2, 2).load_state_dict(
        torch.nn.Linear(2, 2).state_dict())) == "<All keys matched successfully>"
    assert m.to_empty(device="cpu") is m and m.weight.shape == (2, 2) and isinstance(m.weight, gradc.nn.Parameter)


def test_setitem_drops_leading_ones_and_distributions_import_by_torchs_module_paths():
    for lib in (torch, gradc):   # CleanRL's advantages[t] = delta + ... with delta of shape (1, num_envs)
        a = lib.zeros(3, 2)
        a[0] = lib.ones(1, 2)
        a[1:2] = lib.ones(1, 1, 2) * 2
        assert a.tolist() == [[1, 1], [2, 2], [0, 0]]
        b = lib.zeros(3, 2)
        b[lib.tensor([0, 2])] = lib.ones(1, 2, 2)
        assert b.tolist() == [[1, 1], [0, 0], [1, 1]]
    from gradc.distributions.categorical import Categorical
    from gradc.distributions.normal import Normal
    from gradc.distributions.studentT import StudentT
    assert (Categorical, Normal, StudentT) == (gradc.distributions.Categorical, gradc.distributions.Normal,
                                               gradc.distributions.StudentT)


def test_grad_accumulates_in_place_so_a_reference_to_it_sees_the_sum():
    for lib in (torch, gradc):
        w = lib.ones(2, requires_grad=True)
        (w * 2).sum().backward()
        held = w.grad
        (w * 3).sum().backward()
        assert w.grad is held and held.tolist() == [5.0, 5.0]
        x = lib.ones(2, requires_grad=True)   # with create_graph the sum keeps history: a new tensor
        (x * x).sum().backward(create_graph=True)
        first = x.grad
        (x * x).sum().backward(create_graph=True)
        assert x.grad.tolist() == [4.0, 4.0] and first.tolist() == [2.0, 2.0]


def test_out_keyword_writes_into_the_given_tensor_as_in_pytorch():
    for lib in (torch, gradc):
        x = lib.zeros(3)
        assert lib.add(lib.ones(3), 1, out=x) is x and x.tolist() == [2, 2, 2]
        e = lib.empty(0)
        lib.matmul(lib.ones(2, 3), lib.ones(3, 2), out=e)   # an empty out is resized silently
        assert tuple(e.shape) == (2, 2) and e.tolist() == [[3, 3], [3, 3]]
        with pytest.warns(UserWarning, match="resized"):
            lib.cat([lib.ones(2), lib.ones(2)], out=lib.zeros(5))
        f = lib.zeros(3, dtype=lib.float64)
        lib.add(lib.ones(3, dtype=lib.long), 1, out=f)
        assert f.dtype == lib.float64 and f.tolist() == [2, 2, 2]
        with pytest.raises(RuntimeError):   # float into an integer out=: a lower kind
            lib.add(lib.ones(3), 1, out=lib.zeros(3, dtype=lib.long))
        with pytest.raises(RuntimeError):   # in-place on an integer tensor: the same rule
            lib.zeros(3, dtype=lib.long).add_(1.5)
        v, i = lib.zeros(2), lib.zeros(2, dtype=lib.long)
        values, indices = lib.max(lib.tensor([[1., 5], [7, 2]]), 1, out=(v, i))
        assert values is v and indices is i and v.tolist() == [5, 7] and i.tolist() == [1, 0]
        a = lib.ones(3, requires_grad=True)
        with pytest.raises(RuntimeError, match="automatic differentiation"):
            lib.mul(a, 2, out=lib.zeros(3))
        with lib.no_grad():
            z = lib.zeros(3)
            lib.mul(a, 2, out=z)
        assert z.tolist() == [2, 2, 2] and not z.requires_grad
        o = lib.empty(4)
        lib.arange(4, out=o)
        assert o.tolist() == [0, 1, 2, 3]
    f = gradc.compile(lambda a, o: gradc.add(a, 1, out=o) * 2)
    o = gradc.zeros(3)
    assert f(gradc.ones(3), o).tolist() == [4, 4, 4] and o.tolist() == [2, 2, 2]


def test_integer_powers_follow_pytorchs_rule_eagerly_and_compiled():
    base, exponent = [0, 1, -1, 2, -2, 3], [-1, -3, -2, -1, -1, 2]
    expected = (torch.tensor(base) ** torch.tensor(exponent)).tolist()
    assert expected == [0, 1, 1, 0, 0, 9]
    assert (gradc.tensor(base) ** gradc.tensor(exponent)).tolist() == expected
    assert (2 ** gradc.tensor([-1, 0, 1])).tolist() == (2 ** torch.tensor([-1, 0, 1])).tolist()
    for backend in ("numpy", "c"):
        f = gradc.compile(lambda a, b: a ** b * 2 + 1, backend=backend)
        assert f(gradc.tensor(base), gradc.tensor(exponent)).tolist() == [2 * v + 1 for v in expected]
    with pytest.raises(RuntimeError, match="negative integer powers"):
        gradc.tensor(base) ** -1


def test_mask_assignment_of_one_value_compiles_as_pytorchs_does():
    """nanoGPT's top-k filter `logits[logits < v[:, [-1]]] = -inf` needs no mask values: it traces
    (fullgraph) and equals PyTorch; one value per selected element still runs eagerly."""
    def top_k(lib):
        def f(logits):
            v, _ = lib.topk(logits, 2)
            logits = logits.clone()
            logits[logits < v[:, [-1]]] = -float("Inf")
            return logits
        return f
    x = [[1.0, 4.0, 2.0, 3.0], [0.5, -1.0, 2.0, 0.0]]
    assert gradc.compile(top_k(gradc), fullgraph=True)(gradc.tensor(x)).tolist() == top_k(torch)(torch.tensor(x)).tolist()
    r = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    results = []
    for lib in (torch, gradc):
        out = []
        a = lib.tensor(r); a[a > 0] = 0; out.append(a)
        a = lib.tensor(r); a[lib.tensor([True, False, True])] = lib.tensor([1.0, 2, 3, 4]); out.append(a)
        a = lib.tensor(r); a[lib.tensor([True, False, True])] = 5; out.append(a)
        a = lib.tensor(r); a[a > 0] = lib.tensor([[7.0]]); out.append(a)
        a = lib.tensor(r); m = a > 0; a[m] = lib.arange(int(m.sum())).float(); out.append(a)
        i = lib.tensor([1, 2, 3]); i[i > 1] = 2.7; out.append(i)
        w = lib.tensor(r, requires_grad=True); y = w * 1; y[y > 0] = 0; y.sum().backward(); out.append(w.grad)
        results.append([o.tolist() for o in out])
    assert results[0] == results[1]


def test_freezing_layers_between_and_inside_compiled_steps_matches_pytorch():
    results = []
    for lib, compiled in ((torch, False), (gradc, True)):
        w, b = lib.nn.Parameter(lib.ones(2)), lib.nn.Parameter(lib.ones(2))
        opt = lib.optim.SGD([w, b], lr=0.5)

        def step():
            opt.zero_grad()
            (w * 2 + b * 3).sum().backward()
            opt.step()
        run = gradc.compile(step) if compiled else step
        w.requires_grad_(False)
        run()
        w.requires_grad_(True)   # progressive unfreezing: the program derived for the old flags must not run
        b.requires_grad_(False)
        run()
        results.append((w.tolist(), b.tolist()))
        if compiled:
            assert any("requires_grad: False -> True" in r for r in run.recompile_reasons)
    assert results[0] == results[1]
    lin = gradc.nn.Linear(2, 1)

    def d_step(x):   # pix2pix's set_requires_grad(netD, False) inside the step
        out = lin(x).sum()
        lin.weight.requires_grad = False
        return out
    step = gradc.compile(d_step)
    for _ in range(3):
        lin.weight.requires_grad = True
        step(gradc.ones(1, 2))
        assert lin.weight.requires_grad is False


def test_in_place_edits_of_quotients_and_through_data_backpropagate_as_in_pytorch():
    grads = []
    for lib in (torch, gradc):
        x = lib.tensor([[1.0, 2.0], [3.0, 4.0], [0.5, -1.0]], requires_grad=True)
        sim = lib.nn.functional.cosine_similarity(x[:, None, :], x[None, :, :], dim=-1)   # SimCLR's info_nce
        sim.masked_fill_(lib.eye(3, dtype=lib.bool), -9e15)
        loss = lib.logsumexp(sim, -1).sum()
        loss += lib.nn.functional.binary_cross_entropy_with_logits(x, lib.ones(3, 2))   # U-Net's loss +=
        y = x.mean(0)
        y.mul_(3)
        (loss + y.sum()).backward()
        w = lib.nn.Parameter(lib.tensor([1.0, 2.0]))
        z = lib.tensor([3.0, 4.0], requires_grad=True)
        p = (w * z).sum()
        w.data.mul_(10.0)   # .data has its own version counter
        p.backward()
        grads.append(np.concatenate([x.grad.numpy().ravel(), z.grad.numpy()]))
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6)


def test_numeric_habits_that_were_off_by_a_rounding():
    r = np.random.default_rng(0)
    x16 = np.linspace(-3, 3, 1001).astype(np.float16)
    for c in (0.1, 1 / 3, 7.3, -1e9):
        for f in (lambda t: t * c, lambda t: t / c, lambda t: c / t, lambda t: t + c, lambda t: c - t):
            np.testing.assert_array_equal(f(gradc.tensor(x16)).numpy(), f(torch.tensor(x16)).numpy())
    m = np.array([[1.0, 1.0, 0.0]], np.float16)   # BERT's additive mask in float16: 0 * -1e9 is 0, not NaN
    for lib in (torch, gradc):
        out = lib.tensor([[0.5, 1.0, 2.0]], dtype=lib.float16) + (1.0 - lib.tensor(m)) * -1e9
        assert out.tolist() == [[0.5, 1.0, -float("inf")]]
    x32 = r.random(1000).astype(np.float32) + 0.5
    np.testing.assert_array_equal((0.3 / gradc.tensor(x32)).numpy(), (0.3 / torch.tensor(x32)).numpy())
    for dtype in ("float32", "float64", "float16"):
        for a, b, n in ((-1, 1, 28), (0.3, 7.7, 100), (2, -9.5, 7)):
            np.testing.assert_array_equal(gradc.linspace(a, b, n, dtype=getattr(gradc, dtype)).numpy(),
                                          torch.linspace(a, b, n, dtype=getattr(torch, dtype)).numpy())
    img = r.random((1, 1, 28, 28)).astype(np.float32)
    for align in (False, True):   # the STN tutorial's identity start: sample points on pixel centres
        grads = []
        for lib in (torch, gradc):
            theta = lib.tensor([[[1.0, 0, 0], [0, 1, 0]]], requires_grad=True)
            grid = lib.nn.functional.affine_grid(theta, [1, 1, 28, 28], align_corners=align)
            lib.nn.functional.grid_sample(lib.tensor(img), grid, align_corners=align).sum().backward()
            grads.append(theta.grad.numpy())
        np.testing.assert_allclose(grads[1], grads[0], rtol=1e-4)
    x = gradc.zeros(2, 3, dtype=gradc.float16)
    assert x.softmax(-1, dtype=gradc.float64).dtype is gradc.float64
    assert gradc.log_softmax(x, 1, gradc.float32).dtype is gradc.float32


@pytest.mark.parametrize("equation, shapes", [
    ("bii->b", [(2, 3, 3)]), ("bii->bi", [(2, 3, 3)]), ("ijj->i", [(3, 3, 3)]), ("jii->ij", [(2, 3, 3)]),
    ("iji->j", [(3, 2, 3)]), ("iii->i", [(3, 3, 3)]), ("bii,bj->bij", [(2, 3, 3), (2, 4)]), ("ijij->ij", [(2, 3, 2, 3)]),
    ("aibi->ab", [(2, 3, 4, 3)]), ("...ii->...i", [(2, 5, 3, 3)])])
def test_einsum_diagonals_anywhere_in_the_term_match_pytorch(equation, shapes):
    xs = [np.random.default_rng(1).standard_normal(s) for s in shapes]
    expected = torch.einsum(equation, *[torch.tensor(x) for x in xs]).numpy()
    got = gradc.einsum(equation, *[gradc.tensor(x) for x in xs]).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    compiled = gradc.compile(lambda *a: gradc.einsum(equation, *a))(*[gradc.tensor(x) for x in xs])
    np.testing.assert_allclose(compiled.numpy(), expected, rtol=1e-12)


def test_library_surface_habits_match_pytorch():
    for lib in (torch, gradc):
        @lib.no_grad()
        def batches(w):   # a decorated generator runs under the mode too
            for i in range(2):
                yield w * i
        w = lib.nn.Parameter(lib.tensor([0.5, 2.0]))
        assert [b.requires_grad for b in batches(w)] == [False, False]
        x = lib.tensor([[1.0, 2.0], [3.0, 4.0]])
        assert (3 in x, lib.tensor([3.0, 4.0]) in x, 9 in x) == (True, True, False)
        y = lib.tensor([1.0, 2.0], requires_grad=True) * 2
        assert y.requires_grad_() is y
        assert tuple(lib.nn.Identity(54, unused_argument=0.1)(lib.ones(2)).shape) == (2,)
        assert lib.manual_seed(3).initial_seed() == 3
        for bad in (lambda: lib.ones(2).item(), lambda: bool(lib.ones(2)),
                    lambda: lib.nn.Linear(2, 2).load_state_dict({}),
                    lambda: lib.nn.Linear(2, 2).load_state_dict({"weight": lib.ones(3, 2), "bias": lib.ones(2)}),
                    lambda: lib.nn.functional.cross_entropy(lib.ones(2, 3), lib.tensor([0, 1], dtype=lib.int32)),
                    lambda: lib.nn.functional.cross_entropy(lib.ones(2, 3), lib.tensor([0, 1]), label_smoothing=1.5)):
            with pytest.raises(RuntimeError):
                bad()


def test_torch_compile_surface_module_compile_stances_and_dynamo_config():
    import warnings
    m = gradc.nn.Linear(2, 2)
    x = gradc.ones(1, 2)
    m.compile()   # torch's in-place form: the same module, the same state-dict keys
    compiled = m.__dict__["_forward_hooks"][0][2]
    assert m(x).tolist() == m._call_uncompiled(x).tolist() and compiled.trace_count == 1
    assert list(m.state_dict()) == ["weight", "bias"]
    m.eval()
    m(x)
    assert compiled.trace_count == 2   # a train/eval switch retraces it, as any compiled module
    handle = m.register_forward_hook(lambda mod, args, out: out * 2)
    assert (m(x) / m._call_uncompiled(x)).tolist() == [[1.0, 1.0]]   # (hooks run inside the compiled call)
    handle.remove()
    f = gradc.compile(lambda t: t * 2)
    f(gradc.ones(2))
    with gradc.compiler.set_stance("fail_on_recompile"):
        with pytest.raises(gradc.GradcError, match="fail_on_recompile"):
            f(gradc.ones(3, 3))
    with gradc.compiler.set_stance("eager_on_recompile"):
        assert f(gradc.ones(4, 4)).shape == (4, 4) and f.trace_count == 1
    with gradc.compiler.set_stance("force_eager"):
        assert f(gradc.ones(5)).tolist() == [2.0] * 5 and f.trace_count == 1
    with gradc._dynamo.config.patch(cache_size_limit=2):
        g = gradc.compile(lambda t, n: t * n)
        with pytest.warns(UserWarning, match="cache_limit=2"):
            for n in range(4):
                assert g(gradc.ones(1), n).tolist() == [float(n)]
        assert g.trace_count == 2
    with pytest.raises(AttributeError, match="no setting"):
        gradc._dynamo.config.cache_size_limt = 3   # a typo is refused
    with pytest.warns(UserWarning, match="changes nothing"):
        gradc._dynamo.config.verbose = True        # torch's settings for what gradc does not do: kept, with a warning
    assert gradc._dynamo.config.verbose is True
    gradc._dynamo.config.recompile_limit = 16      # cache_size_limit's newer name
    assert gradc._dynamo.config.cache_size_limit == 16
    gradc._dynamo.config.recompile_limit = 8
    with pytest.warns(UserWarning, match="no Inductor"):
        gradc._inductor.config.triton.unique_kernel_names = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = gradc.compile(gradc.nn.Linear(2, 2), options={"epilogue_fusion": True, "triton.cudagraphs": False})
    assert c.mode == "max-autotune-no-cudagraphs" and "epilogue_fusion" in str(caught[0].message)
    assert gradc._dynamo.optimize("inductor")(lambda t: t + 1)(gradc.ones(1)).tolist() == [2.0]
    assert gradc.compiler.allow_in_graph(abs) is abs and not gradc.compiler.is_dynamo_compiling()


def test_optimizer_habits_closure_custom_subclass_ema_buffers_and_lbfgs_budget():
    results = []
    for lib in (torch, gradc):
        w = lib.nn.Parameter(lib.tensor([1.0, -2.0]))
        opt = lib.optim.Adam([w], lr=0.1)

        def closure():
            opt.zero_grad()
            loss = (w ** 2).sum()
            loss.backward()
            return loss
        assert opt.step(closure).item() == 5.0

        class MySGD(lib.optim.Optimizer):   # written PyTorch's way: step() overridden, state a defaultdict
            def __init__(self, params, lr=0.1):
                super().__init__(params, dict(lr=lr))

            @lib.no_grad()
            def step(self, closure=None):
                for g in self.param_groups:
                    for p in g["params"]:
                        st = self.state[p]
                        st["n"] = st.get("n", 0) + 1
                        p.add_(p.grad, alpha=-g["lr"])
        v = lib.nn.Parameter(lib.ones(2))
        mine = MySGD([v])
        (v * v).sum().backward()
        mine.step()
        swa = lib.optim.swa_utils
        m = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.BatchNorm1d(4))
        ema = swa.AveragedModel(m, multi_avg_fn=swa.get_ema_multi_avg_fn(0.999), use_buffers=True)
        m(lib.ones(2, 3))
        ema.update_parameters(m)
        m(lib.ones(2, 3))
        ema.update_parameters(m)
        x = lib.tensor([-1.5, 2.0], dtype=lib.float64, requires_grad=True)
        lb = lib.optim.LBFGS([x], lr=1, max_iter=1, line_search_fn="strong_wolfe")

        def rosen():
            lb.zero_grad()
            loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
            loss.backward()
            return loss
        for _ in range(3):
            lb.step(rosen)
        results.append((w.tolist(), v.tolist(), dict(mine.state[v]), int(ema.module[1].num_batches_tracked),
                        x.tolist(), lb.state[x]["func_evals"]))
    assert results[0][1:] == results[1][1:]
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6)


def test_rng_state_inside_a_compiled_function_runs_it_eagerly_with_eagers_numbers():
    def f(x):
        state = gradc.get_rng_state()
        a = gradc.rand(2)
        gradc.set_rng_state(state)
        return a - gradc.rand(2)
    step = gradc.compile(f)
    gradc.manual_seed(0)
    with pytest.warns(UserWarning, match="get_rng_state"):
        first = step(gradc.ones(1))
    assert first.tolist() == [0.0, 0.0] and step(gradc.ones(1)).tolist() == [0.0, 0.0]
    with pytest.raises(gradc.TraceError, match="get_rng_state"):
        gradc.compile(f, fullgraph=True)(gradc.ones(1))


def test_a_reference_to_grad_sees_compiled_accumulation_and_zeroing_as_in_pytorch():
    results = []
    for lib, compiled in ((torch, False), (gradc, False), (gradc, True)):
        w = lib.nn.Parameter(lib.tensor([1.0, 2.0]))
        opt = lib.optim.SGD([w], lr=0.1)

        def backward(x):
            (w * x).sum().backward()
        run = gradc.compile(backward) if compiled else backward
        run(lib.tensor([3.0, 3.0]))
        held = w.grad
        run(lib.tensor([5.0, 5.0]))   # accumulates into the same tensor
        first = (w.grad is held, held.tolist())
        opt.zero_grad(set_to_none=False)
        (w * 7).sum().backward()
        results.append((first, w.grad is held, held.tolist()))
    assert results[0] == results[1] == results[2] == ((True, [8.0, 8.0]), True, [7.0, 7.0])
