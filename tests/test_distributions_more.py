"""Cauchy, Gumbel, HalfNormal, StudentT, Poisson, Geometric and Binomial against torch.distributions
(float64): log_prob and its gradients, entropy, moments, cdf/icdf, KL; sample shapes, moments and
reproducibility under gradc.manual_seed."""
import math

import numpy as np
import pytest

import gradc
from gradc import distributions as D

torch = pytest.importorskip("torch")
td = torch.distributions
RNG = np.random.default_rng(0)
POS, POS2, REAL = RNG.uniform(0.5, 2.0, (2, 3)), RNG.uniform(0.5, 2.0, (2, 3)), RNG.standard_normal((2, 3))
PROBS = RNG.uniform(0.1, 0.9, (2, 3))

CASES = {
    "Cauchy": (dict(loc=REAL, scale=POS), RNG.standard_normal((4, 2, 3)) * 3),
    "Gumbel": (dict(loc=REAL, scale=POS), RNG.standard_normal((4, 2, 3)) * 2),
    "HalfNormal": (dict(scale=POS), np.abs(RNG.standard_normal((4, 2, 3)))),
    "StudentT": (dict(df=POS * 3, loc=REAL, scale=POS2), RNG.standard_normal((4, 2, 3)) * 2),
    "Poisson": (dict(rate=POS * 2), RNG.integers(0, 6, (4, 2, 3)).astype(np.float64)),
    "Geometric": (dict(probs=PROBS), RNG.integers(0, 6, (4, 2, 3)).astype(np.float64)),
    "Geometric_logits": (dict(logits=REAL), RNG.integers(0, 6, (4, 2, 3)).astype(np.float64)),
    "Binomial": (dict(total_count=np.full((2, 3), 7.0), probs=PROBS), RNG.integers(0, 8, (4, 2, 3)).astype(np.float64)),
    "Binomial_logits": (dict(total_count=np.full((2, 3), 5.0), logits=REAL),
                        RNG.integers(0, 6, (4, 2, 3)).astype(np.float64)),
}
NO_ENTROPY = {"Poisson"}
CDF = {"Cauchy", "HalfNormal"}   # (torch's Gumbel has cdf/icdf through its transforms too)


def _make(name, grad=False, flip=False):
    kw, _ = CASES[name]
    kw = {k: (v[::-1].copy() if flip and k != "total_count" else v) for k, v in kw.items()}
    g = {k: gradc.tensor(v, requires_grad=grad and k != "total_count") for k, v in kw.items()}
    t = {k: torch.tensor(v, requires_grad=grad and k != "total_count") for k, v in kw.items()}
    cls = name.split("_")[0]
    return getattr(D, cls)(**g), getattr(td, cls)(**t), g, t


def _close(a, b, rtol=1e-9, atol=1e-11, msg=""):
    a, b = a.detach().numpy(), b.detach().numpy()
    assert a.shape == b.shape, msg
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True, err_msg=msg)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch(name):
    g, t, gp, tp = _make(name, grad=True)
    v = CASES[name][1]
    assert g.batch_shape == tuple(t.batch_shape)
    lg, lt = g.log_prob(gradc.tensor(v)), t.log_prob(torch.tensor(v))
    _close(lg, lt, msg="log_prob")
    total_g, total_t = lg.sum(), lt.sum()
    if name not in NO_ENTROPY:
        _close(g.entropy(), t.entropy(), rtol=1e-8, msg="entropy")
        total_g, total_t = total_g + g.entropy().sum(), total_t + t.entropy().sum()
    total_g.backward()
    total_t.backward()
    for k in gp:
        if tp[k].grad is not None:
            _close(gp[k].grad, tp[k].grad, rtol=1e-7, msg=f"d/d{k}")
    for attr in ("mean", "mode", "variance", "stddev"):
        _close(getattr(g, attr), getattr(t, attr), msg=attr)
    if name in CDF:
        x = np.abs(v)
        _close(g.cdf(gradc.tensor(x)), t.cdf(torch.tensor(x)), msg="cdf")
        u = RNG.uniform(0.05, 0.95, (4, 2, 3))
        _close(g.icdf(gradc.tensor(u)), t.icdf(torch.tensor(u)), rtol=1e-7, msg="icdf")
    gradc.manual_seed(0)
    s = g.sample((3000,))
    gradc.manual_seed(0)
    np.testing.assert_array_equal(g.sample((3000,)).numpy(), s.numpy())
    assert tuple(s.shape) == tuple(t.sample((3000,)).shape)
    assert bool(g.support.check(s).all())
    if name not in ("Cauchy", "StudentT"):   # (heavy tails: no mean or a slow one)
        sd = np.sqrt(g.variance.detach().numpy())
        assert np.all(np.abs(s.numpy().mean(0) - g.mean.detach().numpy()) < 5 * sd / math.sqrt(3000)), name


KL = ["Cauchy", "Gumbel", "HalfNormal", "Poisson", "Geometric", "Binomial"]


@pytest.mark.parametrize("name", KL)
def test_kl_matches_torch(name):
    gp, tp, _, _ = _make(name)
    gq, tq, _, _ = _make(name, flip=True)
    _close(D.kl_divergence(gp, gq), td.kl_divergence(tp, tq), rtol=1e-8)
    _close(D.kl_divergence(gp, gp), td.kl_divergence(tp, tp), atol=1e-10)


def test_binomial_support_and_errors():
    g, t, _, _ = _make("Binomial")
    for expand in (True, False):
        _close(g.enumerate_support(expand), t.enumerate_support(expand))
    with pytest.raises(D.DistributionError, match="exactly one of probs or logits"):
        D.Binomial(3)
    with pytest.raises(D.DistributionError, match="total_count"):
        D.Binomial(2.5, probs=gradc.tensor(0.5))
    with pytest.raises(D.DistributionError, match="log_prob"):
        D.Poisson(gradc.tensor(1.0)).log_prob(gradc.tensor(0.5))
    with pytest.raises(D.KLNotImplementedError, match="total_count"):
        D.kl_divergence(D.Binomial(2, probs=gradc.tensor(0.5)), D.Binomial(3, probs=gradc.tensor(0.5)))


def test_reparameterised_families_differentiate_their_draws():
    for name in ("Cauchy", "Gumbel", "HalfNormal"):
        g, _, gp, _ = _make(name, grad=True)
        gradc.manual_seed(1)
        g.rsample((5,)).sum().backward()
        assert all(p.grad is not None and np.all(np.isfinite(p.grad.numpy())) for p in gp.values())
