"""Compile once, run many: optimizer hyper-parameters and GradScaler state are program inputs, so a
learning-rate schedule or a scale update never traces again (results equal eager). Symbolic sizes
(dynamic=True, mark_dynamic, automatic dynamic) are tested in test_symbolic_sizes.py."""
import math

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn, optim


def _train(opt_cls, kw, compiled, steps=20):
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    opt = opt_cls(model.parameters(), **kw)
    warm = 4
    sched = optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (steps - warm))))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    fn = gradc.compile(step) if compiled else step
    rng = np.random.default_rng(0)
    losses, lrs = [], []
    for _ in range(steps):
        x = gradc.tensor(rng.standard_normal((8, 6)).astype(np.float32))
        y = gradc.tensor(rng.integers(0, 3, 8))
        losses.append(fn(x, y).item())
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    return losses, [p.detach().numpy() for p in model.parameters()], fn, lrs


@pytest.mark.parametrize("opt_cls, kw", [(optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-2)),
                                         (optim.Adam, dict(lr=1e-2, weight_decay=1e-3)),
                                         (optim.AdamW, dict(lr=1e-2))], ids=["SGD", "Adam", "AdamW"])
def test_cosine_warmup_schedule_traces_at_most_twice(opt_cls, kw):
    eager_losses, eager_params, _, lrs = _train(opt_cls, kw, compiled=False)
    losses, params, fn, _ = _train(opt_cls, kw, compiled=True)
    assert len(set(lrs)) >= 18  # the schedule changes lr (nearly) every step
    assert fn.trace_count <= 2, fn.recompile_reasons
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5, atol=1e-6)
    for a, b in zip(params, eager_params):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_changing_an_option_to_zero_traces_again():
    gradc.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x):
        opt.zero_grad()
        loss = model(x).sum()
        loss.backward()
        opt.step()
        return loss
    cf = gradc.compile(step)
    x = gradc.ones(2, 3)
    for _ in range(3):
        cf(x)
    n = cf.trace_count
    opt.param_groups[0]["momentum"] = 0.0  # the update's structure changes (no momentum buffer use)
    ref = [p.detach().numpy().copy() for p in model.parameters()]
    grads = None
    cf(x)
    assert cf.trace_count == n + 1
    grads = [p.grad.numpy() for p in model.parameters()]
    for p, r, g in zip(model.parameters(), ref, grads):
        np.testing.assert_allclose(p.detach().numpy(), r - 0.1 * g, rtol=1e-6)


def test_grad_scaler_updates_never_retrace():
    gradc.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = optim.SGD(model.parameters(), lr=0.01)
    scaler = gradc.amp.GradScaler(init_scale=2.0 ** 4, growth_interval=2)

    def step(x, y):
        opt.zero_grad()
        with gradc.amp.autocast():
            loss = F.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss
    cf = gradc.compile(step)
    scales = []
    for i in range(6):
        cf(gradc.ones(3, 4), gradc.zeros(3, 2))
        scales.append(scaler.get_scale())
    assert scales[-1] > scales[0]  # the scale grew: state changed between calls
    assert cf.trace_count <= 2, cf.recompile_reasons
