"""Adam's step count shared by the parameters that step together: the bias corrections are one
scalar chain per step (a compiled step holds it once, not once per parameter), while every
parameter's count stays its own: one that misses a step (no gradient) falls behind as in PyTorch."""
import numpy as np
import pytest

import gradc
from gradc import nn, optim
from gradc.testing import assert_close


def _model():
    gradc.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def _data():
    rng = np.random.default_rng(0)
    return gradc.from_numpy(rng.standard_normal((5, 6)).astype(np.float32))


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
def test_compiled_step_computes_the_bias_corrections_once(cls, monkeypatch, tmp_path):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    results = []
    for compiled in (False, True):
        model = _model()
        opt = cls(model.parameters(), lr=1e-2)
        x = _data()

        def step(x):
            opt.zero_grad()
            loss = (model(x) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        fn = gradc.compile(step, backend="numpy") if compiled else step
        losses = [float(fn(x).detach().numpy()) for _ in range(4)]
        results.append((losses, [p.detach().numpy().copy() for p in model.parameters()]))
        if compiled:
            graph = fn.lower(x).graph
            pows = [n for n, d in graph.nodes(data=True) if d["op"] == "pow" and d["shape"] == ()]
            assert len(pows) == 2, pows   # beta1 ** t and beta2 ** t, for all four parameters together
    (want, want_p), (got, got_p) = results
    assert_close(np.array(got), np.array(want), rtol=1e-6, atol=1e-7)
    for g, w in zip(got_p, want_p):
        assert_close(g, w, rtol=1e-6, atol=1e-7)


def test_a_parameter_that_misses_steps_keeps_its_own_count():
    torch = pytest.importorskip("torch")
    model = _model()
    params = list(model.parameters())
    tparams = [torch.nn.Parameter(torch.from_numpy(p.detach().numpy().copy())) for p in params]
    opt, topt = optim.Adam(params, lr=1e-2), torch.optim.Adam(tparams, lr=1e-2)
    rng = np.random.default_rng(1)
    for k in range(5):
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
        skip = 1 if k in (1, 2) else None   # the first layer's bias gets no gradient on steps 1 and 2
        for i, (p, tp, g) in enumerate(zip(params, tparams, grads)):
            p.grad = None if i == skip else gradc.from_numpy(g)
            tp.grad = None if i == skip else torch.from_numpy(g)
        opt.step()
        topt.step()
    for p, tp in zip(params, tparams):
        assert float(opt.state[p]["step"].item()) == float(topt.state[tp]["step"])
        assert_close(p.detach().numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert opt.state[params[1]]["step"].item() == 3.0 and opt.state[params[0]]["step"].item() == 5.0


def test_state_dict_counts_are_independent_tensors():
    model = _model()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    x = _data()
    for _ in range(2):
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        opt.step()
    sd = opt.state_dict()
    sd["state"][0]["step"].add_(10.0)
    assert [float(s["step"].item()) for s in sd["state"].values()] == [12.0, 2.0, 2.0, 2.0]
    other = optim.Adam(_model().parameters(), lr=1e-2)
    other.load_state_dict(opt.state_dict())
    assert [float(s["step"].item()) for s in other.state.values()] == [2.0] * 4
