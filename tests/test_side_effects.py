"""Python side effects a compiled program cannot repeat: a scheduler stepped, or an optimizer option
set, inside the compiled function. Tracing runs that Python code once; later calls replay only the
tensor work, so they would keep the value set while tracing. gradc refuses such a trace (TraceError:
the call runs eagerly, or raises with fullgraph=True) and the results equal eager's."""
import warnings

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn, optim
from gradc.errors import TraceError
from gradc.testing import assert_close


def _train(compiled, body, steps=8, **compile_kw):
    gradc.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.SequentialLR(opt, [optim.lr_scheduler.LinearLR(opt, 0.5, total_iters=2),
                                                  optim.lr_scheduler.StepLR(opt, 2, gamma=0.5)], milestones=[2])
    count = [0]

    def step(x, y):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        body(opt, sched, count)
        opt.step()
        return loss
    fn = gradc.compile(step, **compile_kw) if compiled else step
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        x = gradc.tensor(rng.standard_normal((5, 4)).astype(np.float32))
        y = gradc.tensor(rng.standard_normal((5, 3)).astype(np.float32))
        losses.append(fn(x, y).item())
    return np.array(losses), opt.param_groups[0]["lr"], sched.last_epoch, model.weight.detach().numpy(), fn


def _scheduler_step(opt, sched, count):
    sched.step()


def _decay_by_hand(opt, sched, count):
    for g in opt.param_groups:
        g["lr"] = g["lr"] * 0.8


@pytest.mark.parametrize("body", [_scheduler_step, _decay_by_hand], ids=["scheduler.step", "param_group-lr"])
def test_a_side_effect_on_the_optimizer_runs_eagerly_and_equals_eager(body):
    eager = _train(False, body)
    with pytest.warns(UserWarning, match="outside the compiled function") as rec:
        compiled = _train(True, body)
    assert any("running it eagerly" in str(w.message) for w in rec)
    assert_close(compiled[0], eager[0], rtol=1e-6, atol=1e-7)
    assert compiled[1] == pytest.approx(eager[1]) and compiled[2] == eager[2]   # stepped once per call
    assert_close(compiled[3], eager[3], rtol=1e-6, atol=1e-7)


def test_fullgraph_raises_and_names_the_fix():
    with pytest.raises(TraceError, match=r"SequentialLR.step\(\) is called inside the compiled function.*"
                                         r"between compiled steps"):
        _train(True, _scheduler_step, steps=1, fullgraph=True)
    with pytest.raises(TraceError, match=r"param_group\['lr'\] is set inside the compiled function"):
        _train(True, _decay_by_hand, steps=1, fullgraph=True)


def test_setting_an_option_to_its_own_value_is_not_a_side_effect():
    def same(opt, sched, count):
        opt.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        *_, fn = _train(True, same, steps=4)
    assert fn.trace_count <= 2


def test_an_option_the_update_branches_on_reaching_zero_retraces_with_a_reason():
    gradc.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)

    def step(x):
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    fn = gradc.compile(step)
    x = gradc.randn(5, 4)
    for lr in (0.1, 0.05, 0.0, 0.01):   # lr only scales the update: reaching 0 traces nothing new
        opt.param_groups[0]["lr"] = lr
        fn(x)
    assert fn.trace_count == 1   # (the traced first step makes the momentum buffer as real data)
    for wd in (0.0, 0.02):
        opt.param_groups[0]["weight_decay"] = wd
        fn(x)
    assert fn.recompile_reasons[-1] == "SGD param group 0 weight_decay: nonzero -> 0"
    assert fn.trace_count == 2   # the nonzero program serves 0.02 again
