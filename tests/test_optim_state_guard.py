"""A compiled training step reads and writes the optimizer's state tensors themselves: when
load_state_dict or a reset gives the optimizer new ones, the step traces again (naming why) instead
of updating the old tensors while eager uses the new."""
import numpy as np
import pytest

import gradc
from gradc import nn, optim
import gradc.nn.functional as F


def _setup(make_opt):
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = make_opt(model.parameters())

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return model, opt, step


OPTIMIZERS = {"sgd_momentum": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
              "adam": lambda ps: optim.Adam(ps, lr=0.05),
              "adamw": lambda ps: optim.AdamW(ps, lr=0.05, weight_decay=0.1)}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("between", ["load_state_dict", "reset"])
def test_replaced_state_equals_eager(name, between):
    rng = np.random.default_rng(0)
    x = gradc.from_numpy(rng.standard_normal((5, 6), dtype=np.float32))
    y = gradc.from_numpy(rng.integers(0, 3, 5))
    (m_e, o_e, s_e), (m_c, o_c, s_c) = _setup(OPTIMIZERS[name]), _setup(OPTIMIZERS[name])
    s_c = gradc.compile(s_c)
    saved = {}
    for i in range(6):
        np.testing.assert_allclose(s_c(x, y).item(), s_e(x, y).item(), rtol=1e-5, atol=1e-6, err_msg=f"step {i}")
        for pe, pc in zip(m_e.parameters(), m_c.parameters()):
            np.testing.assert_allclose(pc.detach().numpy(), pe.detach().numpy(), rtol=1e-5, atol=1e-6)
        if i == 1:
            saved = {o: o.state_dict() for o in (o_e, o_c)}
            saved = {o: {"state": {k: {n: (v.clone() if isinstance(v, gradc.Tensor) else v) for n, v in st.items()}
                                   for k, st in sd["state"].items()}, "param_groups": sd["param_groups"]}
                     for o, sd in saved.items()}
        if i == 3:
            for o in (o_e, o_c):
                o.load_state_dict(saved[o]) if between == "load_state_dict" else o.state.clear()
    assert s_c.trace_count <= 4
    assert any("was replaced" in r for r in s_c.recompile_reasons), s_c.recompile_reasons
