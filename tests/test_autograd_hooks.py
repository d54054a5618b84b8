"""Tensor hooks, retain_grad, backward(create_graph=, inputs=) and second-order gradients through
saved outputs, against hand-computed values and PyTorch; eagerly and in compiled training steps."""
import numpy as np
import pytest

import gradc
import gradc.nn as nn


def _torch():
    return pytest.importorskip("torch")


def _run(lib, fn):
    lib.manual_seed(0)
    return fn(lib)


def _np(t):
    return t.detach().numpy()


def test_second_order_through_saved_outputs_matches_pytorch():
    torch = _torch()

    def f(lib):
        x = lib.tensor([0.3, -1.2, 0.7, 2.0], dtype=lib.float64, requires_grad=True)
        y = (lib.tanh(x) * lib.sigmoid(x) + lib.exp(x) + lib.softmax(x, 0) * lib.sqrt(x * x + 1)).sum()
        g, = lib.autograd.grad(y, x, create_graph=True)
        h, = lib.autograd.grad((g * g).sum(), x)
        return _np(h)
    np.testing.assert_allclose(f(gradc), f(torch), rtol=1e-10)


def test_backward_create_graph_gives_grads_with_history():
    torch = _torch()

    def f(lib):
        x = lib.tensor([0.3, -1.2, 0.7], dtype=lib.float64, requires_grad=True)
        (x.tanh() ** 3).sum().backward(create_graph=True)
        gx = x.grad
        assert gx.requires_grad
        x.grad = None
        (gx * gx).sum().backward()
        return _np(x.grad)
    np.testing.assert_allclose(f(gradc), f(torch), rtol=1e-10)


def test_gradient_penalty_step_matches_pytorch():
    """WGAN-GP: the critic's gradient norm at interpolates, differentiated into the weights."""
    torch = _torch()
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((8, 4)), rng.standard_normal((1, 8))
    xs = rng.standard_normal((5, 4))

    def f(lib):
        net = lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.Tanh(), lib.nn.Linear(8, 1)).double()
        with lib.no_grad():
            net[0].weight.copy_(lib.tensor(w1)), net[2].weight.copy_(lib.tensor(w2))
            net[0].bias.zero_(), net[2].bias.zero_()
        x = lib.tensor(xs, requires_grad=True)
        out = net(x)
        g, = lib.autograd.grad(out, x, grad_outputs=lib.ones_like(out), create_graph=True)
        penalty = ((g.norm(2, dim=1) - 1) ** 2).mean()
        penalty.backward()
        return [None if p.grad is None else _np(p.grad) for p in net.parameters()]
    ours, theirs = f(gradc), f(torch)
    assert ours[-1] is None and theirs[-1] is None   # the last bias does not reach the input gradient
    for a, b in zip(ours[:-1], theirs[:-1]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_hooks_and_retain_grad_match_pytorch():
    torch = _torch()

    def f(lib):
        x = lib.tensor([0.3, -1.2, 0.7], requires_grad=True)
        seen = []
        x.register_hook(lambda g: seen.append(g.clone()))
        doubled = x.register_hook(lambda g: g * 2)
        m = x * 3
        m.retain_grad()
        m.register_hook(lambda g: g + 1)     # retain_grad still sees the hooked gradient
        (m * m).sum().backward()
        first = (_np(x.grad), _np(m.grad), m.retains_grad, x.retains_grad)
        doubled.remove()
        x.grad = None
        (x * x).sum().backward()
        return first + (_np(x.grad), _np(seen[0]), len(seen))
    for a, b in zip(f(gradc), f(torch)):
        np.testing.assert_allclose(a, b)


def test_hook_errors_name_the_fix():
    x = gradc.ones(3)
    with pytest.raises(gradc.AutogradError, match="does not require grad"):
        x.register_hook(lambda g: g)
    y = gradc.ones(3, requires_grad=True)
    y.register_hook(lambda g: g.sum())
    with pytest.raises(gradc.AutogradError, match="same shape"):
        (y * 2).sum().backward()


def test_backward_inputs_accumulates_only_there():
    torch = _torch()

    def f(lib):
        w = lib.tensor([1.0, 2.0], requires_grad=True)
        v = lib.tensor([3.0, 4.0], requires_grad=True)
        h = w * v
        (h * h).sum().backward(inputs=[w, h])
        return _np(w.grad), v.grad, _np(h.grad)
    a, b = f(gradc), f(torch)
    np.testing.assert_allclose(a[0], b[0])
    assert a[1] is None and b[1] is None
    np.testing.assert_allclose(a[2], b[2])


def _sgd_pair():
    gradc.manual_seed(0)
    model = nn.Linear(3, 2)
    twin = nn.Linear(3, 2)
    twin.load_state_dict(model.state_dict())
    return model, gradc.optim.SGD(model.parameters(), lr=0.1), twin, gradc.optim.SGD(twin.parameters(), lr=0.1)


def test_a_compiled_step_runs_leaf_hooks_and_retraces_when_they_change():
    model, opt, twin, topt = _sgd_pair()
    x = gradc.randn(4, 3) * 5

    def make(m, o):
        def step(x):
            o.zero_grad()
            loss = m(x).pow(2).sum()
            loss.backward()
            o.step()
            return loss
        return step
    compiled, eager = gradc.compile(make(model, opt)), make(twin, topt)
    for phase in range(3):
        if phase == 1:
            handles = [p.register_hook(lambda g: g.clamp(-0.1, 0.1)) for p in (model.weight, twin.weight)]
        if phase == 2:
            for h in handles:
                h.remove()
        for _ in range(3):
            compiled(x), eager(x)
        np.testing.assert_allclose(_np(model.weight), _np(twin.weight), rtol=1e-5, atol=1e-6)
    assert compiled.trace_count == 2   # without the hook (run again once it is removed), and with it
    assert any("register_hook" in r for r in compiled.recompile_reasons)


def test_hooks_and_create_graph_inside_compile_say_what_to_do():
    x = gradc.ones(3, requires_grad=True)
    with pytest.raises(gradc.TraceError, match="before calling the compiled function"):
        gradc.compile(lambda x: x.register_hook(lambda g: g), fullgraph=True)(x)
    with pytest.raises(gradc.TraceError, match="create_graph"):
        gradc.compile(lambda x: (x * x).sum().backward(create_graph=True), fullgraph=True)(x)


def test_gradcheck_names_match_pytorch():
    x = gradc.tensor([0.5, 1.5], dtype=gradc.float64, requires_grad=True)
    assert gradc.autograd.gradcheck(lambda x: x.tanh(), (x,))
    assert gradc.autograd.gradgradcheck(lambda x: x.sigmoid() * x, (x,))
    assert not gradc.autograd.gradcheck(lambda x: x * x.detach(), (x,), raise_exception=False)
    gradc.testing.assert_close(gradc.ones(2), gradc.ones(2))


def test_second_order_through_a_compiled_forward_says_so():
    lin = nn.Linear(3, 1)
    x = gradc.randn(4, 3, requires_grad=True)
    out = gradc.compile(lin)(x)
    with pytest.raises(gradc.AutogradError, match="cannot be differentiated again"):
        gradc.autograd.grad(out.sum(), x, create_graph=True)
