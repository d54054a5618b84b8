"""RMSprop, Adagrad and Adadelta against torch.optim (same initial weights, same gradients, 12
steps, every option, float64 and float32), against NumPy transcriptions of PyTorch's documented
formulas, and under gradc.compile (a whole training step, eager == compiled). Parameter groups with
their own options (the weight-decay / no-decay split of minGPT-style configure_optimizers) against
torch, including state_dict round trips in the middle of training."""
import copy

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import GradcError, nn, optim
from gradc.testing import assert_close

STEPS = 12
SHAPES = [(3, 4), (5,), ()]


def _data(steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    p0 = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    return p0, grads


def _run_gradc(cls, kw, p0, grads, dtype):
    params = [nn.Parameter(gradc.tensor(np.asarray(v, dtype=dtype))) for v in p0]
    opt = cls(params, **kw)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = gradc.tensor(np.asarray(g, dtype=dtype))
        opt.step()
    return [p.detach().numpy() for p in params], opt


def _run_torch(torch, name, kw, p0, grads, dtype):
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    params = [torch.nn.Parameter(torch.tensor(v, dtype=tdt)) for v in p0]
    opt = getattr(torch.optim, name)(params, **kw)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = torch.tensor(g, dtype=tdt)
        opt.step()
    return [p.detach().numpy() for p in params], opt


CASES = [
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.05, alpha=0.9)),
    ("RMSprop", dict(lr=0.01, eps=1e-3)),
    ("RMSprop", dict(lr=0.01, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.8)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.02, alpha=0.95, eps=1e-6, weight_decay=0.05, momentum=0.5, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.2)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.1, eps=1e-2)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.1, weight_decay=0.05, initial_accumulator_value=0.1, eps=1e-6,
                     maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8)),
    ("Adadelta", dict(eps=1e-3)),
    ("Adadelta", dict(weight_decay=0.1)),
    ("Adadelta", dict(lr=2.0, rho=0.95, eps=1e-4, weight_decay=0.01, maximize=True)),
]
IDS = [f"{n}-{'-'.join(sorted(kw)) or 'defaults'}" for n, kw in CASES]


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch(name, kw, dtype):
    torch = pytest.importorskip("torch")
    p0, grads = _data()
    got, opt = _run_gradc(getattr(optim, name), kw, p0, grads, dtype)
    want, topt = _run_torch(torch, name, kw, p0, grads, dtype)
    tol = dict(rtol=1e-11, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    for a, b in zip(got, want):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **tol)
    # the state has torch's names and values too
    for i, p in enumerate(opt.param_groups[0]["params"]):
        tstate = topt.state[topt.param_groups[0]["params"][i]]
        assert set(opt.state[p]) == set(tstate)
        for k, v in tstate.items():
            np.testing.assert_allclose(opt.state[p][k].numpy(), v.detach().numpy(), **tol)
    # and the options matter: each case differs from the defaults
    if kw:
        base, _ = _run_gradc(getattr(optim, name), {}, p0, grads, dtype)
        assert not np.allclose(got[0], base[0], rtol=1e-9, atol=0)


def _rmsprop_reference(p, grads, lr, alpha, eps, momentum, centered):
    """torch.optim.RMSprop's documented algorithm, for one parameter, without weight decay."""
    v, b, g_avg = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for g in grads:
        v = alpha * v + (1 - alpha) * g * g
        denom = v
        if centered:
            g_avg = alpha * g_avg + (1 - alpha) * g
            denom = v - g_avg ** 2
        step = g / (np.sqrt(denom) + eps)
        if momentum > 0:
            b = momentum * b + step
            step = b
        p = p - lr * step
    return p


def _adagrad_reference(p, grads, lr, lr_decay, init, eps):
    s = np.full_like(p, init)
    for t, g in enumerate(grads, start=1):
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (np.sqrt(s) + eps)
    return p


def _adadelta_reference(p, grads, lr, rho, eps):
    v, u = np.zeros_like(p), np.zeros_like(p)
    for g in grads:
        v = rho * v + (1 - rho) * g * g
        dx = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u = rho * u + (1 - rho) * dx * dx
        p = p - lr * dx
    return p


def test_against_documented_formulas():
    p0, grads = _data()
    gs = [g[0] for g in grads]
    for kw in (dict(lr=0.01, alpha=0.9, eps=1e-6, momentum=0.7, centered=True),
               dict(lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, centered=False)):
        got, _ = _run_gradc(optim.RMSprop, kw, p0[:1], [[g] for g in gs], np.float64)
        np.testing.assert_allclose(got[0], _rmsprop_reference(p0[0], gs, **kw), rtol=1e-12)
    got, _ = _run_gradc(optim.Adagrad, dict(lr=0.1, lr_decay=0.03, initial_accumulator_value=0.2, eps=1e-5),
                        p0[:1], [[g] for g in gs], np.float64)
    np.testing.assert_allclose(got[0], _adagrad_reference(p0[0], gs, 0.1, 0.03, 0.2, 1e-5), rtol=1e-12)
    got, _ = _run_gradc(optim.Adadelta, dict(lr=0.7, rho=0.85, eps=1e-4), p0[:1], [[g] for g in gs], np.float64)
    np.testing.assert_allclose(got[0], _adadelta_reference(p0[0], gs, 0.7, 0.85, 1e-4), rtol=1e-12)


def test_defaults_and_state_like_torch():
    p = nn.Parameter(gradc.ones(2))
    implementation = dict(foreach=None, capturable=False, differentiable=False)   # PyTorch's, kept as it keeps them
    assert optim.RMSprop([p]).defaults == dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                                               centered=False, maximize=False, **implementation)
    assert optim.Adadelta([p]).defaults == dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False,
                                                **implementation)
    ada = optim.Adagrad([p], initial_accumulator_value=0.25)
    assert ada.defaults["lr"] == 1e-2 and ada.defaults["eps"] == 1e-10 and ada.defaults["lr_decay"] == 0.0
    # Adagrad's state exists before the first step, as in torch
    sd = ada.state_dict()
    assert sorted(sd["state"][0]) == ["step", "sum"] and sd["state"][0]["step"].item() == 0.0
    np.testing.assert_array_equal(sd["state"][0]["sum"].numpy(), [0.25, 0.25])
    for cls, kw, match in [(optim.RMSprop, dict(alpha=-0.1), "alpha"), (optim.RMSprop, dict(momentum=-1), "momentum"),
                           (optim.Adagrad, dict(lr_decay=-1), "lr_decay"), (optim.Adadelta, dict(rho=1.5), "rho"),
                           (optim.Adadelta, dict(lr=-1.0), "lr")]:
        with pytest.raises(GradcError, match=match):
            cls([p], **kw)


@pytest.mark.parametrize("name,kw", [("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)),
                                     ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
                                     ("Adadelta", dict(lr=1.0, weight_decay=0.01))])
def test_state_dict_round_trip_mid_training_matches_torch(name, kw):
    torch = pytest.importorskip("torch")
    p0, grads = _data(steps=10)
    full, _ = _run_torch(torch, name, kw, p0, grads, np.float64)
    params = [nn.Parameter(gradc.tensor(v)) for v in p0]
    opt = getattr(optim, name)(params, **kw)
    for i, gs in enumerate(grads):
        if i == 5:
            saved = copy.deepcopy(opt.state_dict())
            params = [nn.Parameter(p.detach().clone()) for p in params]
            opt = getattr(optim, name)(params, lr=123.0)  # the group options come back from the state dict
            opt.load_state_dict(saved)
            assert opt.param_groups[0]["lr"] == kw["lr"]
        for p, g in zip(params, gs):
            p.grad = gradc.tensor(g)
        opt.step()
    for a, b in zip(params, full):
        np.testing.assert_allclose(a.detach().numpy(), b, rtol=1e-11, atol=1e-13)


# ---------------------------------------------------------------------- parameter groups
def _gpt_like(lib):
    lib.manual_seed(0)
    return lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.LayerNorm(8), lib.nn.Linear(8, 3))


def _split(model):
    """minGPT/nanoGPT's configure_optimizers: matrices decay, biases and norm weights do not."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return decay, no_decay


def _copy_weights(tmodel, gmodel):
    for tp, gp in zip(tmodel.parameters(), gmodel.parameters()):
        gp.data.copy_(gradc.tensor(tp.detach().numpy()))


@pytest.mark.parametrize("name,kw", [("AdamW", dict(lr=3e-3, betas=(0.9, 0.95))),
                                     ("Adam", dict(lr=1e-2, eps=1e-6)),
                                     ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                     ("RMSprop", dict(lr=1e-2, momentum=0.5)),
                                     ("Adagrad", dict(lr=0.1)), ("Adadelta", dict())])
def test_weight_decay_groups_match_torch_with_resume(name, kw):
    torch = pytest.importorskip("torch")
    tmodel = _gpt_like(torch)
    gmodel = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 3))
    _copy_weights(tmodel, gmodel)

    def make(lib, model):
        decay, no_decay = _split(model)
        return getattr(lib.optim, name)([{"params": decay, "weight_decay": 0.1},
                                         {"params": no_decay, "weight_decay": 0.0, "lr": kw.get("lr", 1.0) / 2}],
                                        **kw)
    topt, gopt = make(torch, tmodel), make(gradc, gmodel)
    assert gopt.param_groups[1]["lr"] == topt.param_groups[1]["lr"]
    assert gopt.param_groups[0]["weight_decay"] == 0.1 and gopt.param_groups[1]["weight_decay"] == 0.0
    rng = np.random.default_rng(1)
    for step in range(12):
        x = rng.standard_normal((5, 4)).astype(np.float32)
        y = rng.integers(0, 3, 5)
        if step == 6:  # resume both from state dicts, the gradc one into a fresh optimizer over a fresh model
            sd = gopt.state_dict()
            tsd = topt.state_dict()
            assert [g["params"] for g in sd["param_groups"]] == [g["params"] for g in tsd["param_groups"]]
            assert sorted(sd["state"]) == sorted(tsd["state"])
            for k in tsd["state"]:
                assert sorted(sd["state"][k]) == sorted(tsd["state"][k])
            fresh = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 3))
            fresh.load_state_dict(gmodel.state_dict())
            gmodel, gopt = fresh, make(gradc, fresh)
            gopt.load_state_dict(copy.deepcopy(sd))
            topt.load_state_dict(tsd)
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.tensor(x)), torch.tensor(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        gloss = F.cross_entropy(gmodel(gradc.tensor(x)), gradc.tensor(y))
        gopt.zero_grad()
        gloss.backward()
        gopt.step()
        assert gloss.item() == pytest.approx(tloss.item(), rel=1e-4, abs=1e-5)
    for tp, gp in zip(tmodel.parameters(), gmodel.parameters()):
        np.testing.assert_allclose(gp.detach().numpy(), tp.detach().numpy(), rtol=2e-4, atol=2e-5)


def test_param_group_forms_and_errors():
    a, b = nn.Parameter(gradc.ones(2)), nn.Parameter(gradc.ones(3))
    opt = optim.AdamW([{"params": a, "weight_decay": 0.0}, {"params": iter([b])}], lr=0.5)
    assert opt.param_groups[0]["params"] == [a] and opt.param_groups[1]["weight_decay"] == 0.01
    c = nn.Parameter(gradc.ones(1))
    opt.add_param_group({"params": [c], "lr": 0.1, "name": "head"})  # extra keys are kept, as in torch
    assert opt.param_groups[2]["betas"] == (0.9, 0.999) and opt.param_groups[2]["name"] == "head"
    with pytest.raises(GradcError, match="more than once"):
        optim.SGD([{"params": [a]}, {"params": [a]}], lr=0.1)
    with pytest.raises(GradcError, match="more than once"):
        opt.add_param_group({"params": [b]})
    with pytest.raises(GradcError, match="single tensor"):
        optim.SGD(a, lr=0.1)
    with pytest.raises(GradcError, match="'params'"):
        opt.add_param_group({"lr": 0.1})


def test_load_state_dict_casts_moments_to_the_parameter_dtype():
    p = nn.Parameter(gradc.ones(3, dtype=gradc.float64))
    opt = optim.RMSprop([p], momentum=0.5)
    p.grad = gradc.ones(3, dtype=gradc.float64)
    opt.step()
    sd = opt.state_dict()
    q = nn.Parameter(gradc.ones(3))
    other = optim.RMSprop([q], momentum=0.5)
    other.load_state_dict(sd)
    assert other.state[q]["square_avg"].dtype is gradc.float32
    assert other.state[q]["momentum_buffer"].dtype is gradc.float32
    assert other.state[q]["step"].dtype is sd["state"][0]["step"].dtype


# ---------------------------------------------------------------------- compiled whole steps and flat buffers
COMPILED = [(optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True, weight_decay=1e-3)),
            (optim.RMSprop, dict(lr=0.01)),
            (optim.Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=1e-3, initial_accumulator_value=0.1)),
            (optim.Adadelta, dict(lr=1.0, weight_decay=1e-3))]


def _train(cls, kw, compiled, flat=False, steps=8):
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    opt = cls(model.parameters(), flat=flat, **kw)
    rng = np.random.default_rng(3)
    batches = [(gradc.tensor(rng.standard_normal((8, 6)).astype(np.float32)), gradc.tensor(rng.integers(0, 3, 8)))
               for _ in range(steps)]

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()
    run = gradc.compile(step, backend="numpy") if compiled else step
    losses = [run(x, y).item() for x, y in batches]
    return model, opt, losses, run


@pytest.mark.parametrize("cls,kw", COMPILED, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(COMPILED)])
def test_compiled_training_step_matches_eager(cls, kw, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    m_e, o_e, l_e, _ = _train(cls, kw, compiled=False)
    m_c, o_c, l_c, run = _train(cls, kw, compiled=True)
    np.testing.assert_allclose(l_c, l_e, rtol=1e-5, atol=1e-6)
    assert l_e[-1] != l_e[0]
    for pe, pc in zip(m_e.parameters(), m_c.parameters()):
        assert_close(pc, pe, rtol=1e-5, atol=1e-6)
        for k in o_e.state[pe]:
            assert_close(o_c.state[pc][k], o_e.state[pe][k], rtol=1e-5, atol=1e-6, msg=k)
    # the update is part of the program: the first call creates .grad (and moments), then one program
    # runs every remaining step (as for SGD and Adam)
    assert run.trace_count <= 2


@pytest.mark.parametrize("cls,kw", COMPILED[::2] + COMPILED[3:], ids=["RMSprop", "Adagrad", "Adadelta"])
def test_flat_buffers_match_per_parameter_updates(cls, kw):
    m_a, o_a, l_a, _ = _train(cls, kw, compiled=False, flat=False)
    m_b, o_b, l_b, _ = _train(cls, kw, compiled=False, flat=True)
    assert l_a == pytest.approx(l_b, rel=1e-6)
    for pa, pb in zip(m_a.parameters(), m_b.parameters()):
        assert_close(pb, pa, rtol=1e-6, atol=1e-7)
    sd_a, sd_b = o_a.state_dict(), o_b.state_dict()
    for i in sd_a["state"]:
        for k, v in sd_a["state"][i].items():
            assert_close(sd_b["state"][i][k], v, rtol=1e-6, atol=1e-7, msg=k)


def test_load_state_dict_takes_a_plain_number_step():
    # an older (or hand-built) checkpoint stores the step count as a Python number, as torch accepts
    p = gradc.nn.Parameter(gradc.ones(2))
    opt = optim.Adam([p], lr=0.1)
    p.grad = gradc.ones(2)
    opt.step()
    sd = opt.state_dict()
    sd["state"][0]["step"] = 5
    again = optim.Adam([p], lr=0.1)
    again.load_state_dict(sd)
    p.grad = gradc.ones(2)
    again.step()
    assert again.state[p]["step"].item() == 6.0 and again.state[p]["step"].dtype is gradc.float32
