"""gradc.distributions against torch.distributions (float64, identical parameters): log_prob and
its gradients, entropy, moments, cdf/icdf, shapes, expand, enumerate_support and KL divergences.
Sampling: shapes, reproducibility under gradc.manual_seed, sample moments, and reparameterised
gradients (torch fed the same standard draws, where its sampler lets a test substitute them; for
Gamma, torch's implicit gradient of our draws; for Beta and Dirichlet, the gradient of the mean)."""
import math

import numpy as np
import pytest

import gradc
from gradc import distributions as D

torch = pytest.importorskip("torch")
td = torch.distributions

RNG = np.random.default_rng(0)
POS = RNG.uniform(0.5, 2.0, (2, 3))
POS2 = RNG.uniform(0.5, 2.0, (2, 3))
REAL = RNG.standard_normal((2, 3))
PROBS = RNG.uniform(0.1, 0.9, (2, 3))
SIMPLEX = RNG.uniform(0.1, 1.0, (2, 4))
SIMPLEX /= SIMPLEX.sum(-1, keepdims=True)
A = RNG.standard_normal((2, 3, 3))
COV = A @ A.transpose(0, 2, 1) + 3 * np.eye(3)
TRIL = np.linalg.cholesky(COV)


def _values(name):
    """A batch of values inside each support, broadcastable over the batch shape (2, 3)."""
    if name in ("Bernoulli",):
        return (RNG.uniform(size=(4, 2, 3)) < 0.5).astype(np.float64)
    if name == "Categorical":
        return RNG.integers(0, 4, (4, 2)).astype(np.float64)
    if name == "OneHotCategorical":
        return np.eye(4)[RNG.integers(0, 4, (4, 2))]
    if name in ("Beta", "Uniform_unit"):
        return RNG.uniform(0.05, 0.95, (4, 2, 3))
    if name == "Dirichlet":
        v = RNG.uniform(0.1, 1, (4, 2, 4))
        return v / v.sum(-1, keepdims=True)
    if name in ("Gamma", "Exponential"):
        return RNG.uniform(0.1, 3.0, (4, 2, 3))
    if name == "MultivariateNormal":
        return RNG.standard_normal((4, 2, 3))
    return RNG.standard_normal((4, 2, 3))


# name -> (params as numpy arrays, keyword names); both libraries get the same
CASES = {
    "Normal": dict(loc=REAL, scale=POS),
    "Laplace": dict(loc=REAL, scale=POS),
    "Uniform": dict(low=REAL - 3, high=REAL + POS + 3),
    "Exponential": dict(rate=POS),
    "Bernoulli": dict(probs=PROBS),
    "Bernoulli_logits": dict(logits=REAL),
    "Categorical": dict(probs=SIMPLEX),
    "Categorical_logits": dict(logits=RNG.standard_normal((2, 4))),
    "OneHotCategorical": dict(probs=SIMPLEX),
    "Gamma": dict(concentration=POS * 2, rate=POS2),
    "Beta": dict(concentration1=POS, concentration0=POS2),
    "Dirichlet": dict(concentration=SIMPLEX * 5),
    "MultivariateNormal": dict(loc=REAL, covariance_matrix=COV),
    "MultivariateNormal_tril": dict(loc=REAL, scale_tril=TRIL),
    "MultivariateNormal_precision": dict(loc=REAL, precision_matrix=np.linalg.inv(COV)),
}
CONTINUOUS_CDF = {"Normal", "Laplace", "Uniform", "Exponential"}


def _make(name, grad=False):
    cls = name.split("_")[0]
    kw = CASES[name]
    g = {k: gradc.tensor(v, dtype=gradc.float64, requires_grad=grad) for k, v in kw.items()}
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=grad) for k, v in kw.items()}
    return getattr(D, cls)(**g), getattr(td, cls)(**t), g, t


def _close(a, b, rtol=1e-9, atol=1e-11, msg=""):
    a = a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)
    b = b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
    assert a.shape == b.shape, (msg, a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=msg, equal_nan=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_log_prob_entropy_moments_and_shapes_match_torch(name):
    g, t, _, _ = _make(name)
    assert g.batch_shape == tuple(t.batch_shape) and g.event_shape == tuple(t.event_shape)
    v = _values(name.split("_")[0])
    _close(g.log_prob(gradc.tensor(v)), t.log_prob(torch.tensor(v)), msg="log_prob")
    _close(g.entropy(), t.entropy(), msg="entropy")
    for attr in ("mean", "variance", "stddev", "mode"):
        _close(getattr(g, attr), getattr(t, attr), msg=attr)
    if name in CONTINUOUS_CDF:
        _close(g.cdf(gradc.tensor(v)), t.cdf(torch.tensor(v)), msg="cdf")
        u = RNG.uniform(0.05, 0.95, (4, 2, 3))
        _close(g.icdf(gradc.tensor(u)), t.icdf(torch.tensor(u)), rtol=1e-7, msg="icdf")
    gradc.manual_seed(0)
    s = g.sample((5, 2))
    assert tuple(s.shape) == tuple(t.sample((5, 2)).shape)
    assert tuple(g.sample().shape) == tuple(t.sample().shape)
    assert bool(g.support.check(s).all()) if g.support is not None else True


@pytest.mark.parametrize("name", sorted(CASES))
def test_log_prob_and_entropy_gradients_match_torch(name):
    g, t, gp, tp = _make(name, grad=True)
    v = _values(name.split("_")[0])
    (g.log_prob(gradc.tensor(v)).sum() + g.entropy().sum()).backward()
    (t.log_prob(torch.tensor(v)).sum() + t.entropy().sum()).backward()
    for k in gp:
        _close(gp[k].grad, tp[k].grad, rtol=1e-8, atol=1e-10, msg=k)


@pytest.mark.parametrize("name", sorted(CASES))
def test_sample_moments_and_reproducibility(name):
    g = _make(name)[0]
    gradc.manual_seed(1)
    s = g.sample((4000,))
    gradc.manual_seed(1)
    np.testing.assert_array_equal(g.sample((4000,)).numpy(), s.numpy())
    draws, want_mean, want_var = s.numpy(), g.mean.numpy(), g.variance.numpy()
    if name.startswith("Categorical"):   # (no mean: compare the frequencies of the categories)
        draws = np.eye(4)[draws.astype(int)]
        want_mean = g.probs.numpy()
        want_var = want_mean * (1 - want_mean)
    mean, var = draws.mean(0), draws.var(0)
    assert np.all(np.abs(mean - want_mean) < 5 * np.sqrt(want_var) / math.sqrt(4000) + 1e-9), (mean, want_mean)
    assert np.all(np.abs(var - want_var) < 0.15 * want_var + 1e-9), (var, want_var)
    gradc.manual_seed(2)
    assert not np.array_equal(g.sample((4000,)).numpy(), s.numpy())


def test_rsample_gradients_match_torch_given_the_same_draws(monkeypatch):
    for name, module in (("Normal", td.normal), ("MultivariateNormal_tril", td.multivariate_normal),
                         ("MultivariateNormal", td.multivariate_normal)):
        g, t, gp, tp = _make(name, grad=True)
        gradc.manual_seed(3)
        x = g.rsample((7,))
        draws = {}

        def standard_normal(shape, dtype, device):
            draws["eps"] = eps
            return eps
        gradc.manual_seed(3)
        eps = torch.tensor(gradc.randn(x.shape, dtype=gradc.float64).numpy())
        monkeypatch.setattr(module, "_standard_normal", standard_normal)
        y = t.rsample((7,))
        _close(x, y, msg=name)
        ((x ** 2).sum() + x.sin().sum()).backward()
        ((y ** 2).sum() + y.sin().sum()).backward()
        for k in gp:
            _close(gp[k].grad, tp[k].grad, rtol=1e-8, msg=f"{name} d/d{k}")
        assert "eps" in draws
    g, t, gp, tp = _make("Uniform", grad=True)
    gradc.manual_seed(4)
    x = g.rsample((7,))
    gradc.manual_seed(4)
    u = torch.tensor(gradc.rand(x.shape, dtype=gradc.float64).numpy())
    monkeypatch.setattr(torch, "rand", lambda *a, **k: u)
    y = t.rsample((7,))
    _close(x, y)
    (x ** 2).sum().backward()
    (y ** 2).sum().backward()
    for k in gp:
        _close(gp[k].grad, tp[k].grad, rtol=1e-8, msg=f"Uniform d/d{k}")


@pytest.mark.parametrize("name", ["Exponential", "Laplace"])
def test_rsample_gradients_are_the_pathwise_derivatives(name):
    g, _, gp, _ = _make(name, grad=True)
    gradc.manual_seed(5)
    x = g.rsample((6,))
    x.sum().backward()
    xs = x.detach().numpy()
    if name == "Exponential":   # x = E / rate: dx/drate = -x / rate
        _close(gp["rate"].grad, (-xs / CASES[name]["rate"]).sum(0))
    else:                       # x = loc + scale * z: dx/dloc = 1, dx/dscale = (x - loc) / scale
        _close(gp["loc"].grad, np.full(REAL.shape, 6.0))
        _close(gp["scale"].grad, ((xs - REAL) / POS).sum(0))


KL_PAIRS = [("Normal", "Normal"), ("Laplace", "Laplace"), ("Uniform", "Uniform"), ("Exponential", "Exponential"),
            ("Bernoulli", "Bernoulli_logits"), ("Categorical", "Categorical_logits"),
            ("OneHotCategorical", "OneHotCategorical"), ("Gamma", "Gamma"), ("Beta", "Beta"),
            ("Dirichlet", "Dirichlet"), ("MultivariateNormal", "MultivariateNormal_tril")]


def _other(name):
    """A second distribution of the family (different parameters)."""
    kw = {k: (v[::-1].copy() if k not in ("low", "high") else v) for k, v in CASES[name].items()}
    if name == "Uniform":
        kw = dict(low=CASES[name]["low"] - 0.5, high=CASES[name]["high"] + 1.0)
    if "Categorical" in name:
        kw = {k: v[:, ::-1].copy() for k, v in CASES[name].items()}
    if name == "OneHotCategorical":
        kw = {k: v[:, ::-1].copy() for k, v in CASES[name].items()}
    cls = name.split("_")[0]
    return (getattr(D, cls)(**{k: gradc.tensor(v) for k, v in kw.items()}),
            getattr(td, cls)(**{k: torch.tensor(v) for k, v in kw.items()}))


@pytest.mark.parametrize("pn,qn", KL_PAIRS, ids=[f"{p}-{q}" for p, q in KL_PAIRS])
def test_kl_divergence_matches_torch(pn, qn):
    gp, tp, _, _ = _make(pn)
    gq, tq = _other(qn)
    _close(D.kl_divergence(gp, gq), td.kl_divergence(tp, tq), rtol=1e-8, msg="kl(p, q)")
    _close(D.kl_divergence(gq, gp), td.kl_divergence(tq, tp), rtol=1e-8, msg="kl(q, p)")
    _close(D.kl_divergence(gp, gp), td.kl_divergence(tp, tp), atol=1e-9, msg="kl(p, p)")


def test_kl_of_independent_and_register_kl():
    n = D.Independent(D.Normal(gradc.tensor(REAL), gradc.tensor(POS)), 1)
    m = D.Independent(D.Normal(gradc.tensor(-REAL), gradc.tensor(POS2)), 1)
    tn = td.Independent(td.Normal(torch.tensor(REAL), torch.tensor(POS)), 1)
    tm = td.Independent(td.Normal(torch.tensor(-REAL), torch.tensor(POS2)), 1)
    _close(D.kl_divergence(n, m), td.kl_divergence(tn, tm))
    v = RNG.standard_normal((5, 2, 3))
    _close(n.log_prob(gradc.tensor(v)), tn.log_prob(torch.tensor(v)))
    _close(n.entropy(), tn.entropy())
    assert n.batch_shape == (2,) and n.event_shape == (3,)
    with pytest.raises(D.KLNotImplementedError, match="Normal || Gamma"):
        D.kl_divergence(D.Normal(0.0, 1.0), D.Gamma(1.0, 1.0))

    class MyNormal(D.Normal):
        pass

    @D.register_kl(MyNormal, D.Gamma)
    def _kl(p, q):
        return p.loc * 0 + 42.0
    assert float(D.kl_divergence(MyNormal(0.0, 1.0), D.Gamma(1.0, 1.0))) == 42.0
    # the most specific registration wins; MyNormal || MyNormal still finds Normal || Normal
    _close(D.kl_divergence(MyNormal(0.0, 1.0), MyNormal(1.0, 2.0)),
           td.kl_divergence(td.Normal(0.0, 1.0), td.Normal(1.0, 2.0)), rtol=1e-6)


def test_expand_and_enumerate_support_match_torch():
    for name in ("Normal", "Bernoulli", "Categorical", "OneHotCategorical", "Gamma", "Dirichlet", "Uniform",
                 "MultivariateNormal"):
        g, t, _, _ = _make(name)
        ge, te = g.expand((5,) + g.batch_shape), t.expand((5,) + tuple(t.batch_shape))
        assert ge.batch_shape == tuple(te.batch_shape) and ge.event_shape == tuple(te.event_shape)
        v = _values(name)[:1]
        _close(ge.log_prob(gradc.tensor(v)), te.log_prob(torch.tensor(v)), msg=name)
        if t.has_enumerate_support:
            for expand in (True, False):
                _close(g.enumerate_support(expand), t.enumerate_support(expand).to(torch.float64)
                       if name != "Categorical" else t.enumerate_support(expand), msg=f"{name} support")


def test_bad_parameters_and_values_raise_named_errors():
    with pytest.raises(D.DistributionError, match="parameter scale"):
        D.Normal(gradc.tensor([0.0, 1.0]), gradc.tensor([1.0, -1.0]))
    with pytest.raises(D.DistributionError, match="exactly one of probs or logits"):
        D.Bernoulli()
    with pytest.raises(D.DistributionError, match="exactly one of probs or logits"):
        D.Categorical(probs=gradc.tensor([0.5, 0.5]), logits=gradc.tensor([0.0, 0.0]))
    with pytest.raises(D.DistributionError, match="low"):
        D.Uniform(2.0, 1.0)
    with pytest.raises(D.DistributionError, match="log_prob"):
        D.Exponential(1.0).log_prob(gradc.tensor(-1.0))
    with pytest.raises(D.DistributionError, match="does not broadcast"):
        D.Normal(gradc.zeros(3), 1.0).log_prob(gradc.zeros(4))
    with pytest.raises(D.DistributionError, match="covariance_matrix"):
        D.MultivariateNormal(gradc.zeros(2), covariance_matrix=gradc.tensor([[1.0, 2.0], [2.0, 1.0]]))
    assert isinstance(D.DistributionError("x"), (gradc.GradcError, ValueError))
    # validate_args=False skips the checks (as in PyTorch)
    D.Normal(0.0, -1.0, validate_args=False)


def test_compiled_log_prob_and_rsample_equal_eager_and_draw_afresh():
    loc = gradc.tensor(REAL, requires_grad=True)
    scale = gradc.tensor(POS)

    def loss(loc, scale):
        d = D.Normal(loc, scale, validate_args=False)
        x = d.rsample((3,))
        return (d.log_prob(x) + D.kl_divergence(d, D.Normal(0.0, 1.0, validate_args=False))).sum()
    f = gradc.compile(loss)
    gradc.manual_seed(0)
    a = [f(loc, scale).item() for _ in range(3)]
    gradc.manual_seed(0)
    b = [loss(loc, scale).item() for _ in range(3)]
    np.testing.assert_allclose(a, b, rtol=1e-10)
    assert len(set(a)) == 3 and f.trace_count == 1


def test_validation_inside_a_compiled_function_is_a_check_of_the_program():
    import warnings
    f = gradc.compile(lambda loc, scale: D.Normal(loc, scale).log_prob(loc).sum(), fullgraph=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # traced, with validation on: no fallback
        out = f(gradc.tensor(REAL), gradc.ones_like(gradc.tensor(REAL)))
    _close(out, td.Normal(torch.tensor(REAL), 1.0).log_prob(torch.tensor(REAL)).sum())
    assert f.trace_count == 1
    with pytest.raises(D.DistributionError, match="parameter scale"):   # a ValueError, as eagerly and in PyTorch
        f(gradc.tensor(REAL), -gradc.ones_like(gradc.tensor(REAL)))
    g = gradc.compile(lambda logits, a: D.Categorical(logits=logits).log_prob(a).sum(), fullgraph=True)
    logits = gradc.zeros(2, 3)
    assert g(logits, gradc.tensor([0, 2])).item() == pytest.approx(2 * -math.log(3))
    with pytest.raises(ValueError, match="log_prob's argument"):
        g(logits, gradc.tensor([0, 3]))


def test_compiled_discrete_draws_equal_eager_draws_under_one_seed():
    probs = gradc.tensor(SIMPLEX)

    def draw(probs):
        c = D.Categorical(probs=probs, validate_args=False)
        b = D.Bernoulli(probs=probs, validate_args=False)
        oh = D.OneHotCategorical(probs=probs, validate_args=False)
        return c.sample((6,)), b.sample((2,)), oh.sample((3,))
    f = gradc.compile(draw)
    gradc.manual_seed(7)
    got = [f(probs) for _ in range(2)]
    gradc.manual_seed(7)
    want = [draw(probs) for _ in range(2)]
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(got[0][0].numpy(), got[1][0].numpy()) and f.trace_count == 1


def test_gamma_rsample_gradient_is_the_implicit_one_torch_computes():
    alpha = gradc.tensor(np.array([0.2, 0.9, 3.0, 40.0]), requires_grad=True)
    rate = gradc.tensor(np.array([1.0, 2.0, 0.5, 1.5]), requires_grad=True)
    gradc.manual_seed(0)
    x = D.Gamma(alpha, rate).rsample((50,))
    x.sum().backward()
    xs = x.detach().numpy() * rate.detach().numpy()   # the standard draws
    a = np.broadcast_to(alpha.detach().numpy(), xs.shape)
    want = torch._standard_gamma_grad(torch.tensor(a), torch.tensor(xs)).numpy() / rate.detach().numpy()
    np.testing.assert_allclose(alpha.grad.numpy(), want.sum(0), rtol=2e-4)   # (torch's is an approximation)
    np.testing.assert_allclose(rate.grad.numpy(), (-x.detach().numpy() / rate.detach().numpy()).sum(0), rtol=1e-10)
    gradc.manual_seed(0)
    np.testing.assert_array_equal(D.Gamma(alpha, rate).sample((50,)).numpy(), x.detach().numpy())


@pytest.mark.parametrize("name", ["Gamma", "Beta", "Dirichlet"])
def test_rsample_gradients_estimate_the_gradient_of_the_mean(name):
    n = 20000
    if name == "Gamma":
        a, b = gradc.tensor([0.7, 3.0], requires_grad=True), gradc.tensor([1.0, 2.0], requires_grad=True)
        d, analytic = D.Gamma(a, b), lambda: [(1 / b).detach().numpy(), (-a / b ** 2).detach().numpy()]
    elif name == "Beta":
        a, b = gradc.tensor([0.7, 3.0], requires_grad=True), gradc.tensor([2.0, 0.5], requires_grad=True)
        d = D.Beta(a, b)
        analytic = lambda: [(b / (a + b) ** 2).detach().numpy(), (-a / (a + b) ** 2).detach().numpy()]  # noqa: E731
    else:
        a = gradc.tensor([0.7, 3.0, 1.5], requires_grad=True)
        b = None
        d = D.Dirichlet(a)
        analytic = lambda: [np.array([1 / a.sum().item() - a[0].item() / a.sum().item() ** 2,  # noqa: E731
                                      -a[0].item() / a.sum().item() ** 2, -a[0].item() / a.sum().item() ** 2])]
    gradc.manual_seed(0)
    x = d.rsample((n,))
    target = x[..., 0] if name == "Dirichlet" else x
    (target.sum() / n).backward()
    got = [a.grad.numpy()] + ([b.grad.numpy()] if b is not None else [])
    for g, w in zip(got, analytic()):
        np.testing.assert_allclose(g, w, rtol=0.05, atol=0.01)
