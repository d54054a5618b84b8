"""gradc.nn.utils against torch.nn.utils: clip_grad_norm_ (returned norm and clipped gradients for
every norm type, foreach on and off, error_if_nonfinite), clip_grad_value_, parameters_to_vector /
vector_to_parameters; hand-computed values; and clipping inside a compiled training step."""
import math

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import GradcError, nn, optim
from gradc.nn.utils import (clip_grad_norm_, clip_grad_value_, get_total_norm, parameters_to_vector,
                            vector_to_parameters)

SHAPES = [(3, 4), (7,), (2, 2, 2)]


def _grads(scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) * scale).astype(np.float32) for s in SHAPES]


def _gradc_params(grads):
    ps = [nn.Parameter(gradc.zeros(*g.shape)) for g in grads]
    for p, g in zip(ps, grads):
        p.grad = gradc.tensor(g)
    return ps


def _torch_params(torch, grads):
    ps = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
    for p, g in zip(ps, grads):
        p.grad = torch.tensor(g)
    return ps


@pytest.mark.parametrize("norm_type", [2.0, 1, 3.5, 0.5, math.inf, -math.inf, 0, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
@pytest.mark.parametrize("foreach", [None, True, False])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, foreach):
    torch = pytest.importorskip("torch")
    grads = _grads(scale=2.0)
    gp, tp = _gradc_params(grads), _torch_params(torch, grads)
    tnorm = float(norm_type) if isinstance(norm_type, str) else norm_type
    got = clip_grad_norm_(gp, max_norm, norm_type=norm_type, foreach=foreach)
    want = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type=tnorm)
    assert got.shape == () and got.dtype is gradc.float32
    np.testing.assert_allclose(got.item(), want.item(), rtol=1e-5)
    for a, b in zip(gp, tp):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-7)
    clipped = max_norm < want.item()
    assert clipped == (not np.allclose(gp[0].grad.numpy(), grads[0]))


def test_clip_grad_norm_hand_computed():
    # gradients (3, 4) and (0,): total 2-norm 5; max_norm 1 scales by 1 / (5 + 1e-6)
    a, b = nn.Parameter(gradc.zeros(2)), nn.Parameter(gradc.zeros(1))
    a.grad, b.grad = gradc.tensor([3.0, 4.0]), gradc.tensor([0.0])
    c = nn.Parameter(gradc.zeros(1))  # no gradient: skipped, stays None
    total = clip_grad_norm_(iter([a, b, c]), max_norm=1.0)  # an iterator is fine (read once)
    assert total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.numpy(), np.array([3.0, 4.0]) / (5 + 1e-6), rtol=1e-6)
    assert c.grad is None
    # a single tensor, below the limit: unchanged
    a.grad = gradc.tensor([0.3, 0.4])
    assert clip_grad_norm_(a, 1.0, norm_type=1).item() == pytest.approx(0.7)
    np.testing.assert_allclose(a.grad.numpy(), [0.3, 0.4], rtol=1e-6)
    # no gradients at all: a zero norm, nothing to do
    assert clip_grad_norm_([c], 1.0).item() == 0.0
    assert get_total_norm([gradc.tensor([1.0, -2.0]), gradc.tensor([2.0])], math.inf).item() == 2.0


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf * 0 when scaling, as in torch
def test_clip_grad_norm_nonfinite():
    a = nn.Parameter(gradc.zeros(2))
    a.grad = gradc.tensor([1.0, float("inf")])
    with pytest.raises(GradcError, match="inf"):
        clip_grad_norm_([a], 1.0, error_if_nonfinite=True)
    total = clip_grad_norm_([a], 1.0)  # as torch: returns inf, and the gradients become nan/0
    assert math.isinf(total.item())
    with pytest.raises(GradcError, match="norm_type"):
        clip_grad_norm_([a], 1.0, norm_type="fro")
    with pytest.raises(GradcError, match="foreach"):
        clip_grad_norm_([a], 1.0, foreach="yes")


@pytest.mark.parametrize("clip", [0.1, 1.5])
def test_clip_grad_value_matches_torch(clip):
    torch = pytest.importorskip("torch")
    grads = _grads(scale=2.0)
    gp, tp = _gradc_params(grads), _torch_params(torch, grads)
    clip_grad_value_(gp, clip)
    torch.nn.utils.clip_grad_value_(tp, clip)
    for a, b in zip(gp, tp):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
        assert np.abs(a.grad.numpy()).max() <= clip
    assert not np.array_equal(gp[0].grad.numpy(), grads[0])


def test_parameters_to_vector_round_trip_matches_torch():
    torch = pytest.importorskip("torch")
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    for tp, gp in zip(tmodel.parameters(), model.parameters()):
        with torch.no_grad():
            tp.copy_(torch.tensor(gp.detach().numpy()))
    vec = parameters_to_vector(model.parameters())
    tvec = torch.nn.utils.parameters_to_vector(tmodel.parameters())
    np.testing.assert_array_equal(vec.detach().numpy(), tvec.detach().numpy())
    assert vec.shape == (3 * 4 + 4 + 4 * 2 + 2,)
    # differentiable, as in torch: d(sum(vec * w))/dparam = matching slice of w
    w = gradc.arange(vec.shape[0], dtype=gradc.float32)
    (vec * w).sum().backward()
    np.testing.assert_array_equal(model[0].weight.grad.numpy(), np.arange(12, dtype=np.float32).reshape(4, 3))
    new = gradc.arange(vec.shape[0], dtype=gradc.float32) * 0.5
    vector_to_parameters(new, model.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(new.numpy()), tmodel.parameters())
    for gp, tp in zip(model.parameters(), tmodel.parameters()):
        np.testing.assert_array_equal(gp.detach().numpy(), tp.detach().numpy())
        assert gp.requires_grad and gp.is_leaf
    with pytest.raises(gradc.ShapeError, match="26 values"):
        vector_to_parameters(gradc.zeros(5), model.parameters())
    with pytest.raises(GradcError, match="expects a tensor"):
        vector_to_parameters([0.0] * 26, model.parameters())


def test_clipping_inside_a_compiled_step_matches_eager(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))

    def train(compiled):
        gradc.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2))
        opt = optim.SGD(model.parameters(), lr=0.5)
        rng = np.random.default_rng(0)
        data = [(gradc.tensor(rng.standard_normal((6, 5)).astype(np.float32) * 5), gradc.tensor(rng.integers(0, 2, 6)))
                for _ in range(6)]

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            norm = clip_grad_norm_(model.parameters(), 0.1)
            opt.step()
            return loss.detach(), norm
        run = gradc.compile(step, backend="numpy") if compiled else step
        out = [tuple(t.item() for t in run(x, y)) for x, y in data]
        return out, [p.detach().numpy() for p in model.parameters()], run
    eager, p_e, _ = train(False)
    comp, p_c, run = train(True)
    np.testing.assert_allclose(np.array(comp), np.array(eager), rtol=1e-5, atol=1e-6)
    assert all(n > 0.1 for _, n in eager)  # clipping was active on every step
    for a, b in zip(p_c, p_e):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert run.trace_count <= 2
