"""Transforms, TransformedDistribution and LogNormal against torch.distributions (float64): each
transform's forward, inverse and log|det J|; log_prob of transformed distributions (a SAC-style
tanh-squashed Normal, an affine map over an event dimension) and its gradients; shapes; rsample
gradients given the same base draws; LogNormal's moments, entropy and KL."""
import numpy as np
import pytest

import gradc
from gradc import distributions as D
from gradc.distributions import transforms as T

torch = pytest.importorskip("torch")
td = torch.distributions
TT = td.transforms
RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 3))
LOC, SCALE = RNG.standard_normal(3), RNG.uniform(0.5, 2.0, 3)


def _pairs():
    return [("exp", T.ExpTransform(), TT.ExpTransform(), X),
            ("sigmoid", T.SigmoidTransform(), TT.SigmoidTransform(), X),
            ("tanh", T.TanhTransform(), TT.TanhTransform(), X * 0.5),
            ("softplus", T.SoftplusTransform(), TT.SoftplusTransform(), X),
            ("power", T.PowerTransform(2.5), TT.PowerTransform(2.5), np.abs(X) + 0.1),
            ("affine", T.AffineTransform(gradc.tensor(LOC), gradc.tensor(SCALE)),
             TT.AffineTransform(torch.tensor(LOC), torch.tensor(SCALE)), X),
            ("affine-event", T.AffineTransform(1.0, -2.0, event_dim=1), TT.AffineTransform(1.0, -2.0, event_dim=1), X),
            ("compose", T.ComposeTransform([T.AffineTransform(0.5, 2.0), T.TanhTransform()]),
             TT.ComposeTransform([TT.AffineTransform(0.5, 2.0), TT.TanhTransform()]), X * 0.3),
            ("inverse", T.ExpTransform().inv, TT.ExpTransform().inv, np.abs(X) + 0.1)]


@pytest.mark.parametrize("name", [p[0] for p in _pairs()])
def test_transforms_match_torch(name):
    _, g, t, x = next(p for p in _pairs() if p[0] == name)
    gx, tx = gradc.tensor(x), torch.tensor(x)
    gy, ty = g(gx), t(tx)
    np.testing.assert_allclose(gy.numpy(), ty.numpy(), rtol=1e-12)
    np.testing.assert_allclose(g.inv(gy).numpy(), t.inv(ty).numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g.log_abs_det_jacobian(gx, gy).numpy(), t.log_abs_det_jacobian(tx, ty).numpy(),
                               rtol=1e-9, atol=1e-12)
    assert g.domain.event_dim == t.domain.event_dim and g.codomain.event_dim == t.codomain.event_dim


def _squashed(lib, loc, scale):
    d = lib.distributions if lib is torch else D
    tr = lib.distributions.transforms if lib is torch else T
    return d.TransformedDistribution(d.Normal(loc, scale), [tr.AffineTransform(0.0, 2.0), tr.TanhTransform()])


def _affine_event(lib, loc, scale):
    d = lib.distributions if lib is torch else D
    tr = lib.distributions.transforms if lib is torch else T
    base = d.Independent(d.Normal(loc, scale), 1)
    return d.TransformedDistribution(base, tr.AffineTransform(loc * 0 + 1.0, scale, event_dim=1))


@pytest.mark.parametrize("make", [_squashed, _affine_event])
def test_transformed_distribution_log_prob_and_gradients_match_torch(make):
    gl, gs = gradc.tensor(LOC, requires_grad=True), gradc.tensor(SCALE, requires_grad=True)
    tl, ts = torch.tensor(LOC, requires_grad=True), torch.tensor(SCALE, requires_grad=True)
    g, t = make(gradc, gl, gs), make(torch, tl, ts)
    assert g.batch_shape == tuple(t.batch_shape) and g.event_shape == tuple(t.event_shape)
    v = np.tanh(RNG.standard_normal((5, 3))) * 0.9
    lg, lt = g.log_prob(gradc.tensor(v)), t.log_prob(torch.tensor(v))
    np.testing.assert_allclose(lg.detach().numpy(), lt.detach().numpy(), rtol=1e-9, atol=1e-12)
    lg.sum().backward()
    lt.sum().backward()
    np.testing.assert_allclose(gl.grad.numpy(), tl.grad.numpy(), rtol=1e-8)
    np.testing.assert_allclose(gs.grad.numpy(), ts.grad.numpy(), rtol=1e-8)
    assert tuple(g.rsample((6,)).shape) == tuple(t.rsample((6,)).shape)
    assert bool(g.support.check(g.sample((6,))).all())


def test_rsample_through_transforms_matches_torch_given_the_same_draws(monkeypatch):
    gl, gs = gradc.tensor(LOC, requires_grad=True), gradc.tensor(SCALE, requires_grad=True)
    tl, ts = torch.tensor(LOC, requires_grad=True), torch.tensor(SCALE, requires_grad=True)
    gradc.manual_seed(0)
    x = _squashed(gradc, gl, gs).rsample((7,))
    gradc.manual_seed(0)
    eps = torch.tensor(gradc.randn((7, 3), dtype=gradc.float64).numpy())
    monkeypatch.setattr(td.normal, "_standard_normal", lambda shape, dtype, device: eps)
    y = _squashed(torch, tl, ts).rsample((7,))
    np.testing.assert_allclose(x.detach().numpy(), y.detach().numpy(), rtol=1e-12)
    (x ** 2).sum().backward()
    (y ** 2).sum().backward()
    np.testing.assert_allclose(gs.grad.numpy(), ts.grad.numpy(), rtol=1e-9)


def test_log_normal_matches_torch():
    g, t = D.LogNormal(gradc.tensor(LOC), gradc.tensor(SCALE)), td.LogNormal(torch.tensor(LOC), torch.tensor(SCALE))
    v = np.abs(RNG.standard_normal((4, 3))) + 0.05
    np.testing.assert_allclose(g.log_prob(gradc.tensor(v)).numpy(), t.log_prob(torch.tensor(v)).numpy(), rtol=1e-10)
    for attr in ("mean", "mode", "variance", "stddev"):
        np.testing.assert_allclose(getattr(g, attr).numpy(), getattr(t, attr).numpy(), rtol=1e-10, err_msg=attr)
    np.testing.assert_allclose(g.entropy().numpy(), t.entropy().numpy(), rtol=1e-10)
    g2, t2 = D.LogNormal(gradc.tensor(-LOC), gradc.tensor(SCALE[::-1].copy())), \
        td.LogNormal(torch.tensor(-LOC), torch.tensor(SCALE[::-1].copy()))
    np.testing.assert_allclose(D.kl_divergence(g, g2).numpy(), td.kl_divergence(t, t2).numpy(), rtol=1e-10)
    e = g.expand((2, 3))
    assert e.batch_shape == (2, 3) and tuple(e.sample().shape) == (2, 3)
    with pytest.raises(D.DistributionError, match="parameter scale"):
        D.LogNormal(0.0, -1.0)
    with pytest.raises(D.DistributionError, match="log_prob"):
        g.log_prob(gradc.tensor(-v))


def test_cache_size_gives_back_the_sample_a_saturated_tanh_came_from():
    """CleanRL's SAC policy: TanhTransform(cache_size=1) so log_prob of an action at +-1 is finite."""
    for lib in (torch, gradc):
        D = lib.distributions
        d = D.TransformedDistribution(D.Normal(lib.tensor([10.0, 0.0]), lib.tensor([0.1, 1.0])),
                                      [D.transforms.TanhTransform(cache_size=1)])
        action = d.rsample()
        assert action[0].item() > 0.9999 and bool(lib.isfinite(d.log_prob(action)).all())
        t = D.transforms.AffineTransform(1.0, 2.0, cache_size=1)
        x = lib.tensor([1.0])
        assert t.inv(t(x)) is x and D.transforms.ExpTransform().with_cache(1)._cache_size == 1
        c = D.transforms.ComposeTransform([D.transforms.ExpTransform(), D.transforms.AffineTransform(0.0, 2.0)],
                                          cache_size=1)
        assert c.inv(c(x)) is x
        with pytest.raises(ValueError):
            D.transforms.TanhTransform(cache_size=2)
