"""Recurrent layers against PyTorch (float64): outputs and final states, gradients with respect to
inputs, initial states and every parameter, for each option; PyTorch state dicts load unchanged;
compiled (the time loop unrolled) equals eager."""
import math

import numpy as np
import pytest

import gradc
from gradc import ShapeError, nn
from nn_parity import check_module, load_from_torch

torch = pytest.importorskip("torch")


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def pair(name, *args, **kwargs):
    return getattr(nn, name)(*args, **kwargs).double(), getattr(torch.nn, name)(*args, **kwargs).double()


CONFIGS = [
    dict(),
    dict(num_layers=2),
    dict(bidirectional=True),
    dict(num_layers=2, bidirectional=True, batch_first=True),
    dict(bias=False, batch_first=True),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=[str(c) for c in CONFIGS])
@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_recurrent_layers_match_torch(name, cfg):
    g, t = pair(name, 3, 4, **cfg)
    assert [k for k, _ in g.named_parameters()] == [k for k, _ in t.named_parameters()]
    x = randn(2, 5, 3) if cfg.get("batch_first") else randn(5, 2, 3)
    # compiling unrolls the loop: a few configurations cover it (the cell code is shared)
    check_module(torch, g, t, [x], compiled=cfg == {} or (name == "LSTM" and cfg is CONFIGS[3]))


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_initial_states_unbatched_and_relu(name):
    layers, dirs = 2, 2
    kw = dict(num_layers=layers, bidirectional=True)
    if name == "RNN":
        kw["nonlinearity"] = "relu"
    g, t = pair(name, 3, 4, **kw)
    h0 = randn(layers * dirs, 2, 4, seed=1)
    x = randn(3, 2, 3)
    if name == "LSTM":
        c0 = randn(layers * dirs, 2, 4, seed=2)
        check_module(torch, g, t, [x, h0, c0], call=lambda m, x, h, c: m(x, (h, c)))
        check_module(torch, g, t, [x[:, 0], h0[:, 0], c0[:, 0]], call=lambda m, x, h, c: m(x, (h, c)),
                     compiled=False)
    else:
        check_module(torch, g, t, [x, h0], call=lambda m, x, h: m(x, h), compiled=False)
        check_module(torch, g, t, [x[:, 0], h0[:, 0]], call=lambda m, x, h: m(x, h), compiled=False)


def test_lstm_proj_size():
    g, t = pair("LSTM", 3, 5, num_layers=2, proj_size=2, bidirectional=True)
    assert g.state_dict()["weight_hr_l1_reverse"].shape == (2, 5)
    check_module(torch, g, t, [randn(4, 2, 3)], compiled=False)


def test_dropout_between_layers():
    g, t = pair("LSTM", 3, 4, num_layers=3, dropout=0.5)
    load_from_torch(g, t)
    g.eval(), t.eval()  # eval mode: dropout is off, outputs equal torch's
    check_module(torch, g, t, [randn(5, 2, 3)], compiled=False)
    g.train()
    x = gradc.tensor(randn(5, 2, 3))
    gradc.manual_seed(0)
    a = g(x)[0].detach().numpy()
    gradc.manual_seed(1)
    b = g(x)[0].detach().numpy()
    assert not np.allclose(a, b)  # training: random masks between layers
    single = nn.LSTM(3, 4, num_layers=1, dropout=0.0).double()
    single.load_state_dict({k: v for k, v in g.state_dict().items() if k.endswith("_l0")})
    np.testing.assert_allclose(g(x)[1][0].detach().numpy()[0], single(x)[1][0].detach().numpy()[0])  # layer 0


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_torch(name):
    g, t = pair(name, 3, 4)
    assert [k for k, _ in g.named_parameters()] == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    x, h = randn(2, 3), randn(2, 4, seed=1)
    check_module(torch, g, t, [x])
    if name == "LSTMCell":
        c = randn(2, 4, seed=2)
        check_module(torch, g, t, [x, h, c], call=lambda m, x, h, c: m(x, (h, c)))
        check_module(torch, g, t, [x[0], h[0], c[0]], call=lambda m, x, h, c: m(x, (h, c)), compiled=False)
    else:
        check_module(torch, g, t, [x, h])
        check_module(torch, g, t, [x[0], h[0]], compiled=False)
    check_module(torch, *pair(name, 3, 4, bias=False), [x])


def test_init_and_layout():
    g = nn.GRU(6, 8, num_layers=2, bidirectional=True)
    shapes = {k: v.shape for k, v in g.state_dict().items()}
    assert shapes["weight_ih_l0"] == (24, 6) and shapes["weight_ih_l1"] == (24, 16)
    assert shapes["weight_hh_l1_reverse"] == (24, 8) and shapes["bias_hh_l0_reverse"] == (24,)
    assert list(shapes) == list(torch.nn.GRU(6, 8, num_layers=2, bidirectional=True).state_dict())
    bound = 1 / math.sqrt(8)
    values = np.concatenate([p.detach().numpy().ravel() for p in g.parameters()])
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.95 * bound
    assert abs(values.std() - bound / math.sqrt(3)) < 0.1 * bound


def test_compiled_lstm_retraces_per_length_and_errors():
    g = nn.LSTM(3, 4)
    step = gradc.compile(g)
    with gradc.no_grad():
        for n in (5, 5, 7):
            x = gradc.tensor(randn(n, 2, 3).astype(np.float32))
            np.testing.assert_allclose(step(x)[0].numpy(), g(x)[0].numpy(), rtol=1e-5, atol=1e-6)
    assert step.trace_count == 2
    with pytest.raises(ShapeError, match="input has 5 features"):
        g(gradc.zeros(4, 2, 5))
    with pytest.raises(ShapeError, match=r"expected h_0 of shape \(1, 2, 4\), got \(2, 2, 4\)"):
        g(gradc.zeros(4, 2, 3), (gradc.zeros(2, 2, 4), gradc.zeros(1, 2, 4)))
    with pytest.raises(ShapeError, match="tuple"):
        g(gradc.zeros(4, 2, 3), gradc.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="proj_size"):
        nn.RNNBase("GRU", 3, 4, proj_size=2)
