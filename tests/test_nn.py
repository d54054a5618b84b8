"""gradc.nn: Module bookkeeping (parameters, buffers, state dicts, modes, devices, repr) and each
layer against NumPy formulas written here, float64 finite differences or hand-derived gradients."""
import math

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import DTypeError, DeviceError, GradcError, ShapeError, nn


def t64(a, requires_grad=False):
    return gradc.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar f(x) (x a float64 array)."""
    g = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.act = nn.Sequential(nn.ReLU(), nn.Linear(4, 2, bias=False))
        self.scale = nn.Parameter(gradc.ones(2))
        self.register_buffer("running", gradc.zeros(2))
        self.register_buffer("steps", gradc.tensor(0))
        self.register_buffer("cache", gradc.ones(5), persistent=False)

    def forward(self, x):
        return self.act(self.fc(x)) * self.scale + self.running


def snapshot(module):
    return {k: v.numpy().copy() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------------- Module bookkeeping
def test_parameters_and_named_parameters():
    m = Block()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "fc.weight", "fc.bias", "act.1.weight"]
    params = list(m.parameters())
    assert [p.shape for p in params] == [(2,), (4, 3), (4,), (2, 4)]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad and p.is_leaf for p in params)
    assert params[1] is m.fc.weight
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in m.named_parameters(prefix="model")][1] == "model.fc.weight"


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    m = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(m.parameters())) == 2


def test_buffers_and_persistence():
    m = Block()
    assert [n for n, _ in m.named_buffers()] == ["running", "steps", "cache"]
    sd = m.state_dict()
    assert "running" in sd and "steps" in sd and "cache" not in sd
    assert not any(b.requires_grad for b in m.buffers())
    assert list(sd) == ["scale", "running", "steps", "fc.weight", "fc.bias", "act.1.weight"]
    m.running = gradc.ones(2)  # assigning a tensor to a buffer name keeps it a buffer
    assert m.state_dict()["running"].numpy().tolist() == [1.0, 1.0]
    with pytest.raises(TypeError):
        m.running = 3


def test_modules_and_children():
    m = Block()
    assert [type(c).__name__ for c in m.children()] == ["Linear", "Sequential"]
    assert [type(c).__name__ for c in m.modules()] == ["Block", "Linear", "Sequential", "ReLU", "Linear"]
    assert [n for n, _ in m.named_modules()] == ["", "fc", "act", "act.0", "act.1"]


def test_state_dict_round_trip_gives_identical_outputs():
    gradc.manual_seed(0)
    a, b = Block(), Block()
    x = gradc.randn(5, 3)
    with gradc.no_grad():
        a.running.fill_(0.25)
    assert not np.allclose(a(x).detach().numpy(), b(x).detach().numpy())
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())
    # values are copied, not shared
    with gradc.no_grad():
        a.fc.weight.add_(1.0)
    assert not np.allclose(a.fc.weight.detach().numpy(), b.fc.weight.detach().numpy())


def test_load_state_dict_wrong_shape_applies_nothing():
    m = Block()
    before = snapshot(m)
    sd = {k: v + 1.0 if v.dtype.is_floating_point else v for k, v in m.state_dict().items()}
    sd["act.1.weight"] = gradc.zeros(4, 2)  # transposed
    with pytest.raises(ShapeError) as e:
        m.load_state_dict(sd)
    msg = str(e.value)
    assert "act.1.weight" in msg and "(4, 2)" in msg and "(2, 4)" in msg
    after = snapshot(m)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])  # not even the keys before the bad one


def test_load_state_dict_wrong_name_applies_nothing():
    m = Block()
    before = snapshot(m)
    sd = {k: v + 1.0 if v.dtype.is_floating_point else v for k, v in m.state_dict().items()}
    sd["fc.wieght"] = sd.pop("fc.weight")
    with pytest.raises(GradcError) as e:
        m.load_state_dict(sd)
    msg = str(e.value)
    assert "missing" in msg and "fc.weight" in msg and "unexpected" in msg and "fc.wieght" in msg
    after = snapshot(m)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])


def test_load_state_dict_non_strict_reports_keys():
    m = Block()
    sd = m.state_dict()
    new_bias = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    sd = {"fc.bias": gradc.tensor(new_bias), "extra": gradc.zeros(1)}
    result = m.load_state_dict(sd, strict=False)
    assert result.unexpected_keys == ["extra"]
    assert set(result.missing_keys) == {"scale", "running", "steps", "fc.weight", "act.1.weight"}
    np.testing.assert_array_equal(m.fc.bias.detach().numpy(), new_bias)


def test_load_state_dict_casts_like_torch_and_accepts_arrays():
    m = Block()
    m.load_state_dict({**m.state_dict(), "steps": gradc.tensor(7.0), "running": np.array([2.0, 3.0])})
    assert m.steps.dtype is gradc.int64 and m.steps.item() == 7
    assert m.running.dtype is gradc.float32 and m.running.numpy().tolist() == [2.0, 3.0]


def test_train_eval_recurse():
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5)))
    assert all(s.training for s in m.modules())
    assert m.eval() is m
    assert not any(s.training for s in m.modules())
    m.train()
    assert all(s.training for s in m.modules())
    m.train(False)
    assert not m[1][0].training


def test_zero_grad():
    m = nn.Linear(3, 2)
    m(gradc.randn(4, 3)).sum().backward()
    assert m.weight.grad is not None
    m.zero_grad(set_to_none=False)
    assert m.weight.grad.shape == (2, 3)
    np.testing.assert_array_equal(m.weight.grad.numpy(), np.zeros((2, 3)))
    m.weight.grad = gradc.tensor(np.full((2, 3), np.inf, dtype=np.float32))
    m.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(m.weight.grad.numpy(), np.zeros((2, 3)))  # inf * 0 would be nan
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


def test_to_dtype_keeps_parameter_objects_and_integer_buffers():
    m = Block()
    w = m.fc.weight
    w_before = w.detach().numpy().astype(np.float64)
    assert m.to(gradc.float64) is m
    assert m.fc.weight is w and w.dtype is gradc.float64 and w.requires_grad
    np.testing.assert_array_equal(w.detach().numpy(), w_before)
    assert m.running.dtype is gradc.float64 and m.steps.dtype is gradc.int64
    y = m(gradc.randn(2, 3, dtype=gradc.float64))
    assert y.dtype is gradc.float64
    m.float()
    assert m.fc.weight.dtype is gradc.float32
    assert m.to("cpu") is m


def test_to_cuda_without_cuda_fails_cleanly():
    if gradc.cuda.is_available():
        pytest.skip("a CUDA device is available here, so .to('cuda') is expected to work")
    m = Block()
    before = snapshot(m)
    with pytest.raises(DeviceError, match="CUDA|CuPy"):
        m.to("cuda")
    with pytest.raises(DeviceError):
        m.cuda()
    after = snapshot(m)
    assert all(np.array_equal(after[k], before[k]) for k in before)
    assert m.fc.weight.device == "cpu"


def test_module_repr_reads_like_pytorch():
    m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.GELU(approximate="tanh"), nn.LayerNorm(3),
                      nn.Sequential(nn.Tanh(), nn.Sigmoid()), nn.Embedding(4, 3), nn.Dropout(0.1),
                      nn.MSELoss(), nn.CrossEntropyLoss())
    expected = """Sequential(
  (0): Linear(in_features=2, out_features=3, bias=True)
  (1): ReLU()
  (2): GELU(approximate='tanh')
  (3): LayerNorm((3,), eps=1e-05, elementwise_affine=True, bias=True)
  (4): Sequential(
    (0): Tanh()
    (1): Sigmoid()
  )
  (5): Embedding(4, 3)
  (6): Dropout(p=0.1, inplace=False)
  (7): MSELoss()
  (8): CrossEntropyLoss()
)"""
    assert repr(m) == expected
    assert repr(nn.Linear(5, 1, bias=False)) == "Linear(in_features=5, out_features=1, bias=False)"
    assert repr(nn.GELU()) == "GELU(approximate='none')"


def test_module_repr_matches_torch_where_it_can():
    torch = pytest.importorskip("torch")
    pairs = [(nn.Linear(2, 3), torch.nn.Linear(2, 3)), (nn.ReLU(), torch.nn.ReLU()),
             (nn.GELU(approximate="tanh"), torch.nn.GELU(approximate="tanh")), (nn.Embedding(4, 3), torch.nn.Embedding(4, 3)),
             (nn.Sequential(nn.Tanh(), nn.Sequential(nn.Sigmoid())),
              torch.nn.Sequential(torch.nn.Tanh(), torch.nn.Sequential(torch.nn.Sigmoid()))),
             (nn.MSELoss(), torch.nn.MSELoss()), (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss())]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


def test_module_registration_errors():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(gradc.ones(1))

    with pytest.raises(GradcError, match="super\\(\\).__init__"):
        Bad()
    with pytest.raises(GradcError, match="forward"):
        nn.Module()(gradc.ones(1))
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="Parameter"):
        m.weight = gradc.ones(2, 2)


# ---------------------------------------------------------------------- Parameter
def test_parameter():
    data = gradc.tensor([1.0, 2.0])
    p = nn.Parameter(data)
    assert isinstance(p, gradc.Tensor) and p.requires_grad and p.is_leaf and p.grad_fn is None
    with gradc.no_grad():
        data.mul_(3.0)  # a Parameter shares the storage of the tensor it wraps
    np.testing.assert_array_equal(p.detach().numpy(), [3.0, 6.0])
    assert not nn.Parameter(gradc.ones(2), requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\ntensor([3., 6.], requires_grad=True)")
    with pytest.raises(DTypeError, match="floating"):
        nn.Parameter(gradc.tensor([1, 2]))
    assert not nn.Parameter(gradc.tensor([1, 2]), requires_grad=False).requires_grad


# ---------------------------------------------------------------------- Linear
def test_linear_forward_matches_formula():
    m = nn.Linear(3, 2)
    assert m.weight.shape == (2, 3) and m.bias.shape == (2,)
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    y = m(gradc.tensor(x)).detach().numpy()
    np.testing.assert_allclose(y, x @ m.weight.detach().numpy().T + m.bias.detach().numpy(), rtol=1e-6, atol=1e-6)
    xb = np.random.default_rng(2).standard_normal((2, 5, 3)).astype(np.float32)  # batched leading dims
    yb = m(gradc.tensor(xb)).detach().numpy()
    np.testing.assert_allclose(yb, xb @ m.weight.detach().numpy().T + m.bias.detach().numpy(), rtol=1e-6, atol=1e-6)
    nb = nn.Linear(3, 2, bias=False)
    assert nb.bias is None and [n for n, _ in nb.named_parameters()] == ["weight"]
    with pytest.raises(ShapeError, match="linear"):
        m(gradc.ones(4, 5))


def test_linear_default_init_statistics():
    gradc.manual_seed(1234)
    fan_in, fan_out = 400, 300
    m = nn.Linear(fan_in, fan_out)
    bound = 1.0 / math.sqrt(fan_in)  # PyTorch: kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for values, n in ((m.weight.detach().numpy().ravel(), fan_in * fan_out), (m.bias.detach().numpy(), fan_out)):
        values = values.astype(np.float64)
        assert values.size == n
        assert values.min() >= -bound and values.max() <= bound
        std_of_mean = bound / math.sqrt(3 * n)            # U(-b, b) has variance b^2 / 3
        assert abs(values.mean()) < 5 * std_of_mean
        # the sample variance has relative standard error sqrt(4/45 / n) / (1/3) ~= 0.894 / sqrt(n)
        assert abs(values.var() / (bound ** 2 / 3) - 1) < 6 * 0.894 / math.sqrt(n)
    # uniform, not normal: a quarter of the mass in each quarter of the interval (weights)
    w = m.weight.detach().numpy().ravel()
    hist, _ = np.histogram(w, bins=4, range=(-bound, bound))
    np.testing.assert_allclose(hist / w.size, 0.25, atol=0.01)
    assert np.abs(w).max() > 0.99 * bound
    # seeded: the same seed gives the same parameters
    gradc.manual_seed(1234)
    np.testing.assert_array_equal(nn.Linear(fan_in, fan_out).weight.detach().numpy(), m.weight.detach().numpy())


def test_linear_mse_hand_computed_gradients():
    # y = x W^T + b  with N = 2 samples, 3 outputs ; L = mean((y - t)^2) over N*3 = 6 elements
    #   dL/dy = 2/6 * (y - t)
    #   dL/dW = (dL/dy)^T x       = 2/6 * (y - t)^T x
    #   dL/db = sum_n dL/dy[n]    = 2/6 * sum_n (y - t)[n]
    m = nn.Linear(2, 3)
    with gradc.no_grad():
        m.weight.copy_(gradc.tensor([[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6]]))
        m.bias.copy_(gradc.tensor([0.1, -0.1, 0.2]))
    x = gradc.tensor([[1.0, 2.0], [3.0, -1.0]])
    t = gradc.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    y = m(x)
    # by hand: y = [[0.6, 0.4, -0.5], [0.2, -1.4, 2.3]] ; y - t = [[0.6, -0.6, -0.5], [-0.8, -1.4, 1.3]]
    np.testing.assert_allclose(y.detach().numpy(), [[0.6, 0.4, -0.5], [0.2, -1.4, 2.3]], rtol=1e-6, atol=1e-6)
    loss = nn.MSELoss()(y, t)
    # L = (0.36 + 0.36 + 0.25 + 0.64 + 1.96 + 1.69) / 6 = 5.26 / 6
    np.testing.assert_allclose(loss.item(), 5.26 / 6, rtol=1e-6)
    loss.backward()
    # dL/dy = (y - t) / 3 = [[0.2, -0.2, -1/6], [-0.8/3, -1.4/3, 1.3/3]]
    # dL/dW[0] = [0.2*1 + (-0.8/3)*3, 0.2*2 + (-0.8/3)*(-1)] = [-0.6, 2/3]
    # dL/dW[1] = [-0.2*1 + (-1.4/3)*3, -0.2*2 + (-1.4/3)*(-1)] = [-1.6, 1/15]
    # dL/dW[2] = [-1/6*1 + (1.3/3)*3, -1/6*2 + (1.3/3)*(-1)] = [17/15, -23/30]
    expected_w = np.array([[-0.6, 2 / 3], [-1.6, 1 / 15], [17 / 15, -23 / 30]])
    # dL/db = [0.2 - 0.8/3, -0.2 - 1.4/3, -1/6 + 1.3/3] = [-1/15, -2/3, 4/15]
    expected_b = np.array([-1 / 15, -2 / 3, 4 / 15])
    np.testing.assert_allclose(m.weight.grad.numpy(), expected_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.bias.grad.numpy(), expected_b, rtol=1e-5, atol=1e-6)
    # the same numbers from the closed forms above
    xv, tv = x.numpy(), t.numpy()
    d = xv @ np.array([[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6]]).T + np.array([0.1, -0.1, 0.2]) - tv
    np.testing.assert_allclose(expected_w, 2 / 6 * d.T @ xv, rtol=1e-12)
    np.testing.assert_allclose(expected_b, 2 / 6 * d.sum(0), rtol=1e-12)


# ---------------------------------------------------------------------- Sequential
def test_sequential():
    gradc.manual_seed(3)
    l1, l2 = nn.Linear(3, 4), nn.Linear(4, 2)
    seq = nn.Sequential(l1, nn.Tanh(), l2)
    assert len(seq) == 3 and seq[0] is l1 and seq[2] is l2 and list(seq) == [l1, seq[1], l2]
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 2
    x = gradc.randn(5, 3)
    np.testing.assert_array_equal(seq(x).detach().numpy(), l2(l1(x).tanh()).detach().numpy())
    seq.append(nn.ReLU())
    assert len(seq) == 4 and [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]


# ---------------------------------------------------------------------- activations
XS = np.array([-20.0, -3.0, -1.0, -0.5, 0.0, 0.3, 1.0, 2.5, 20.0])


def _phi(x):
    return np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _Phi(x):
    return 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


@pytest.mark.parametrize("module,f,df", [
    (nn.ReLU(), lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float)),
    (nn.Tanh(), np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x)), lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    (nn.GELU(), lambda x: x * _Phi(x), lambda x: _Phi(x) + x * _phi(x)),
    (nn.GELU(approximate="tanh"), _gelu_tanh, None),
], ids=["relu", "tanh", "sigmoid", "gelu", "gelu_tanh"])
def test_activations_values_and_gradients(module, f, df):
    x = t64(XS, requires_grad=True)
    y = module(x)
    np.testing.assert_allclose(y.detach().numpy(), f(XS), rtol=1e-12, atol=1e-12)
    y.sum().backward()
    expected = df(XS) if df is not None else numeric_grad(lambda v: _gelu_tanh(v).sum(), XS)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-7, atol=1e-9)
    # float32 in, float32 out, no overflow at +-20
    y32 = module(gradc.tensor(XS.astype(np.float32)))
    assert y32.dtype is gradc.float32 and np.all(np.isfinite(y32.numpy()))
    np.testing.assert_allclose(y32.numpy(), f(XS), rtol=1e-5, atol=1e-6)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU(approximate="fast")


# ---------------------------------------------------------------------- LayerNorm
def test_layer_norm_matches_formula_and_finite_differences():
    rng = np.random.default_rng(4)
    xv = rng.standard_normal((2, 3, 4)) * 3 + 1
    ln = nn.LayerNorm((3, 4)).double()
    assert ln.weight.shape == (3, 4)
    np.testing.assert_array_equal(ln.weight.detach().numpy(), np.ones((3, 4)))
    np.testing.assert_array_equal(ln.bias.detach().numpy(), np.zeros((3, 4)))
    wv, bv = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    with gradc.no_grad():
        ln.weight.copy_(t64(wv))
        ln.bias.copy_(t64(bv))

    def ref(x, w=wv, b=bv):
        mu = x.mean(axis=(-2, -1), keepdims=True)
        var = ((x - mu) ** 2).mean(axis=(-2, -1), keepdims=True)  # biased, as PyTorch
        return (x - mu) / np.sqrt(var + 1e-5) * w + b

    x = t64(xv, requires_grad=True)
    y = ln(x)
    np.testing.assert_allclose(y.detach().numpy(), ref(xv), rtol=1e-10, atol=1e-10)
    cv = rng.standard_normal(xv.shape)  # a random cotangent makes every entry of the gradient matter
    (y * t64(cv)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), numeric_grad(lambda v: (ref(v) * cv).sum(), xv), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ln.weight.grad.numpy(), (ref(xv, np.ones((3, 4)), 0) * cv).sum(0), rtol=1e-10)
    np.testing.assert_allclose(ln.bias.grad.numpy(), cv.sum(0), rtol=1e-10)
    plain = nn.LayerNorm(4, elementwise_affine=False)
    assert list(plain.parameters()) == []
    with pytest.raises(ShapeError, match="layer_norm"):
        plain(gradc.ones(2, 5))


# ---------------------------------------------------------------------- Embedding
def test_embedding_lookup_and_gradient():
    gradc.manual_seed(5)
    emb = nn.Embedding(5, 3)
    table = emb.weight.detach().numpy()
    assert emb.weight.shape == (5, 3)
    assert 0.5 < table.std() < 1.5  # N(0, 1) init, as PyTorch
    idx = np.array([[0, 2], [4, 2]])
    out = emb(gradc.tensor(idx))
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.detach().numpy(), table[idx])
    cv = np.arange(12.0).reshape(2, 2, 3).astype(np.float32)
    (out * gradc.tensor(cv)).sum().backward()
    expected = np.zeros((5, 3), np.float32)
    np.add.at(expected, idx, cv)  # repeated indices accumulate
    np.testing.assert_array_equal(emb.weight.grad.numpy(), expected)
    with pytest.raises(DTypeError, match="int64"):
        emb(gradc.tensor([0.0, 1.0]))


# ---------------------------------------------------------------------- Dropout
def test_dropout_eval_is_identity():
    d = nn.Dropout(0.5).eval()
    x = gradc.randn(10, 10, requires_grad=True)
    y = d(x)
    np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy())
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((10, 10)))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.7])
def test_dropout_train_statistics(p):
    gradc.manual_seed(6)
    n = 100_000
    d = nn.Dropout(p)
    x = gradc.full((100, 1000), 2.0, requires_grad=True)
    y = d(x)
    out = y.detach().numpy()
    zero = out == 0
    # the fraction dropped is Binomial(n, p) / n: within 5 standard deviations of p
    assert abs(zero.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(out[~zero], 2.0 / (1 - p), rtol=1e-6)  # survivors scaled by 1/(1-p)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.where(zero, 0.0, 1 / (1 - p)), rtol=1e-6)
    # a fresh mask each call
    assert not np.array_equal(d(x).detach().numpy() == 0, zero)


def test_dropout_edge_probabilities():
    x = gradc.randn(4, 4)
    np.testing.assert_array_equal(nn.Dropout(0.0)(x).numpy(), x.numpy())
    np.testing.assert_array_equal(nn.Dropout(1.0)(x).numpy(), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


# ---------------------------------------------------------------------- losses
def test_mse_loss_reductions():
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x = t64(a, requires_grad=True)
    np.testing.assert_allclose(nn.MSELoss()(x, t64(b)).item(), ((a - b) ** 2).mean(), rtol=1e-12)
    np.testing.assert_allclose(nn.MSELoss(reduction="sum")(x, t64(b)).item(), ((a - b) ** 2).sum(), rtol=1e-12)
    none = nn.MSELoss(reduction="none")(x, t64(b))
    np.testing.assert_allclose(none.detach().numpy(), (a - b) ** 2, rtol=1e-12)
    nn.MSELoss()(x, t64(b)).backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (a - b) / a.size, rtol=1e-12)
    with pytest.warns(UserWarning, match=r"target size \(\(4,\)\).*input size \(\(3, 4\)\)"):   # as PyTorch: broadcast
        np.testing.assert_allclose(nn.MSELoss()(x, t64(b[0])).item(), ((a - b[0]) ** 2).mean(), rtol=1e-12)
    with pytest.raises(ShapeError, match=r"\(3, 4\).*\(3,\)"), pytest.warns(UserWarning):
        nn.MSELoss()(x, t64(b[:, 0]))
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")(x, t64(b))


def _log_softmax_ref(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_reductions_and_gradient(reduction):
    rng = np.random.default_rng(8)
    z = rng.standard_normal((5, 4)) * 3
    target = np.array([0, 3, 1, 1, 2])
    x = t64(z, requires_grad=True)
    loss = nn.CrossEntropyLoss(reduction=reduction)(x, gradc.tensor(target))
    per_sample = -_log_softmax_ref(z)[np.arange(5), target]
    expected = {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}[reduction]
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-12)
    (loss if reduction != "none" else loss.sum()).backward()
    # d/dz of -log softmax(z)[t] is softmax(z) - onehot(t), divided by N for the mean
    grad = np.exp(_log_softmax_ref(z)) - np.eye(4)[target]
    np.testing.assert_allclose(x.grad.numpy(), grad / (5 if reduction == "mean" else 1), rtol=1e-10, atol=1e-12)


def test_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 3.0], [5e3, 5e3, 0.0]], dtype=np.float32)
    target = np.array([2, 1, 0])
    x = gradc.tensor(z, requires_grad=True)
    loss = nn.CrossEntropyLoss(reduction="none")(x, gradc.tensor(target))
    # by hand: row 0 picks -1e4 against a max of 1e4 -> 2e4 ; row 1 picks the max -> ~0 ; row 2 ties -> log 2
    np.testing.assert_allclose(loss.detach().numpy(), [2e4, 0.0, math.log(2)], rtol=1e-6, atol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[1, 0, -1], [0, 0, 0], [-0.5, 0.5, 0]], atol=1e-6)
    assert np.all(np.isfinite(x.grad.numpy()))
    np.testing.assert_allclose(F.log_softmax(gradc.tensor(z), 1).numpy(), _log_softmax_ref(z.astype(np.float64)),
                               rtol=1e-6, atol=1e-4)


def test_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    z = (rng.standard_normal((6, 5)) * 4).astype(np.float32)
    target = rng.integers(0, 5, 6)
    x = gradc.tensor(z, requires_grad=True)
    tx = torch.tensor(z, requires_grad=True)
    loss = nn.CrossEntropyLoss()(x, gradc.tensor(target))
    tloss = torch.nn.CrossEntropyLoss()(tx, torch.tensor(target))
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_cross_entropy_checks_targets():
    x = gradc.randn(3, 4)
    with pytest.raises(DTypeError, match="int64"):
        F.cross_entropy(x, gradc.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ShapeError, match=r"\(2,\).*\(3, 4\)"):
        F.cross_entropy(x, gradc.tensor([0, 1]))


def test_small_training_run_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    w1, b1 = rng.standard_normal((8, 4)).astype(np.float32) * 0.5, rng.standard_normal(8).astype(np.float32) * 0.1
    w2, b2 = rng.standard_normal((3, 8)).astype(np.float32) * 0.5, rng.standard_normal(3).astype(np.float32) * 0.1
    xs, ys = rng.standard_normal((16, 4)).astype(np.float32), rng.integers(0, 3, 16)
    ours = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.LayerNorm(8), torch.nn.Linear(8, 3))
    ours.load_state_dict({"0.weight": w1, "0.bias": b1, "2.weight": np.ones(8), "2.bias": np.zeros(8),
                          "3.weight": w2, "3.bias": b2})
    with torch.no_grad():
        for i, (w, b) in ((0, (w1, b1)), (3, (w2, b2))):
            theirs[i].weight.copy_(torch.tensor(w))
            theirs[i].bias.copy_(torch.tensor(b))
    opt = gradc.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        opt.zero_grad()
        topt.zero_grad()
        loss = nn.CrossEntropyLoss()(ours(gradc.tensor(xs)), gradc.tensor(ys))
        tloss = torch.nn.CrossEntropyLoss()(theirs(torch.tensor(xs)), torch.tensor(ys))
        loss.backward()
        tloss.backward()
        opt.step()
        topt.step()
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_checkpoint_migration_hooks_and_assign_load_as_in_pytorch():
    torch = pytest.importorskip("torch")
    for lib in (torch, gradc):
        class Renamed(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.w = lib.nn.Parameter(lib.zeros(2))

            def _load_from_state_dict(self, sd, prefix, *args):   # an old checkpoint called it old_w
                if prefix + "old_w" in sd:
                    sd[prefix + "w"] = sd.pop(prefix + "old_w")
                super()._load_from_state_dict(sd, prefix, *args)
        model = lib.nn.Sequential(Renamed())
        source = {"0.old_w": lib.tensor([4.0, 5.0])}
        assert repr(model.load_state_dict(source)) == "<All keys matched successfully>"
        assert model[0].w.tolist() == [4.0, 5.0] and list(source) == ["0.old_w"]   # the caller's dict is untouched
        lin = lib.nn.Linear(2, 1)
        lin._register_load_state_dict_pre_hook(
            lambda sd, prefix, *a: sd.update({prefix + "bias": sd.pop(prefix + "b")}) if prefix + "b" in sd else None)
        lin.load_state_dict({"weight": lib.ones(1, 2), "b": lib.ones(1) * 3})
        assert lin.bias.tolist() == [3.0]
        other = lib.nn.Linear(2, 1)
        other.load_state_dict({"weight": lib.ones(1, 2, dtype=lib.float64), "bias": lib.zeros(1)}, assign=True)
        assert other.weight.dtype == lib.float64 and isinstance(other.weight, lib.nn.Parameter)
        assert other.weight.requires_grad
