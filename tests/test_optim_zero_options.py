"""Hyper-parameters that are program inputs reaching exactly 0.

A compiled step reads lr (and Adam's betas and eps, SGD's momentum, dampening and weight decay) as
program inputs. Only whether an option is zero can shape the trace, and only where the update
branches on it (SGD's momentum and weight_decay, Adam's weight_decay): a cosine schedule down to
eta_min=0 must not trace again, and must give what eager gives."""
import math

import numpy as np
import pytest

import gradc
from gradc import nn, optim

OPTIMIZERS = [(optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
              (optim.Adam, dict(lr=0.05)), (optim.AdamW, dict(lr=0.05))]


def _train(cls, kw, compiled, steps=7):
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    opt = cls(model.parameters(), **kw)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=0.0)
    x, y = gradc.randn(5, 6), gradc.randn(5, 2)

    def step(x, y):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    fn = gradc.compile(step) if compiled else step
    losses, lrs = [], []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        losses.append(fn(x, y).item())
        sched.step()
    return losses, lrs, [p.detach().numpy().copy() for p in model.parameters()], fn


@pytest.mark.parametrize("cls,kw", OPTIMIZERS, ids=lambda v: getattr(v, "__name__", ""))
def test_cosine_schedule_down_to_zero_does_not_retrace_and_equals_eager(cls, kw):
    ref_losses, ref_lrs, ref_params, _ = _train(cls, kw, compiled=False)
    losses, lrs, params, fn = _train(cls, kw, compiled=True)
    assert lrs == ref_lrs and lrs[4] == 0.0 and lrs[5] > 0.0   # through exactly 0 and back up
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-7)
    for a, b in zip(params, ref_params):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert fn.trace_count <= 2, fn.recompile_reasons   # the second call may see new optimizer state
    assert not any("lr" in r for r in fn.recompile_reasons)


def test_an_option_the_update_branches_on_still_retraces_when_it_reaches_zero():
    gradc.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    x = gradc.randn(5, 4)
    before = model.weight.detach().numpy().copy()

    def step(x):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    fn = gradc.compile(step)
    fn(x)
    fn(x)
    traces = fn.trace_count
    opt.param_groups[0]["weight_decay"] = 0.0
    opt.param_groups[0]["lr"] = 0.0
    w = model.weight.detach().numpy().copy()
    fn(x)
    # lr 0 and no decay: nothing moves (a stale program with decay would shrink the weight)
    np.testing.assert_array_equal(model.weight.detach().numpy(), w)
    assert not np.array_equal(w, before)
    assert fn.trace_count == traces + 1
    assert fn.recompile_reasons[-1] == "AdamW param group 0 weight_decay: nonzero -> 0"


def test_lr_as_exactly_zero_from_the_first_trace_serves_nonzero_values():
    gradc.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = optim.SGD(model.parameters(), lr=0.0)
    x = gradc.randn(5, 4)

    def step(x):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    fn = gradc.compile(step)
    w0 = model.weight.detach().numpy().copy()
    fn(x)
    fn(x)   # (the second call finds .grad set by the first: a guard on it traces once more)
    np.testing.assert_array_equal(model.weight.detach().numpy(), w0)
    traces = fn.trace_count
    opt.param_groups[0]["lr"] = 0.5
    fn(x)
    grad = np.broadcast_to(x.numpy().sum(0), w0.shape)
    np.testing.assert_allclose(model.weight.detach().numpy(), w0 - 0.5 * grad, rtol=1e-6)
    assert fn.trace_count == traces
    assert math.isclose(opt.param_groups[0]["lr"], 0.5)


class _SkipAtZeroLR(optim.SGD):
    """An update that branches on lr being zero (read from group.raw): that zeroness is then
    guarded for it, though plain SGD leaves lr unguarded."""

    def _update(self, p, grad, state, group):
        if getattr(group, "raw", group)["lr"] == 0:
            p.mul_(0.5)   # a visible, different update
            return
        super()._update(p, grad, state, group)


def test_an_update_that_branches_on_lr_gets_its_zeroness_guarded():
    gradc.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = _SkipAtZeroLR(model.parameters(), lr=0.1)
    x = gradc.randn(5, 4)

    def step(x):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    fn = gradc.compile(step)
    fn(x)
    fn(x)
    traces = fn.trace_count
    opt.param_groups[0]["lr"] = 0.0
    w = model.weight.detach().numpy().copy()
    fn(x)
    np.testing.assert_allclose(model.weight.detach().numpy(), w * 0.5)
    assert fn.trace_count == traces + 1
    assert fn.recompile_reasons[-1] == "_SkipAtZeroLR param group 0 lr: nonzero -> 0"
