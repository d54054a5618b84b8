"""Every optimizer and every PyTorch option it takes, against torch.optim: same initial weights,
same gradients, 12 steps, float64 and float32; state names and values; the options matter (each
case differs from the defaults). Then the whole training step compiled: equal to eager, and a
learning-rate schedule on every optimizer never traces again (options are program inputs)."""
import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import GradcError, nn, optim

SHAPES = [(3, 4), (5,), ()]


def _data(steps, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in SHAPES], [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]


def _run(lib, cls, kw, p0, grads, dtype):
    if lib is gradc:
        params = [nn.Parameter(gradc.tensor(np.asarray(v, dtype=dtype))) for v in p0]
        wrap = lambda g: gradc.tensor(np.asarray(g, dtype=dtype))   # noqa: E731
    else:
        tdt = lib.float64 if dtype == np.float64 else lib.float32
        params = [lib.nn.Parameter(lib.tensor(v, dtype=tdt)) for v in p0]
        wrap = lambda g: lib.tensor(g, dtype=tdt)   # noqa: E731
    opt = cls(params, **kw)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = wrap(g)
        opt.step()
    return [p.detach().numpy() for p in params], opt


CASES = [
    ("SGD", dict(lr=0.1, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.05, maximize=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True, maximize=True)),
    ("AdamW", dict(lr=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.05, weight_decay=0.2, amsgrad=True, maximize=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-4)),
    ("Adamax", dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.05, momentum_decay=0.01, betas=(0.8, 0.95))),
    ("NAdam", dict(lr=0.05, weight_decay=0.1)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.05, betas=(0.5, 0.8))),   # rho_t > 5 from step 7: both branches run
    ("RAdam", dict(lr=0.05, betas=(0.5, 0.8), weight_decay=0.1)),
    ("RAdam", dict(lr=0.05, betas=(0.5, 0.8), weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("Rprop", dict()),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5))),
    ("Rprop", dict(lr=0.05, step_sizes=(0.01, 0.08), maximize=True)),
    ("ASGD", dict()),
    ("ASGD", dict(lr=0.05, lambd=0.01, alpha=0.5, t0=4)),   # t0 inside the run: the averaging starts
    ("ASGD", dict(lr=0.05, t0=3, weight_decay=0.1, maximize=True)),
]
IDS = [f"{n}-{'-'.join(sorted(kw)) or 'defaults'}" for n, kw in CASES]


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch(name, kw, dtype):
    torch = pytest.importorskip("torch")
    p0, grads = _data(12)
    got, opt = _run(gradc, getattr(optim, name), kw, p0, grads, dtype)
    want, topt = _run(torch, getattr(torch.optim, name), kw, p0, grads, dtype)
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == np.float64 else dict(rtol=3e-5, atol=3e-6)
    for a, b in zip(got, want):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **tol)
    for i, p in enumerate(opt.param_groups[0]["params"]):
        tstate = topt.state[topt.param_groups[0]["params"][i]]
        assert set(opt.state[p]) == set(tstate)
        for k, v in tstate.items():
            np.testing.assert_allclose(opt.state[p][k].numpy(), v.detach().numpy(), **tol, err_msg=k)
    ours = {k for k in opt.param_groups[0] if k not in ("params", "flat")}
    assert ours <= set(topt.param_groups[0]), ours - set(topt.param_groups[0])
    if kw:
        base, _ = _run(gradc, getattr(optim, name), {}, p0, grads, dtype)
        assert not np.allclose(got[0], base[0], rtol=1e-9, atol=0)


@pytest.mark.parametrize("name,kw", [("Adamax", dict(betas=(0.9, 1.0))), ("NAdam", dict(momentum_decay=-1)),
                                     ("RAdam", dict(eps=-1)), ("Rprop", dict(etas=(1.5, 1.2))),
                                     ("Rprop", dict(step_sizes=(1.0, 0.1))), ("ASGD", dict(lr=-1))])
def test_bad_options_name_themselves(name, kw):
    with pytest.raises(GradcError, match=name):
        getattr(optim, name)([nn.Parameter(gradc.zeros(2))], **kw)


def _train(make_opt, compiled, steps=8):
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = make_opt(model.parameters())
    sched = optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0 / (1 + e))
    rng = np.random.default_rng(0)
    x = gradc.from_numpy(rng.standard_normal((5, 6), dtype=np.float32))
    y = gradc.from_numpy(rng.integers(0, 3, 5))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    fn = gradc.compile(step) if compiled else step
    losses = []
    for _ in range(steps):
        losses.append(fn(x, y).item())
        sched.step()
    return losses, [p.detach().numpy().copy() for p in model.parameters()], fn


COMPILED = {
    "adam_amsgrad_maximize": lambda ps: optim.Adam(ps, lr=0.05, amsgrad=True, maximize=True),
    "adamw_amsgrad": lambda ps: optim.AdamW(ps, lr=0.05, amsgrad=True),
    "sgd_maximize": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, maximize=True),
    "adamax": lambda ps: optim.Adamax(ps, lr=0.05, weight_decay=0.01),
    "nadam": lambda ps: optim.NAdam(ps, lr=0.05, weight_decay=0.01, decoupled_weight_decay=True),
    "radam": lambda ps: optim.RAdam(ps, lr=0.05, betas=(0.5, 0.8)),
    "rprop": lambda ps: optim.Rprop(ps, lr=0.05),
    "asgd": lambda ps: optim.ASGD(ps, lr=0.05, t0=3),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    "adagrad": lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.01),
    "adadelta": lambda ps: optim.Adadelta(ps, lr=1.0, weight_decay=0.01),
}


@pytest.mark.parametrize("name", sorted(COMPILED))
def test_compiled_step_equals_eager_and_a_schedule_does_not_retrace(name):
    ref_losses, ref_params, _ = _train(COMPILED[name], compiled=False)
    losses, params, fn = _train(COMPILED[name], compiled=True)
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-5, atol=1e-6)
    for a, b in zip(params, ref_params):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    assert fn.trace_count <= 2, fn.recompile_reasons   # the second call may see new optimizer state
    assert not any("lr" in r for r in fn.recompile_reasons), fn.recompile_reasons


def test_named_parameters_keep_their_names_as_in_torch():
    torch = pytest.importorskip("torch")
    g, t = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    og = optim.AdamW(g.named_parameters(), lr=0.1)
    ot = torch.optim.AdamW(t.named_parameters(), lr=0.1)
    assert og.param_groups[0]["param_names"] == ot.param_groups[0]["param_names"] == ["weight", "bias"]
    assert og.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]
    two = optim.SGD([{"params": [("w", g.weight)]}, {"params": [("b", g.bias)], "lr": 0.5}], lr=0.1)
    assert [grp["param_names"] for grp in two.param_groups] == [["w"], ["b"]]
    with pytest.raises(GradcError, match="got a mix"):
        optim.SGD([("w", g.weight), g.bias], lr=0.1)
    with pytest.raises(GradcError, match="got a mix"):
        optim.SGD([{"params": [("w", g.weight)]}, {"params": [g.bias]}], lr=0.1)
    with pytest.raises(GradcError, match="ordered collection"):
        optim.SGD({g.weight, g.bias}, lr=0.1)


GROUPS = [("Adamax", dict(lr=0.01), dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1)),
          ("NAdam", dict(lr=0.01), dict(lr=0.05, momentum_decay=0.01, decoupled_weight_decay=True,
                                         weight_decay=0.1)),
          ("RAdam", dict(lr=0.01), dict(lr=0.05, betas=(0.5, 0.8))),
          ("Rprop", dict(lr=0.01), dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-4, 1.0))),
          ("ASGD", dict(lr=0.01), dict(lr=0.05, lambd=0.01, t0=3)),
          ("Adam", dict(lr=0.01), dict(lr=0.05, amsgrad=True, maximize=True))]


@pytest.mark.parametrize("name,defaults,own", GROUPS, ids=[g[0] for g in GROUPS])
def test_parameter_groups_with_their_own_options_match_torch(name, defaults, own):
    torch = pytest.importorskip("torch")
    p0, grads = _data(10, seed=1)
    gp = [nn.Parameter(gradc.tensor(v)) for v in p0]
    tp = [torch.nn.Parameter(torch.tensor(v)) for v in p0]
    go = getattr(optim, name)([{"params": gp[:1]}, {"params": gp[1:], **own}], **defaults)
    to = getattr(torch.optim, name)([{"params": tp[:1]}, {"params": tp[1:], **own}], **defaults)
    for step, gs in enumerate(grads):
        for a, b, g in zip(gp, tp, gs):
            a.grad, b.grad = gradc.tensor(g), torch.tensor(g)
        go.step(), to.step()
        if step == 4:   # a round trip through state_dict in the middle, in both
            saved, tsaved = go.state_dict(), to.state_dict()
            go = getattr(optim, name)([{"params": gp[:1]}, {"params": gp[1:], **own}], **defaults)
            go.load_state_dict(saved)
            to = getattr(torch.optim, name)([{"params": tp[:1]}, {"params": tp[1:], **own}], **defaults)
            to.load_state_dict(tsaved)
    for a, b in zip(gp, tp):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-12)
