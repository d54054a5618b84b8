"""gradc.optim: SGD, Adam and AdamW against NumPy implementations of PyTorch's documented update
rules (written out below), over several steps and for every option; zero_grad; state_dict round
trips; and, when torch is installed, against torch.optim itself."""
import copy
import math

import numpy as np
import pytest

import gradc
from gradc import GradcError, nn, optim

STEPS = 4
SHAPES = [(3, 4), (5,)]


def make_grads(seed=0, steps=STEPS):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]


def make_params(seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in SHAPES]


def gradc_params(values, dtype=np.float64):
    return [nn.Parameter(gradc.tensor(v.astype(dtype))) for v in values]


def run_gradc(opt_cls, kwargs, params0, grads, dtype=np.float64):
    params = gradc_params(params0, dtype)
    opt = opt_cls(params, **kwargs)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = gradc.tensor(g.astype(dtype))
        opt.step()
    return [p.detach().numpy() for p in params], opt


# ---------------------------------------------------------------------- NumPy references
def sgd_reference(params, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """torch.optim.SGD, per its documentation:
        g = g + weight_decay * p
        if momentum: b = g (first step) else b = momentum * b + (1 - dampening) * g
                     g = g + momentum * b if nesterov else b
        p = p - lr * g
    """
    params = [p.copy() for p in params]
    bufs = [None] * len(params)
    for gs in grads:
        for i, g in enumerate(gs):
            g = g + weight_decay * params[i]
            if momentum:
                bufs[i] = g.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * g
                g = g + momentum * bufs[i] if nesterov else bufs[i]
            params[i] = params[i] - lr * g
    return params


def adam_reference(params, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    """torch.optim.Adam / AdamW, per their documentation (t counts from 1):
        Adam:  g = g + weight_decay * p          AdamW: p = p * (1 - lr * weight_decay)
        m = b1 * m + (1 - b1) * g ;  v = b2 * v + (1 - b2) * g^2
        m_hat = m / (1 - b1^t) ;     v_hat = v / (1 - b2^t)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)
    """
    b1, b2 = betas
    params = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, gs in enumerate(grads, start=1):
        for i, g in enumerate(gs):
            if weight_decay:
                if decoupled:
                    params[i] = params[i] * (1 - lr * weight_decay)
                else:
                    g = g + weight_decay * params[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1 ** t)
            v_hat = v[i] / (1 - b2 ** t)
            params[i] = params[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return params


def assert_params_close(got, expected, rtol=1e-10, atol=1e-12):
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------- SGD
SGD_CASES = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.1, momentum=0.9),
    "dampening": dict(lr=0.1, momentum=0.9, dampening=0.3),
    "nesterov": dict(lr=0.05, momentum=0.8, nesterov=True),
    "weight_decay": dict(lr=0.1, weight_decay=0.05),
    "all": dict(lr=0.05, momentum=0.7, weight_decay=0.02, nesterov=True),
}


@pytest.mark.parametrize("case", list(SGD_CASES))
def test_sgd_matches_reference(case):
    kwargs = SGD_CASES[case]
    p0, grads = make_params(), make_grads()
    got, _ = run_gradc(optim.SGD, kwargs, p0, grads)
    assert_params_close(got, sgd_reference(p0, grads, **kwargs))
    # and the options matter: each differs from plain SGD at the same lr
    if case != "plain":
        plain = sgd_reference(p0, grads, lr=kwargs["lr"])
        assert not np.allclose(got[0], plain[0])


def test_sgd_float32_parameters():
    p0, grads = make_params(), make_grads()
    got, _ = run_gradc(optim.SGD, dict(lr=0.1, momentum=0.9), p0, grads, dtype=np.float32)
    assert got[0].dtype == np.float32
    expected = sgd_reference([p.astype(np.float32).astype(np.float64) for p in p0],
                             [[g.astype(np.float32).astype(np.float64) for g in gs] for gs in grads],
                             lr=0.1, momentum=0.9)
    assert_params_close(got, expected, rtol=1e-5, atol=1e-6)


def test_sgd_hand_computed_two_steps():
    # p = 1, g = 0.5 then 0.5, lr = 0.1, momentum = 0.9:
    #   step 1: b = 0.5          ; p = 1 - 0.05 = 0.95
    #   step 2: b = 0.45 + 0.5   ; p = 0.95 - 0.095 = 0.855
    p = nn.Parameter(gradc.tensor([1.0], dtype=gradc.float64))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    for expected in (0.95, 0.855):
        p.grad = gradc.tensor([0.5], dtype=gradc.float64)
        opt.step()
        assert p.item() == pytest.approx(expected, abs=1e-12)
    assert opt.state[p]["momentum_buffer"].item() == pytest.approx(0.95, abs=1e-12)


def test_sgd_validates_arguments():
    p = [nn.Parameter(gradc.ones(1))]
    with pytest.raises(GradcError, match="nesterov"):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(GradcError, match="nesterov"):
        optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(GradcError, match="lr"):
        optim.SGD(p, lr=-1.0)
    with pytest.raises(GradcError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(GradcError, match="leaf"):
        optim.SGD([gradc.ones(1, requires_grad=True) * 2.0], lr=0.1)


# ---------------------------------------------------------------------- Adam / AdamW
ADAM_CASES = {
    "default": dict(),
    "lr": dict(lr=0.05),
    "betas": dict(lr=0.01, betas=(0.8, 0.95)),
    "eps": dict(lr=0.01, eps=1e-1),
    "weight_decay": dict(lr=0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("case", list(ADAM_CASES))
def test_adam_matches_reference(case):
    kwargs = ADAM_CASES[case]
    p0, grads = make_params(), make_grads()
    got, opt = run_gradc(optim.Adam, kwargs, p0, grads)
    assert_params_close(got, adam_reference(p0, grads, **kwargs))
    assert opt.state[opt.param_groups[0]["params"][0]]["step"].item() == STEPS
    if case != "default":
        assert not np.allclose(got[0], adam_reference(p0, grads)[0])


ADAMW_CASES = {
    "default_decay": dict(),  # AdamW's default weight_decay is 0.01
    "decay": dict(lr=0.05, weight_decay=0.2),
    "betas_eps": dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.1),
    "no_decay": dict(lr=0.01, weight_decay=0.0),
}


@pytest.mark.parametrize("case", list(ADAMW_CASES))
def test_adamw_matches_reference(case):
    kwargs = ADAMW_CASES[case]
    p0, grads = make_params(), make_grads()
    got, opt = run_gradc(optim.AdamW, kwargs, p0, grads)
    ref_kwargs = dict(kwargs)
    ref_kwargs.setdefault("weight_decay", 1e-2)
    assert opt.param_groups[0]["weight_decay"] == ref_kwargs["weight_decay"]
    assert_params_close(got, adam_reference(p0, grads, decoupled=True, **ref_kwargs))
    if ref_kwargs["weight_decay"]:
        # decoupled decay differs from Adam's L2 decay with the same coefficient
        assert not np.allclose(got[0], adam_reference(p0, grads, decoupled=False, **ref_kwargs)[0])


def test_adam_hand_computed_first_step():
    # t = 1: m_hat = g, v_hat = g^2, so p -= lr * g / (|g| + eps) = lr * sign(g) (up to eps)
    p = nn.Parameter(gradc.tensor([1.0, -2.0, 0.5], dtype=gradc.float64))
    opt = optim.Adam([p], lr=0.1, eps=0.0)
    p.grad = gradc.tensor([3.0, -0.01, 2.0], dtype=gradc.float64)
    opt.step()
    np.testing.assert_allclose(p.detach().numpy(), [0.9, -1.9, 0.4], rtol=1e-12)


def test_adam_validates_arguments():
    p = [nn.Parameter(gradc.ones(1))]
    with pytest.raises(GradcError, match="betas"):
        optim.Adam(p, betas=(0.9, 1.0))
    with pytest.raises(GradcError, match="lr"):
        optim.AdamW(p, lr=-0.1)


# ---------------------------------------------------------------------- shared behaviour
def test_param_groups_use_their_own_options():
    p0, grads = make_params(), make_grads()
    a, b = gradc_params(p0)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.01, "momentum": 0.5}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.0
    for gs in grads:
        a.grad, b.grad = gradc.tensor(gs[0]), gradc.tensor(gs[1])
        opt.step()
    np.testing.assert_allclose(a.detach().numpy(), sgd_reference([p0[0]], [[g[0]] for g in grads], lr=0.1)[0])
    np.testing.assert_allclose(b.detach().numpy(),
                               sgd_reference([p0[1]], [[g[1]] for g in grads], lr=0.01, momentum=0.5)[0])


@pytest.mark.parametrize("opt_cls", [optim.SGD, optim.Adam, optim.AdamW])
def test_step_skips_parameters_without_grad(opt_cls):
    a, b = gradc_params(make_params())
    before = b.detach().numpy().copy()
    opt = opt_cls([a, b], lr=0.1)
    a.grad = gradc.ones_like(a)
    opt.step()
    np.testing.assert_array_equal(b.detach().numpy(), before)
    assert not np.array_equal(a.detach().numpy(), make_params()[0])
    assert b not in opt.state or not opt.state[b]


@pytest.mark.parametrize("opt_cls", [optim.SGD, optim.Adam, optim.AdamW])
def test_zero_grad(opt_cls):
    params = gradc_params(make_params())
    opt = opt_cls(params, lr=0.1)
    for p in params:
        p.grad = gradc.tensor(np.full(p.shape, -np.inf))  # an overflowed gradient
    opt.zero_grad(set_to_none=False)
    for p in params:
        assert p.grad is not None and p.grad.shape == p.shape and p.grad.dtype is p.dtype
        assert np.array_equal(p.grad.numpy(), np.zeros(p.shape)) and not np.signbit(p.grad.numpy()).any()
    opt.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in params)
    opt.zero_grad()  # the default sets to None, and is fine with no grads at all
    assert all(p.grad is None for p in params)


def test_step_runs_without_recording_history():
    p = nn.Parameter(gradc.tensor([1.0, 2.0]))
    opt = optim.Adam([p], lr=0.1)
    (p * p).sum().backward()
    opt.step()
    assert p.is_leaf and p.requires_grad and p.grad_fn is None
    assert all(t.grad_fn is None for t in opt.state[p].values())


@pytest.mark.parametrize("opt_cls,kwargs", [
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (optim.Adam, dict(lr=0.01, weight_decay=0.1)),
    (optim.AdamW, dict(lr=0.01, betas=(0.8, 0.99))),
])
def test_state_dict_round_trip_continues_identically(opt_cls, kwargs):
    p0, grads = make_params(), make_grads(steps=6)
    # original: six steps without interruption
    ref_params = gradc_params(p0)
    ref = opt_cls(ref_params, **kwargs)
    for gs in grads:
        for p, g in zip(ref_params, gs):
            p.grad = gradc.tensor(g)
        ref.step()
    # interrupted: three steps, save, rebuild over copies of the parameters, load, three more
    params = gradc_params(p0)
    opt = opt_cls(params, **kwargs)
    for gs in grads[:3]:
        for p, g in zip(params, gs):
            p.grad = gradc.tensor(g)
        opt.step()
    saved = copy.deepcopy(opt.state_dict())
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"] and sorted(sd["state"]) == [0, 1]
    assert sd["param_groups"][0]["params"] == [0, 1]
    for gs in grads[3:4]:  # stepping the original does not change what was saved
        for p, g in zip(params, gs):
            p.grad = gradc.tensor(g)
        opt.step()
    for k, v in sd["state"][0].items():
        np.testing.assert_array_equal(v.numpy(), saved["state"][0][k].numpy())

    resumed_params = gradc_params(_params_after(p0, grads[:3], opt_cls, kwargs))  # as they were when saved
    resumed = opt_cls(resumed_params, lr=123.0)  # hyper-parameters come back from the state dict
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == kwargs["lr"]
    for gs in grads[3:]:
        for p, g in zip(resumed_params, gs):
            p.grad = gradc.tensor(g)
        resumed.step()
    assert_params_close([p.detach().numpy() for p in resumed_params], [p.detach().numpy() for p in ref_params],
                        rtol=0, atol=0)


def _params_after(p0, grads, opt_cls, kwargs):
    params, _ = run_gradc(opt_cls, kwargs, p0, grads)
    return params


def test_load_state_dict_rejects_a_different_parameter_layout():
    a, b = gradc_params(make_params())
    opt = optim.Adam([a, b], lr=0.1)
    a.grad, b.grad = gradc.ones_like(a), gradc.ones_like(b)
    opt.step()
    other = optim.Adam([nn.Parameter(gradc.ones(3, 4, dtype=gradc.float64))], lr=0.1)
    with pytest.raises(GradcError, match="different number"):
        other.load_state_dict(opt.state_dict())
    swapped = optim.Adam([b, a], lr=0.1)  # same count, wrong shapes
    with pytest.raises(GradcError, match=r"shape"):
        swapped.load_state_dict(opt.state_dict())


# ---------------------------------------------------------------------- against torch.optim
TORCH_CASES = [("SGD", dict(lr=0.1)), ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2)),
               ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05)),
               ("Adam", dict(lr=0.01)), ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
               ("AdamW", dict(lr=0.01)), ("AdamW", dict(lr=0.02, betas=(0.7, 0.9), weight_decay=0.3))]


@pytest.mark.parametrize("name,kwargs", TORCH_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(TORCH_CASES)])
def test_matches_torch_optim(name, kwargs):
    torch = pytest.importorskip("torch")
    p0, grads = make_params(), make_grads(steps=5)
    got, _ = run_gradc(getattr(optim, name), kwargs, p0, grads, dtype=np.float32)
    tparams = [torch.nn.Parameter(torch.tensor(p.astype(np.float32))) for p in p0]
    topt = getattr(torch.optim, name)(tparams, **kwargs)
    for gs in grads:
        for p, g in zip(tparams, gs):
            p.grad = torch.tensor(g.astype(np.float32))
        topt.step()
    for a, b in zip(got, tparams):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_state_dict_continuation_matches_torch():
    torch = pytest.importorskip("torch")
    p0, grads = make_params(), make_grads(steps=4)
    params = gradc_params(p0, np.float32)
    opt = optim.Adam(params, lr=0.01)
    tparams = [torch.nn.Parameter(torch.tensor(p.astype(np.float32))) for p in p0]
    topt = torch.optim.Adam(tparams, lr=0.01)
    for i, gs in enumerate(grads):
        if i == 2:  # reload both from their own state dicts midway
            opt.load_state_dict(opt.state_dict())
            topt.load_state_dict(topt.state_dict())
            assert float(opt.state_dict()["state"][0]["step"].item()) == float(topt.state_dict()["state"][0]["step"])
        for p, tp, g in zip(params, tparams, gs):
            p.grad = gradc.tensor(g.astype(np.float32))
            tp.grad = torch.tensor(g.astype(np.float32))
        opt.step()
        topt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert math.isclose(float(opt.state[params[0]]["step"].item()), 4.0)
