"""Activations, containers, Embedding(padding_idx) and nn.init against PyTorch: float64 values and
gradients (including at the kinks, where each piecewise function must pick PyTorch's gradient),
container registration and state-dict names, and the initialisers' distributions."""
import math

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import ShapeError, nn
from gradc.nn import init
from nn_parity import check_module, load_from_torch

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# values on both sides of every kink, the kinks themselves, and large magnitudes (overflow checks)
POINTS = np.array([-50.0, -20.5, -6.0, -3.0, -2.9, -1.0, -0.5, -1e-3, 0.0, 1e-3, 0.25, 0.5, 1.0, 2.9, 3.0, 5.9,
                   6.0, 7.0, 19.9, 20.5, 50.0, 300.0])

ACTIVATIONS = [
    ("LeakyReLU", {}), ("LeakyReLU", dict(negative_slope=0.2)), ("SiLU", {}), ("ELU", {}), ("ELU", dict(alpha=0.5)),
    ("SELU", {}), ("CELU", dict(alpha=1.5)), ("Mish", {}), ("Softplus", {}), ("Softplus", dict(beta=2.0, threshold=5)),
    ("Hardtanh", {}), ("Hardtanh", dict(min_val=-2.0, max_val=3.0)), ("ReLU6", {}), ("Hardsigmoid", {}),
    ("Hardswish", {}), ("LogSigmoid", {}), ("Softsign", {}), ("Tanhshrink", {}), ("Threshold", dict(threshold=0.5,
                                                                                                     value=-1.0)),
    ("Hardshrink", {}), ("Softshrink", dict(lambd=1.0)), ("ReLU", {}), ("Tanh", {}), ("Sigmoid", {}), ("GELU", {}),
]


@pytest.mark.parametrize("name,kw", ACTIVATIONS, ids=[f"{n}{kw}" for n, kw in ACTIVATIONS])
def test_activation_matches_torch_including_kinks(name, kw):
    x = np.concatenate([POINTS, np.random.default_rng(0).standard_normal(10) * 3])
    if name == "Mish":  # torch's mish has no linear regime: tanh(softplus(300)) is exactly 1 either way
        x = x[np.abs(x) < 60]
    check_module(torch, getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw), [x], compiled=False)


@pytest.mark.parametrize("name", ["SiLU", "Mish", "Softplus", "Hardswish", "LeakyReLU", "ELU"])
def test_activation_compiled(name):
    check_module(torch, getattr(nn, name)(), getattr(torch.nn, name)(), [np.random.default_rng(1).standard_normal(
        (3, 4)) * 4])


def test_softplus_precision_for_tiny_outputs():
    x = np.array([-30.0, -18.0, -10.0], dtype=np.float32)
    np.testing.assert_allclose(F.softplus(gradc.tensor(x)).numpy(), TF.softplus(torch.tensor(x)).numpy(), rtol=1e-6)


def test_prelu_glu_softmax_modules():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    g, t = nn.PReLU(3).double(), torch.nn.PReLU(3).double()
    with torch.no_grad():
        t.weight.copy_(torch.tensor([0.1, -0.3, 0.7]))
    check_module(torch, g, t, [x])
    check_module(torch, nn.PReLU().double(), torch.nn.PReLU().double(), [x])
    for name, kw in (("GLU", dict(dim=1)), ("GLU", {}), ("LogSoftmax", dict(dim=1)), ("Softmin", dict(dim=-1)),
                     ("Softmax2d", {})):
        arr = x if name != "GLU" or kw else np.random.default_rng(2).standard_normal((2, 3, 6))
        if name == "GLU" and kw:
            arr = np.random.default_rng(2).standard_normal((2, 4, 3))
        check_module(torch, getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw), [arr], compiled=False)
    with pytest.raises(ShapeError, match="weight has 4 entries"):
        F.prelu(gradc.zeros(2, 3), gradc.zeros(4))
    with pytest.raises(ShapeError, match="odd size"):
        F.glu(gradc.zeros(2, 3))


def test_inplace_activation_writes_the_input():
    x = gradc.tensor([-1.0, 0.5, 7.0])
    y = nn.ReLU6(inplace=True)(x)
    assert y is x
    np.testing.assert_array_equal(x.numpy(), [0.0, 0.5, 6.0])
    w = gradc.tensor([-1.0, 2.0], requires_grad=True)
    h = w * 1.0
    F.leaky_relu(h, 0.1, inplace=True).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [0.1, 1.0])


def test_feature_dropout_zeroes_whole_channels():
    gradc.manual_seed(0)
    x = gradc.ones(8, 16, 3, 3)
    y = nn.Dropout2d(0.5)(x).numpy()
    per_channel = y.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))
    assert 0.2 < (per_channel[..., 0] == 0).mean() < 0.8
    d = nn.Dropout2d(0.5).eval()
    assert d(x) is x
    y1 = F.dropout1d(gradc.ones(4, 32, 5), 0.25).numpy()
    assert np.all((y1 == 0).all(-1) | np.isclose(y1, 1 / 0.75).all(-1))
    # PyTorch's rules for other ranks: a 3-D input is (N, C, L), one draw per (sample, channel); a 2-D
    # input drops elements; both warn
    with pytest.warns(UserWarning, match=r"\(N, C, L\)"):
        y3 = F.dropout2d(gradc.ones(6, 16, 5), 0.5).numpy()
    assert np.all((y3 == 0).all(-1) | (y3 == 2.0).all(-1)) and 0.2 < (y3[..., 0] == 0).mean() < 0.8
    with pytest.warns(UserWarning, match="deprecated"):
        y2 = F.dropout2d(gradc.ones(40, 30), 0.5).numpy()
    assert 0.3 < (y2 == 0).mean() < 0.7 and not ((y2 == 0).all(1) | (y2 == 2).all(1)).all()
    with pytest.raises(ShapeError, match="at least 2 dims"):
        F.dropout2d(gradc.ones(3), 0.5)
    y4 = F.dropout3d(gradc.ones(16, 2, 2, 2), 0.5).numpy().reshape(16, 8)   # unbatched (C, D, H, W)
    assert np.all((y4 == 0).all(-1) | (y4 == 2.0).all(-1))


# ---------------------------------------------------------------------------- containers
def test_module_dict_and_module_list():
    d = nn.ModuleDict({"a": nn.Linear(2, 3), "b": nn.ReLU()})
    d["c"] = nn.Linear(3, 1)
    assert list(d.keys()) == ["a", "b", "c"] and "b" in d and len(d) == 3
    assert [k for k, _ in d.named_parameters()] == ["a.weight", "a.bias", "c.weight", "c.bias"]
    d.pop("b")
    assert list(d) == ["a", "c"]
    lst = nn.ModuleList([nn.Linear(1, 1), nn.Linear(1, 2)])
    lst.insert(1, nn.Linear(1, 3))
    lst += [nn.Linear(1, 4)]
    assert [m.out_features for m in lst] == [1, 3, 2, 4]
    assert list(lst.state_dict())[2] == "1.weight" and lst.state_dict()["1.weight"].shape == (3, 1)
    del lst[0]
    assert [m.out_features for m in lst] == [3, 2, 4] and list(lst.state_dict())[0] == "0.weight"
    assert isinstance(lst[1:], nn.ModuleList) and lst[-1].out_features == 4
    lst[0] = nn.Identity()
    assert isinstance(lst[0], nn.Identity)
    with pytest.raises(IndexError):
        lst[5]
    tm = torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Linear(2, 3)])
    gm = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 3)])
    load_from_torch(gm, tm)


def test_parameter_list_and_dict():
    pl = nn.ParameterList([nn.Parameter(gradc.ones(2)), gradc.zeros(3)])
    pl.append(gradc.ones(1))
    assert [k for k, _ in pl.named_parameters()] == ["0", "1", "2"]
    assert isinstance(pl[1], nn.Parameter) and pl[1].requires_grad
    pd = nn.ParameterDict({"alpha": gradc.ones(2)})
    pd["beta"] = nn.Parameter(gradc.zeros(1))
    assert list(pd.keys()) == ["alpha", "beta"] and pd["beta"].shape == (1,)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.scales = nn.ParameterDict({"a": gradc.ones(2)})
            self.extra = nn.ParameterList([gradc.ones(3)])

    assert list(M().state_dict()) == ["scales.a", "extra.0"]
    opt = gradc.optim.SGD(M().parameters(), lr=0.1)
    assert len(opt.param_groups[0]["params"]) == 2


def test_flatten_unflatten_identity():
    x = np.random.default_rng(0).standard_normal((2, 12, 5))
    check_module(torch, nn.Unflatten(1, (3, -1)), torch.nn.Unflatten(1, (3, -1)), [x])
    check_module(torch, nn.Flatten(0, 1), torch.nn.Flatten(0, 1), [x], compiled=False)


# ---------------------------------------------------------------------------- Embedding
def test_embedding_padding_idx_row_is_zero_and_gets_no_gradient():
    g = nn.Embedding(6, 3, padding_idx=2)
    np.testing.assert_array_equal(g.weight.detach().numpy()[2], 0.0)
    t = torch.nn.Embedding(6, 3, padding_idx=2)
    with torch.no_grad():
        t.weight[2] = 1.5  # a non-zero padding row: the lookup returns it, its gradient stays zero
    idx = np.array([[0, 2, 5], [2, 2, 1]])
    check_module(torch, g.double(), t.double(), [idx])
    gm = nn.Embedding.from_pretrained(gradc.tensor(np.arange(12.0).reshape(4, 3)), padding_idx=-1)
    assert not gm.weight.requires_grad and gm.padding_idx == 3
    with pytest.raises(ValueError, match="scale_grad_by_freq"):
        nn.Embedding(3, 2, scale_grad_by_freq=True)


# ---------------------------------------------------------------------------- init
def test_calculate_gain_matches_torch():
    for name, param in (("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                        ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)):
        assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))
    with pytest.raises(ValueError):
        init.calculate_gain("swish")


@pytest.mark.parametrize("fn,kw,std", [
    ("kaiming_uniform_", dict(a=0.0, mode="fan_in", nonlinearity="relu"), math.sqrt(2 / 80)),
    ("kaiming_normal_", dict(mode="fan_out", nonlinearity="relu"), math.sqrt(2 / 120)),
    ("kaiming_normal_", dict(a=math.sqrt(5)), math.sqrt(1 / 3) / math.sqrt(80)),
    ("xavier_uniform_", dict(gain=2.0), 2.0 * math.sqrt(2 / 200)),
    ("xavier_normal_", {}, math.sqrt(2 / 200)),
    ("normal_", dict(mean=1.0, std=0.3), 0.3),
    ("uniform_", dict(a=-2.0, b=2.0), 4 / math.sqrt(12)),
    ("trunc_normal_", dict(std=1.0, a=-1.0, b=1.0), 0.5376),
])
def test_initialisers_have_pytorchs_spread(fn, kw, std):
    gradc.manual_seed(0)
    w = gradc.empty(30, 20, 4)                          # fan_in 80, fan_out 120
    getattr(init, fn)(w, **kw)
    v = w.numpy()
    assert abs(v.std() - std) < 0.05 * std
    t = torch.empty(30, 20, 4)
    getattr(torch.nn.init, fn)(t, **kw)
    assert abs(v.std() - t.std().item()) < 0.07 * std
    if fn == "trunc_normal_":
        assert v.min() >= -1.0 and v.max() <= 1.0


def test_constant_zeros_ones_eye_orthogonal():
    w = gradc.empty(3, 4)
    assert (init.constant_(w, 0.5).numpy() == 0.5).all() and (init.zeros_(w).numpy() == 0).all()
    assert (init.ones_(w).numpy() == 1).all()
    np.testing.assert_array_equal(init.eye_(w).numpy(), np.eye(3, 4))
    for shape in ((5, 3), (3, 5), (4, 2, 3)):
        q = init.orthogonal_(gradc.empty(*shape), gain=2.0).numpy().reshape(shape[0], -1)
        small = min(q.shape)
        gram = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
        np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-5)
    with pytest.raises(ValueError, match="fewer than 2 dims"):
        init.xavier_uniform_(gradc.empty(4))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(gradc.empty(4, 4), mode="fan_avg")


def test_init_helpers_custom_layers_call():
    w = gradc.empty(6, 4, 3, 3)
    assert nn.init._calculate_fan_in_and_fan_out(w) == (36, 54) and nn.init._calculate_correct_fan(w, "fan_out") == 54
    nn.init.dirac_(w, groups=2)   # the identity convolution: each group's channel d to channel d, at the centre
    want = np.zeros((6, 4, 3, 3), np.float32)
    for g in range(2):
        for d in range(3):
            want[g * 3 + d, d, 1, 1] = 1.0
    np.testing.assert_array_equal(w.numpy(), want)
    x = gradc.randn(1, 4, 5, 5)
    np.testing.assert_allclose(F.conv2d(x, nn.init.dirac_(gradc.empty(4, 4, 3, 3)), padding=1).numpy(), x.numpy())
    s = nn.init.sparse_(gradc.empty(10, 5), 0.3)
    assert (s == 0).sum(0).tolist() == [3] * 5
    with pytest.warns(UserWarning, match="zero-element"):
        lin = nn.Linear(0, 3)
    assert lin(gradc.ones(2, 0)).tolist() == [lin.bias.tolist()] * 2
