"""Horizontal fusion of optimizer updates: with flat=True the parameters of one dtype live as views
of one flat buffer, and the update runs once over all of them. Results must be identical to
per-parameter updates, eagerly and compiled, and the usual state_dict must keep working."""
import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn, optim

OPTIMIZERS = [(optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
              (optim.Adam, dict(lr=0.01, weight_decay=1e-3)), (optim.AdamW, dict(lr=0.01))]


def _train(cls, kw, flat, compiled, steps=6, opt_hook=None):
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))
    opt = cls(model.parameters(), flat=flat, **kw)
    x, y = gradc.randn(16, 20), gradc.randint(0, 5, (16,))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    fn = gradc.compile(step) if compiled else step
    losses = []
    for i in range(steps):
        losses.append(fn(x, y).item())
        if opt_hook:
            opt_hook(i, opt, model)
    return losses, [p.detach().numpy().copy() for p in model.parameters()], opt, fn


@pytest.mark.parametrize("cls,kw", OPTIMIZERS, ids=lambda v: getattr(v, "__name__", ""))
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_flat_updates_equal_per_parameter_updates(cls, kw, compiled):
    # the same execution both ways (eager, or compiled with the same backend), so the bits must agree
    ref_losses, ref_params, ref_opt, _ = _train(cls, kw, flat=False, compiled=compiled)
    losses, params, opt, _ = _train(cls, kw, flat=True, compiled=compiled)
    assert losses == ref_losses
    for a, b in zip(params, ref_params):
        np.testing.assert_array_equal(a, b)
    sd, ref_sd = opt.state_dict(), ref_opt.state_dict()
    assert sd["state"].keys() == ref_sd["state"].keys()
    for i in ref_sd["state"]:
        for k, v in ref_sd["state"][i].items():
            np.testing.assert_array_equal(sd["state"][i][k].numpy(), v.numpy())


def test_parameters_are_views_of_one_buffer_and_the_step_is_one_update():
    _, _, opt, fn = _train(optim.SGD, dict(lr=0.1, momentum=0.9), flat=True, compiled=True)
    (flat,) = opt._flats[0]
    for p in opt.param_groups[0]["params"]:
        assert np.shares_memory(p._data, flat.param._data)
    x, y = gradc.randn(16, 20), gradc.randint(0, 5, (16,))
    prog = fn.lower(x, y)
    # The parameters and the momentum buffer are each updated in place as one flat array.
    assert prog.stats["inplace_state_updates"] == 2


def test_load_state_dict_and_relayout_keep_training_identical():
    ref_losses, ref_params, _, _ = _train(optim.Adam, dict(lr=0.01), flat=False, compiled=False)

    def reload(i, opt, model):
        if i == 2:  # a checkpoint round trip mid-training, and a layout change of the parameters
            opt.load_state_dict(opt.state_dict())
            model.to(gradc.float32)
    losses, params, _, _ = _train(optim.Adam, dict(lr=0.01), flat=True, compiled=False, opt_hook=reload)
    assert losses == ref_losses
    for a, b in zip(params, ref_params):
        np.testing.assert_array_equal(a, b)


def test_lowering_a_first_flat_step_leaves_the_optimizer_as_it_was():
    """The state a first step makes in the flat buffers is rolled back after lower(), as per-parameter
    state is, and export refuses the step until that state exists."""
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    opt = optim.Adam(model.parameters(), lr=0.01, flat=True)

    def step(x):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    x = gradc.ones(5, 4)
    assert gradc.compile(step, backend="numpy").lower(x).one_shot
    assert opt.state_dict()["state"] == {}
    with pytest.raises(gradc.ArtifactError, match="Run one step first"):
        gradc.export(step, x)
    step(x)
    assert gradc.export(step, x) is not None
