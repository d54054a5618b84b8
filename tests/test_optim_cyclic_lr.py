"""CyclicLR against torch.optim.lr_scheduler.CyclicLR: every mode, a scale_fn of one's own in both
scale modes, uneven up/down steps, per-group rates, momentum and Adam's beta1 cycling; state_dict
round trips; and a compiled training step under it never traces again (lr and momentum/betas are
program inputs), equal to eager."""
import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import GradcError, nn, optim
from gradc.optim.lr_scheduler import CyclicLR


def _rates(lib, opt_name, opt_kw, sched_kw, steps=25, groups=1):
    if lib is gradc:
        ps = [nn.Parameter(gradc.zeros(2)) for _ in range(groups)]
        Opt, Sched = getattr(optim, opt_name), CyclicLR
    else:
        ps = [lib.nn.Parameter(lib.zeros(2)) for _ in range(groups)]
        Opt, Sched = getattr(lib.optim, opt_name), lib.optim.lr_scheduler.CyclicLR
    opt = Opt([{"params": [p]} for p in ps], **opt_kw)
    sched = Sched(opt, **sched_kw)
    out = []
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append([(g["lr"], g.get("momentum"), g.get("betas", (None,))[0]) for g in opt.param_groups])
    return out, sched.get_last_lr(), sched


def _halving(x):
    return 0.5 ** x


CASES = [("SGD", dict(lr=0.1, momentum=0.9), dict(base_lr=0.01, max_lr=0.1, step_size_up=4)),
         ("SGD", dict(lr=0.1, momentum=0.9), dict(base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=5,
                                                  mode="triangular2")),
         ("SGD", dict(lr=0.1, momentum=0.5), dict(base_lr=0.01, max_lr=0.1, step_size_up=4, mode="exp_range",
                                                  gamma=0.9, base_momentum=0.7, max_momentum=0.95)),
         ("SGD", dict(lr=0.1), dict(base_lr=[0.01, 0.02], max_lr=[0.1, 0.3], step_size_up=2, cycle_momentum=False)),
         ("Adam", dict(lr=0.1), dict(base_lr=0.001, max_lr=0.01, step_size_up=3)),
         ("SGD", dict(lr=0.1, momentum=0.9), dict(base_lr=0.01, max_lr=0.1, step_size_up=3, scale_fn=_halving)),
         ("SGD", dict(lr=0.1, momentum=0.9), dict(base_lr=0.01, max_lr=0.1, step_size_up=3, scale_fn=_halving,
                                                  scale_mode="iterations"))]


@pytest.mark.parametrize("opt_name,opt_kw,sched_kw", CASES, ids=[str(i) for i in range(len(CASES))])
def test_matches_torch(opt_name, opt_kw, sched_kw):
    torch = pytest.importorskip("torch")
    groups = 2 if isinstance(sched_kw["base_lr"], list) else 1
    got, last, _ = _rates(gradc, opt_name, opt_kw, sched_kw, groups=groups)
    want, tlast, _ = _rates(torch, opt_name, opt_kw, sched_kw, groups=groups)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        for x, y in zip(a, b):
            np.testing.assert_allclose([v for v in x if v is not None], [v for v in y if v is not None], rtol=1e-13)
    np.testing.assert_allclose(last, tlast, rtol=1e-13)


def test_state_dict_round_trip_resumes_the_schedule():
    full, _, _ = _rates(gradc, "SGD", dict(lr=0.1, momentum=0.9),
                        dict(base_lr=0.01, max_lr=0.1, step_size_up=3, mode="triangular2"), steps=14)
    p = nn.Parameter(gradc.zeros(2))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    sched = CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=3, mode="triangular2")
    for _ in range(6):
        opt.step()
        sched.step()
    saved_opt, saved = opt.state_dict(), sched.state_dict()
    assert saved["_scale_fn_custom"] is None and "optimizer" not in saved
    p2 = nn.Parameter(gradc.zeros(2))
    opt2 = optim.SGD([p2], lr=0.1, momentum=0.9)
    opt2.load_state_dict(saved_opt)
    sched2 = CyclicLR(opt2, base_lr=0.01, max_lr=0.1, step_size_up=3, mode="triangular2", last_epoch=5)
    sched2.load_state_dict(saved)
    rest = []
    for _ in range(8):
        opt2.step()
        sched2.step()
        rest.append([(g["lr"], g["momentum"], None) for g in opt2.param_groups])
    assert rest == full[6:]


def test_bad_options_are_named():
    opt = optim.SGD([nn.Parameter(gradc.zeros(2))], lr=0.1)
    with pytest.raises(GradcError, match="mode='sawtooth'"):
        CyclicLR(opt, 0.01, 0.1, mode="sawtooth")
    with pytest.raises(GradcError, match="max_lr has 2 values"):
        CyclicLR(opt, 0.01, [0.1, 0.2])
    with pytest.raises(GradcError, match="neither momentum nor betas"):
        CyclicLR(optim.Adagrad([nn.Parameter(gradc.zeros(2))]), 0.01, 0.1)
    with pytest.raises(GradcError, match="step_size_up"):
        CyclicLR(opt, 0.01, 0.1, step_size_up=0)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_compiled_step_under_cyclic_lr_does_not_retrace(name):
    def run(compiled):
        gradc.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if name == "sgd" else \
            optim.Adam(model.parameters(), lr=0.01)
        sched = CyclicLR(opt, base_lr=0.001, max_lr=0.05, step_size_up=3)
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
        for _ in range(9):
            losses.append(fn(x, y).item())
            sched.step()
        return losses, [p.detach().numpy().copy() for p in model.parameters()], fn
    ref, ref_p, _ = run(False)
    got, got_p, fn = run(True)
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-6)
    for a, b in zip(got_p, ref_p):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    assert fn.trace_count <= 2, fn.recompile_reasons
