"""The optimizer update of a compiled training step on CUDA: every parameter's update (and its
momentum or moments) runs in one launch, placed after the backward, with the values eager mode
computes. Checked on the host (kernels built for the CPU, run with their real grid and block)."""
import re

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn, optim
from gradc.runtime import cuda_emulation

pytestmark = pytest.mark.skipif(not cuda_emulation.available(), reason="needs g++ to build kernels for the host")

OPTIMIZERS = [("sgd", optim.SGD, dict(lr=0.05, momentum=0.9)),
              ("sgd-nesterov", optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
              ("adam", optim.Adam, dict(lr=0.01, weight_decay=1e-3)),
              ("adamw", optim.AdamW, dict(lr=0.01))]


@pytest.fixture(autouse=True, scope="module")
def _cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADC_CACHE_DIR", str(tmp_path_factory.mktemp("gradc_cache")))
        yield


def _training_step(cls, kw, flat):
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))
    opt = cls(model.parameters(), flat=flat, **kw)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return model, step


def _launches(host_src):
    """(kernel name, [argument names]) of each generated-kernel launch, in call order."""
    return [(name, [a.strip() for a in args.split(",") if a.strip()])
            for name, args in re.findall(r"^\s*(g\w+)\(\(\d+,\), \(\d+,\), \(([^)]*)\)\)", host_src, re.M)]


def _state_launches(prog):
    """The launches that write a state in place, and the states the program writes in place."""
    src = prog.source["host.py"]
    written = set(re.findall(r"= _written_back\(v\d+, (v\d+)\)", src))
    return [name for name, args in _launches(src) if written & set(args)], written


@pytest.mark.parametrize("flat", [False, True], ids=["per-parameter", "flat"])
@pytest.mark.parametrize("label,cls,kw", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_the_update_of_every_parameter_is_one_launch_equal_to_eager(label, cls, kw, flat):
    model, step = _training_step(cls, kw, flat)
    rng = np.random.default_rng(1)
    x = gradc.tensor(rng.standard_normal((8, 12)).astype(np.float32))
    y = gradc.tensor(rng.integers(0, 4, size=8))
    step(x, y)   # eagerly: the optimizer's state exists, as in every later step
    prog = gradc.compile(step, backend="cuda").lower(x, y)
    launches, written = _state_launches(prog)
    params = list(model.parameters())
    states_per_param = 1 + (2 if cls is not optim.SGD else 1)   # the parameter and its momentum or moments
    # flat=True: the parameters and their state are views of flat buffers, one of each
    assert len(written) == (states_per_param if flat else states_per_param * len(params)), written
    assert len(launches) == 1, launches
    if not flat:   # one group per parameter, joined into one kernel
        joined = re.search(r"_x(\d+)$", launches[0])
        assert joined and int(joined.group(1)) >= len(params), launches
    tensors = prog.resolve([x, y])
    arrays = [t._data.copy() for t in tensors]
    got = cuda_emulation.run(prog, arrays)
    want_loss = step(x, y).item()   # the same step, eagerly, from the same state
    np.testing.assert_allclose(got[0], want_loss, rtol=1e-5)
    data = [e for e in prog.effects if e.kind == "data"]
    assert data
    for e in data:
        np.testing.assert_allclose(got[e.out], tensors[e.slot].detach().numpy(), rtol=2e-5, atol=1e-6,
                                   err_msg=f"{label}: state in input slot {e.slot}")


def test_updates_come_after_the_backward_in_every_backend():
    # the schedule is the backends' common order: NumPy and C run the updates last too
    model, step = _training_step(optim.Adam, dict(lr=0.01), False)
    n = len(list(model.parameters()))
    x, y = gradc.randn(8, 12), gradc.randint(0, 4, (8,))
    step(x, y)
    for backend in ("numpy", "c"):
        prog = gradc.compile(step, backend=backend).lower(x, y)
        g = prog.ir
        updated = {g.node(g.outputs[e.out]).get("group") for e in prog.effects if e.kind == "data"} - {None}
        rows = [r["name"] for r in prog.stats["kernels_bytes"]]
        first = min(rows.index(f"g{gid}") for gid in updated)
        matmuls = [i for i, r in enumerate(prog.stats["kernels_bytes"]) if r["ops"] == "matmul"]
        assert len(updated) == n and matmuls and max(matmuls) < first, (backend, rows)
        assert sorted(rows.index(f"g{gid}") for gid in updated) == list(range(len(rows) - n, len(rows)))
    prog = gradc.compile(step, backend="cuda").lower(x, y)
    launches, _ = _state_launches(prog)
    src = prog.source["host.py"]
    assert "_cuda_matmul(" not in src[src.index(f"{launches[0]}(("):]
