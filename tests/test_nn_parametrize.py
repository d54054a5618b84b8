"""nn.utils weight_norm / spectral_norm (the hook-based ones and the parametrizations), parametrize
and skip_init against PyTorch: parameter and state-dict names, forward values and gradients from
identical state (torch's state dict loads unchanged), the power iteration step by step in training
and not in eval mode, removal; and a compiled step equal to eager without tracing again."""
import numpy as np
import pytest

import gradc
from gradc import GradcError, nn
from gradc.nn.utils import parametrize, parametrizations as P

torch = pytest.importorskip("torch")
RNG = np.random.default_rng(0)
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.nn.utils.weight_norm.*is deprecated:FutureWarning")


def _pair(kind):
    if kind == "linear":
        return nn.Linear(4, 3), torch.nn.Linear(4, 3), (2, 4)
    if kind == "conv":
        return nn.Conv2d(2, 3, 3), torch.nn.Conv2d(2, 3, 3), (2, 2, 5, 5)
    return nn.ConvTranspose2d(2, 3, 3), torch.nn.ConvTranspose2d(2, 3, 3), (2, 2, 4, 4)


def _load_from_torch(g, t):
    g.load_state_dict({k: gradc.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})


def _close(a, b, tol=1e-5):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=tol, atol=tol)


def _grads(g, t, shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    yg, yt = g(gradc.tensor(x)), t(torch.tensor(x))
    _close(yg, yt)
    (yg ** 2).sum().backward()
    (yt ** 2).sum().backward()
    tp = dict(t.named_parameters())
    for n, p in g.named_parameters():
        _close(p.grad, tp[n].grad, 1e-4)


@pytest.mark.parametrize("kind,dim", [("linear", 0), ("linear", None), ("conv", 0), ("conv", 1)])
def test_weight_norm_hooks_match_torch(kind, dim):
    g, t, shape = _pair(kind)
    g, t = nn.utils.weight_norm(g, dim=dim), torch.nn.utils.weight_norm(t, dim=dim)
    assert [n for n, _ in g.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert list(g.state_dict()) == list(t.state_dict())
    _load_from_torch(g, t)
    _grads(g, t, shape)
    nn.utils.remove_weight_norm(g)
    torch.nn.utils.remove_weight_norm(t)
    assert [n for n, _ in g.named_parameters()] == [n for n, _ in t.named_parameters()]
    _close(g.weight, t.weight)
    with pytest.raises(GradcError, match="weight_norm of 'weight' not found"):
        nn.utils.remove_weight_norm(g)


@pytest.mark.parametrize("kind", ["linear", "conv", "convT"])
def test_spectral_norm_hooks_match_torch_in_training_and_eval(kind):
    g, t, shape = _pair(kind)
    g, t = nn.utils.spectral_norm(g), torch.nn.utils.spectral_norm(t)
    assert list(g.state_dict()) == list(t.state_dict())
    _load_from_torch(g, t)
    x = RNG.standard_normal(shape).astype(np.float32)
    for _ in range(3):   # each training call runs one power iteration
        _close(g(gradc.tensor(x)), t(torch.tensor(x)))
        _close(g.weight_u, t.weight_u)
        _close(g.weight_v, t.weight_v)
    g.eval(), t.eval()
    u = g.weight_u.numpy().copy()
    _close(g(gradc.tensor(x)), t(torch.tensor(x)))
    np.testing.assert_array_equal(g.weight_u.numpy(), u)
    g.train(), t.train()
    _grads(g, t, shape)
    nn.utils.remove_spectral_norm(g)
    torch.nn.utils.remove_spectral_norm(t)
    assert list(g.state_dict()) == list(t.state_dict())
    _close(g.weight, t.weight)


@pytest.mark.parametrize("kind,dim", [("linear", 0), ("conv", None)])
def test_weight_norm_parametrization_matches_torch(kind, dim):
    g, t, shape = _pair(kind)
    g, t = P.weight_norm(g, dim=dim), torch.nn.utils.parametrizations.weight_norm(t, dim=dim)
    assert list(g.state_dict()) == list(t.state_dict())
    assert type(g).__name__ == type(t).__name__
    _load_from_torch(g, t)
    _close(g.weight, t.weight)
    _grads(g, t, shape)
    parametrize.remove_parametrizations(g, "weight")
    torch.nn.utils.parametrize.remove_parametrizations(t, "weight")
    assert type(g) is type(nn.Linear(1, 1)) if kind == "linear" else type(g).__name__ == "Conv2d"
    assert list(g.state_dict()) == list(t.state_dict())
    _close(g.weight, t.weight)


@pytest.mark.parametrize("kind", ["linear", "convT"])
def test_spectral_norm_parametrization_matches_torch(kind):
    g, t, shape = _pair(kind)
    g, t = P.spectral_norm(g), torch.nn.utils.parametrizations.spectral_norm(t)
    assert list(g.state_dict()) == list(t.state_dict())
    _load_from_torch(g, t)
    x = RNG.standard_normal(shape).astype(np.float32)
    for _ in range(3):
        _close(g(gradc.tensor(x)), t(torch.tensor(x)))
        _close(g.parametrizations.weight[0]._u, t.parametrizations.weight[0]._u)
    g.eval(), t.eval()
    v = g.parametrizations.weight[0]._v.numpy().copy()
    _close(g(gradc.tensor(x)), t(torch.tensor(x)))
    np.testing.assert_array_equal(g.parametrizations.weight[0]._v.numpy(), v)
    _grads(g, t, shape)


class Symmetric(nn.Module):
    calls = 0

    def forward(self, x):
        Symmetric.calls += 1
        return x.triu() + x.triu(1).transpose(0, 1)

    def right_inverse(self, a):
        return a.triu()


class TSymmetric(torch.nn.Module):
    def forward(self, x):
        return x.triu() + x.triu(1).transpose(0, 1)

    def right_inverse(self, a):
        return a.triu()


class Scale(nn.Module):
    def forward(self, x):
        return x * 2.0

    def right_inverse(self, x):
        return x / 2.0


def test_parametrize_register_assign_cache_chain_and_remove():
    g, t = nn.Linear(3, 3), torch.nn.Linear(3, 3)
    _load_from_torch(g, t)
    parametrize.register_parametrization(g, "weight", Symmetric())
    torch.nn.utils.parametrize.register_parametrization(t, "weight", TSymmetric())
    assert list(g.state_dict()) == list(t.state_dict()) == ["bias", "parametrizations.weight.original"]
    assert parametrize.is_parametrized(g) and parametrize.is_parametrized(g, "weight")
    assert not parametrize.is_parametrized(g, "bias")
    assert parametrize.type_before_parametrizations(g) is nn.Linear and isinstance(g, nn.Linear)
    _close(g.weight, t.weight)
    w = g.weight.detach().numpy()
    np.testing.assert_array_equal(w, w.T)
    a = RNG.standard_normal((3, 3)).astype(np.float32)
    a = a + a.T
    g.weight = gradc.tensor(a)   # stored through right_inverse
    np.testing.assert_allclose(g.weight.detach().numpy(), a, rtol=1e-6)
    np.testing.assert_allclose(g.parametrizations.weight.original.detach().numpy(), np.triu(a), rtol=1e-6)
    Symmetric.calls = 0
    with parametrize.cached():
        g.weight, g.weight, g(gradc.ones(2, 3))
    assert Symmetric.calls == 1
    g.weight, g.weight
    assert Symmetric.calls == 3
    parametrize.register_parametrization(g, "weight", Scale())
    np.testing.assert_allclose(g.weight.detach().numpy(), 2 * a, rtol=1e-6)
    original = g.parametrizations.weight.original
    parametrize.remove_parametrizations(g, "weight", leave_parametrized=True)
    assert type(g) is nn.Linear and "parametrizations" not in dict(g.named_children())
    assert g.weight is original and isinstance(g.weight, nn.Parameter)   # the same object, so optimizers keep it
    np.testing.assert_allclose(g.weight.detach().numpy(), 2 * a, rtol=1e-6)
    parametrize.register_parametrization(g, "weight", Symmetric())
    parametrize.remove_parametrizations(g, "weight", leave_parametrized=False)
    np.testing.assert_allclose(g.weight.detach().numpy(), np.triu(2 * a), rtol=1e-6)
    with pytest.raises(GradcError, match="no parametrization on 'weight'"):
        parametrize.remove_parametrizations(g, "weight")
    with pytest.raises(GradcError, match="no parameter, buffer"):
        parametrize.register_parametrization(g, "nope", Symmetric())


def test_a_parametrization_that_changes_the_shape_needs_unsafe():
    class Flatten(nn.Module):
        def forward(self, x):
            return x.reshape(-1)
    g = nn.Linear(3, 2)
    with pytest.raises(GradcError, match="unsafe=True"):
        parametrize.register_parametrization(g, "weight", Flatten())
    parametrize.register_parametrization(g, "weight", Flatten(), unsafe=True)
    assert g.weight.shape == (6,)


@pytest.mark.parametrize("how", ["hook", "parametrization"])
def test_compiled_training_step_with_weight_norm_equals_eager(how):
    def run(compiled):
        gradc.manual_seed(0)
        lin = nn.Linear(4, 3)
        lin = nn.utils.weight_norm(lin) if how == "hook" else P.weight_norm(lin)
        opt = gradc.optim.SGD(lin.parameters(), lr=0.1)
        x = gradc.randn(5, 4)

        def step(x):
            opt.zero_grad()
            loss = (lin(x) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        fn = gradc.compile(step) if compiled else step
        return [fn(x).item() for _ in range(4)], fn
    ref, _ = run(False)
    got, fn = run(True)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    assert fn.trace_count <= 2, fn.recompile_reasons   # (as any training step: the second call sees .grad set)


@pytest.mark.parametrize("how", ["hook", "parametrization"])
def test_compiled_spectral_norm_updates_its_buffers_as_eager_does(how):
    def run(compiled):
        gradc.manual_seed(0)
        lin = nn.Linear(4, 3)
        lin = nn.utils.spectral_norm(lin) if how == "hook" else P.spectral_norm(lin)
        x = gradc.randn(5, 4)
        fn = gradc.compile(lambda x: lin(x).sum()) if compiled else (lambda x: lin(x).sum())
        out = [fn(x).item() for _ in range(4)]
        lin.eval()
        out.append(fn(x).item())
        return out, fn
    ref, _ = run(False)
    got, fn = run(True)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    assert len(set(ref[:4])) > 1   # the power iteration moved sigma between calls
    assert fn.trace_count <= 2, fn.recompile_reasons   # eval mode is a new trace


def test_skip_init():
    gradc.manual_seed(0)
    want = gradc.randn(3).numpy()
    gradc.manual_seed(0)
    m = nn.utils.skip_init(nn.Linear, 4, 3)   # no initialisation: the generator is not touched
    np.testing.assert_array_equal(gradc.randn(3).numpy(), want)
    assert type(m) is nn.Linear and m.weight.shape == (3, 4) and m.bias.shape == (3,)

    class NoDevice(nn.Module):
        def __init__(self, n):
            super().__init__()
    with pytest.raises(GradcError, match="'device'"):
        nn.utils.skip_init(NoDevice, 3)


ORTH = [((3, 3), None, True), ((4, 3), None, True), ((3, 4), None, True), ((3, 3), "cayley", True),
        ((4, 3), "cayley", True), ((4, 3), "householder", False), ((3, 3), "householder", True),
        ((3, 4), "matrix_exp", True)]


@pytest.mark.parametrize("shape,orth_map,triv", ORTH, ids=[f"{s[0]}x{s[1]}-{m}-{t}" for s, m, t in ORTH])
def test_orthogonal_matches_torch(shape, orth_map, triv):
    g, t = nn.Linear(shape[1], shape[0]), torch.nn.Linear(shape[1], shape[0])
    _load_from_torch(g, t)
    P.orthogonal(g, orthogonal_map=orth_map, use_trivialization=triv)
    torch.nn.utils.parametrizations.orthogonal(t, orthogonal_map=orth_map, use_trivialization=triv)
    assert list(g.state_dict()) == list(t.state_dict())
    if shape[0] == shape[1] or not triv:   # (a tall base is completed with random columns)
        _close(g.weight, t.weight)
    _load_from_torch(g, t)
    oshape = tuple(t.parametrizations.weight.original.shape)
    # off the diagonal: a Householder parametrization keeps the columns' signs there
    d = (RNG.standard_normal(oshape) * 0.7 * (1 - np.eye(*oshape))).astype(np.float32)
    with torch.no_grad():
        t.parametrizations.weight.original.add_(torch.tensor(d))
    with gradc.no_grad():
        g.parametrizations.weight.original.add_(gradc.tensor(d))
    w = g.weight.detach().numpy()
    small = min(shape)
    gram = w @ w.T if shape[0] == small else w.T @ w
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-5)   # orthonormal rows (or columns)
    _grads(g, t, (2, shape[1]))
    if triv:   # assigning orthogonalises the value and makes it the new base
        a = RNG.standard_normal(shape).astype(np.float32)
        g.weight = gradc.tensor(a)
        with torch.no_grad():
            t.weight = torch.tensor(a)
        if shape[0] == shape[1]:
            _close(g.weight, t.weight)
        np.testing.assert_allclose(g.parametrizations.weight.original.detach().numpy(),
                                   t.parametrizations.weight.original.detach().numpy())


def test_orthogonal_matrix_exp_of_a_large_matrix_and_a_compiled_step():
    from gradc.nn.utils.orthogonal import matrix_exp
    a = RNG.standard_normal((2, 5, 5)) * 40.0   # norm far above 1: many squarings
    np.testing.assert_allclose(matrix_exp(gradc.tensor(a)).numpy(),
                               torch.linalg.matrix_exp(torch.tensor(a)).numpy(), rtol=1e-8, atol=1e-8 * np.exp(
                                   np.abs(a).sum(-2).max()))
    s = RNG.standard_normal((4, 4)) * 5
    s = s - s.T
    np.testing.assert_allclose(matrix_exp(gradc.tensor(s)).numpy(), torch.linalg.matrix_exp(torch.tensor(s)).numpy(),
                               atol=1e-10)

    def run(compiled):
        gradc.manual_seed(0)
        lin = P.orthogonal(nn.Linear(4, 4))
        opt = gradc.optim.SGD(lin.parameters(), lr=0.5)
        x = gradc.randn(6, 4)

        def step(x):
            opt.zero_grad()
            loss = ((lin(x) - x.flip(-1)) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        fn = gradc.compile(step) if compiled else step
        return [fn(x).item() for _ in range(5)], fn, lin
    ref, _, _ = run(False)
    got, fn, lin = run(True)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    assert fn.trace_count <= 2, fn.recompile_reasons
    w = lin.weight.detach().numpy()
    np.testing.assert_allclose(w @ w.T, np.eye(4), atol=1e-5)
    with pytest.raises(GradcError, match="orthogonal_map"):
        P.orthogonal(nn.Linear(3, 3), orthogonal_map="qr")


def test_a_parametrized_module_deep_copies_but_does_not_pickle():
    import copy
    import pickle
    m = P.weight_norm(nn.Linear(3, 2))
    c = copy.deepcopy(m)
    assert type(c) is type(m) and c.parametrizations.weight.original0 is not m.parametrizations.weight.original0
    _close(c.weight, m.weight)
    with gradc.no_grad():
        c.parametrizations.weight.original0.mul_(2.0)
    _close(c.weight, m.weight * 2)
    with pytest.raises(GradcError, match="state_dict"):
        pickle.dumps(m)


def test_transfer_parametrizations_and_params_shares_the_originals():
    a = P.weight_norm(nn.Linear(3, 2))
    b = parametrize.transfer_parametrizations_and_params(a, nn.Linear(3, 2))
    assert parametrize.is_parametrized(b, "weight") and list(b.state_dict()) == list(a.state_dict())
    assert b.parametrizations.weight.original1 is a.parametrizations.weight.original1
    _close(b.weight, a.weight)
    s = nn.Linear(3, 3)
    parametrize.register_parametrization(s, "weight", Symmetric())
    t = parametrize.transfer_parametrizations_and_params(s, nn.Linear(3, 3), "weight")
    assert t.parametrizations.weight.original is s.parametrizations.weight.original
    _close(t.weight, s.weight)
    with pytest.raises(GradcError, match="no parametrization on 'bias'"):
        parametrize.transfer_parametrizations_and_params(s, nn.Linear(3, 3), "bias")


@pytest.mark.parametrize("style", ["parametrizations", "hook"])
def test_weight_norm_on_an_lstm_weight_and_on_a_bias(style):
    gradc.manual_seed(0)
    lstm = nn.LSTM(3, 4)
    x = gradc.randn(2, 1, 3)
    want = lstm(x)[0].detach().numpy()
    if style == "hook":
        nn.utils.weight_norm(lstm, "weight_hh_l0")
    else:
        nn.utils.parametrizations.weight_norm(lstm, "weight_hh_l0")
    out = lstm(x)[0]      # the recurrent weight is read through its parametrization
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    lin = nn.Linear(3, 4)
    bias = lin.bias.detach().numpy().copy()
    if style == "hook":
        nn.utils.weight_norm(lin, "bias")
        g = lin.bias_g
    else:
        nn.utils.parametrizations.weight_norm(lin, "bias")
        g = lin.parametrizations.bias.original0
    np.testing.assert_allclose(g.detach().numpy(), np.abs(bias).reshape(g.shape), rtol=1e-6)   # one norm per element
    assert tuple(g.shape) == (4,)
