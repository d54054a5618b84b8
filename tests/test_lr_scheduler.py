"""gradc.optim.lr_scheduler against torch.optim.lr_scheduler: the same schedules over 30+ steps
(learning rates and, for OneCycleLR, the momentum it cycles), two parameter groups with their own
rates, resuming from state_dict mid-run, step(epoch) closed forms, and hand-computed values."""
import copy
import math
import warnings

import numpy as np
import pytest

import gradc
from gradc import GradcError, nn, optim
from gradc.optim import lr_scheduler as S

STEPS = 36


def _gradc_opt(kind="SGD"):
    a, b = nn.Parameter(gradc.ones(2)), nn.Parameter(gradc.ones(3))
    groups = [{"params": [a]}, {"params": [b], "lr": 0.05}]
    if kind == "SGD":
        return optim.SGD(groups, lr=0.1, momentum=0.9)
    return getattr(optim, kind)(groups, lr=0.1)


def _torch_opt(torch, kind="SGD"):
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    groups = [{"params": [a]}, {"params": [b], "lr": 0.05}]
    if kind == "SGD":
        return torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    return getattr(torch.optim, kind)(groups, lr=0.1)


class Warmup:
    """A callable object (its attributes are scheduler state, as in PyTorch)."""

    def __init__(self, n):
        self.n = n

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.n)


CASES = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
    "StepLR-default-gamma": lambda m, o: m.StepLR(o, 4),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[5, 12, 12, 30], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
    "CosineAnnealingLR-default": lambda m, o: m.CosineAnnealingLR(o, T_max=25),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lr_lambda=lambda e: 0.97 ** e),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, lr_lambda=[lambda e: 1.0 / (e + 1), Warmup(8)]),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lr_lambda=lambda e: 0.95),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=12),
    "LinearLR-default": lambda m, o: m.LinearLR(o),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=6),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=20, power=2.0),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=STEPS + 1),
    "OneCycleLR-linear-3phase": lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 0.2], epochs=4, steps_per_epoch=10,
                                                          anneal_strategy="linear", three_phase=True,
                                                          pct_start=0.25, div_factor=10.0),
    "OneCycleLR-no-momentum": lambda m, o: m.OneCycleLR(o, max_lr=0.3, total_steps=40, cycle_momentum=False),
    "SequentialLR": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=5),
                                                    m.CosineAnnealingLR(o, T_max=20)], milestones=[5]),
    "SequentialLR-3": lambda m, o: m.SequentialLR(o, [m.ConstantLR(o, factor=0.2, total_iters=3),
                                                      m.ExponentialLR(o, gamma=0.8),
                                                      m.StepLR(o, step_size=4)], milestones=[4, 15]),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.5, total_iters=4),
                                                         m.ExponentialLR(o, gamma=0.9)]),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.01),
}
OPT_KIND = {"OneCycleLR": "Adam", "OneCycleLR-linear-3phase": "SGD"}


def _observe(opt):
    out = []
    for g in opt.param_groups:
        out.append(g["lr"])
        if "momentum" in g:
            out.append(g["momentum"])
        if "betas" in g:
            out.append(g["betas"][0])
    return out


def _run(sched, opt, steps, trace):
    for _ in range(steps):
        opt.step()
        sched.step()
        trace.append(list(sched.get_last_lr()) + _observe(opt))


@pytest.mark.parametrize("name", list(CASES))
def test_schedule_matches_torch(name):
    torch = pytest.importorskip("torch")
    kind = OPT_KIND.get(name, "SGD")
    g_opt, t_opt = _gradc_opt(kind), _torch_opt(torch, kind)
    g_s, t_s = CASES[name](S, g_opt), CASES[name](torch.optim.lr_scheduler, t_opt)
    # the constructor's initial step: lrs and initial_lr in every group, as torch sets them
    assert _observe(g_opt) == pytest.approx(_observe(t_opt), rel=1e-12)
    assert [g["initial_lr"] for g in g_opt.param_groups] == pytest.approx(
        [g["initial_lr"] for g in t_opt.param_groups], rel=1e-12)
    assert g_s.get_last_lr() == pytest.approx(t_s.get_last_lr(), rel=1e-12)
    steps = 40 if "OneCycle" in name and "no-momentum" in name else (39 if "3phase" in name else STEPS)
    got, want = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _run(g_s, g_opt, steps, got)
        _run(t_s, t_opt, steps, want)
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-12, atol=1e-15)
    assert len({tuple(r) for r in got}) > 1  # the schedule actually changes the rates


@pytest.mark.parametrize("name", list(CASES))
def test_state_dict_resume_continues_identically(name):
    kind = OPT_KIND.get(name, "SGD")
    split = 13
    opt = _gradc_opt(kind)
    sched = CASES[name](S, opt)
    full = []
    _run(sched, opt, split, full)
    saved_opt, saved_sched = copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict())
    assert "optimizer" not in saved_sched and saved_sched.get("last_epoch", split) == split
    _run(sched, opt, STEPS - split, full)

    opt2 = _gradc_opt(kind)
    sched2 = CASES[name](S, opt2)       # built fresh (its own initial step) ...
    opt2.load_state_dict(saved_opt)      # ... then both restored, in the order torch documents
    sched2.load_state_dict(saved_sched)
    assert sched2.get_last_lr() == full[split - 1][:2]
    resumed = full[:split]
    _run(sched2, opt2, STEPS - split, resumed)
    np.testing.assert_array_equal(np.array(resumed), np.array(full))


def test_state_dict_resume_matches_torch_after_resume():
    torch = pytest.importorskip("torch")
    g_opt, t_opt = _gradc_opt(), _torch_opt(torch)
    g_s = S.SequentialLR(g_opt, [S.LinearLR(g_opt, 0.1, total_iters=4), S.MultiStepLR(g_opt, [10, 20])], [4])
    tm = torch.optim.lr_scheduler
    t_s = tm.SequentialLR(t_opt, [tm.LinearLR(t_opt, 0.1, total_iters=4), tm.MultiStepLR(t_opt, [10, 20])], [4])
    _run(g_s, g_opt, 9, [])
    _run(t_s, t_opt, 9, [])
    g_sd, t_sd = g_s.state_dict(), t_s.state_dict()
    assert g_sd["last_epoch"] == t_sd["last_epoch"] and g_sd["_milestones"] == t_sd["_milestones"]
    assert [s["last_epoch"] for s in g_sd["_schedulers"]] == [s["last_epoch"] for s in t_sd["_schedulers"]]
    assert g_sd["_schedulers"][1]["milestones"] == dict(t_sd["_schedulers"][1]["milestones"])


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR",
                                  "ConstantLR", "PolynomialLR", "CosineAnnealingWarmRestarts"])
def test_step_with_epoch_uses_the_closed_form_like_torch(name):
    torch = pytest.importorskip("torch")
    g_opt, t_opt = _gradc_opt(), _torch_opt(torch)
    g_s, t_s = CASES[name](S, g_opt), CASES[name](torch.optim.lr_scheduler, t_opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in (3, 17, 4, 30, 0, 11):
            g_s.step(epoch)
            t_s.step(epoch)
            assert g_s.get_last_lr() == pytest.approx(t_s.get_last_lr(), rel=1e-12)
    if name != "CosineAnnealingWarmRestarts":  # (torch does not warn there either: epochs are its API)
        with pytest.warns(UserWarning, match="deprecated"):
            g_s.step(5)


def test_reduce_lr_on_plateau_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    metrics = list(np.concatenate([np.linspace(1.0, 0.5, 8), 0.5 + 0.01 * rng.random(40)]))
    for kw in (dict(), dict(mode="max", factor=0.5, patience=2, threshold=0.01, threshold_mode="abs",
                            cooldown=2, min_lr=[0.02, 0.001]),
               dict(patience=1, cooldown=1, eps=0.01, min_lr=0.004)):
        g_opt, t_opt = _gradc_opt(), _torch_opt(torch)
        g_s = S.ReduceLROnPlateau(g_opt, **kw)
        t_s = torch.optim.lr_scheduler.ReduceLROnPlateau(t_opt, **kw)
        got, want = [], []
        for i, m in enumerate(metrics):
            if i == 20:  # resume mid-run from the state dict
                sd = copy.deepcopy(g_s.state_dict())
                g_s = S.ReduceLROnPlateau(g_opt, **kw)
                g_s.load_state_dict(sd)
            g_s.step(m)
            t_s.step(float(m))
            got.append(g_s.get_last_lr() + [g_s.num_bad_epochs, g_s.cooldown_counter, g_s.best])
            want.append(t_s.get_last_lr() + [t_s.num_bad_epochs, t_s.cooldown_counter, t_s.best])
        np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-12)
        assert len({r[0] for r in got}) > 1


def test_hand_computed_values():
    opt = optim.SGD([nn.Parameter(gradc.ones(1))], lr=1.0)
    s = S.StepLR(opt, step_size=2, gamma=0.5)
    lrs = [s.get_last_lr()[0]]
    for _ in range(5):
        opt.step()
        s.step()
        lrs.append(s.get_last_lr()[0])
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    opt = optim.SGD([nn.Parameter(gradc.ones(1))], lr=2.0)
    c = S.CosineAnnealingLR(opt, T_max=4)
    vals = [c.get_last_lr()[0]]
    for _ in range(4):
        opt.step()
        c.step()
        vals.append(c.get_last_lr()[0])
    assert vals == pytest.approx([2.0 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)], abs=1e-12)
    opt = optim.SGD([nn.Parameter(gradc.ones(1))], lr=1.0)
    lin = S.LinearLR(opt, start_factor=0.5, total_iters=2)
    seq = [lin.get_last_lr()[0]]
    for _ in range(3):
        lin.step()
        seq.append(lin.get_last_lr()[0])
    assert seq == pytest.approx([0.5, 0.75, 1.0, 1.0])


def test_scheduled_lr_drives_the_optimizer():
    """The optimizer reads group["lr"] at each step: an SGD step of gradient 1 moves by the rate."""
    p = nn.Parameter(gradc.zeros(1, dtype=gradc.float64))
    opt = optim.SGD([p], lr=1.0)
    s = S.ExponentialLR(opt, gamma=0.5)
    for _ in range(4):
        p.grad = gradc.ones(1, dtype=gradc.float64)
        opt.step()
        s.step()
    assert p.item() == pytest.approx(-(1 + 0.5 + 0.25 + 0.125))


def test_errors():
    opt = _gradc_opt()
    with pytest.raises(GradcError, match="not a gradc optimizer"):
        S.StepLR(object(), 3)
    with pytest.raises(GradcError, match="initial_lr"):
        S.StepLR(_gradc_opt(), 3, last_epoch=5)
    with pytest.raises(GradcError, match="2 parameter groups"):
        S.LambdaLR(opt, [lambda e: 1.0])
    with pytest.raises(GradcError, match="milestones"):
        S.SequentialLR(opt, [S.StepLR(opt, 2), S.StepLR(opt, 3)], milestones=[])
    with pytest.raises(GradcError, match="metric"):
        S.SequentialLR(opt, [S.ReduceLROnPlateau(opt)], milestones=[])
    with pytest.raises(GradcError, match="different optimizer"):
        S.ChainedScheduler([S.StepLR(opt, 2), S.StepLR(_gradc_opt(), 2)])
    with pytest.raises(GradcError, match="neither momentum"):
        S.OneCycleLR(optim.Adagrad([nn.Parameter(gradc.ones(1))]), max_lr=0.1, total_steps=10)
    o = S.OneCycleLR(_gradc_opt(), max_lr=0.1, total_steps=3)
    for _ in range(3):
        o.step()
    with pytest.raises(GradcError, match="total_steps"):
        o.step()
    with pytest.raises(GradcError, match="factor"):
        S.ReduceLROnPlateau(opt, factor=1.5)


def test_compiled_step_with_a_tensor_lr_follows_the_schedule(tmp_path, monkeypatch):
    """A 0-d tensor lr (torch's capturable form) is optimizer state the compiled step reads as data:
    the scheduler updates it in place, so one program serves every rate (a float lr is baked into
    the program and each new value retraces)."""
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    import gradc.nn.functional as F

    def run(compiled):
        gradc.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
        opt = optim.AdamW(model.parameters(), lr=gradc.tensor(1e-2, dtype=gradc.float64))
        sched = S.CosineAnnealingLR(opt, T_max=10)
        x, y = gradc.randn(8, 4), gradc.randint(0, 2, (8,))

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.detach()
        fn = gradc.compile(step, backend="numpy") if compiled else step
        losses, lrs = [], []
        for _ in range(10):
            losses.append(fn(x, y).item())
            sched.step()
            lrs.append(float(sched.get_last_lr()[0].item()))
        return losses, lrs, [p.detach().numpy() for p in model.parameters()], fn
    l_e, r_e, p_e, _ = run(False)
    l_c, r_c, p_c, fn = run(True)
    assert r_c == r_e and r_e[4] == pytest.approx(1e-2 * (1 + math.cos(math.pi * 5 / 10)) / 2)
    np.testing.assert_allclose(l_c, l_e, rtol=1e-5, atol=1e-6)
    for a, b in zip(p_c, p_e):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert fn.trace_count <= 2
