"""gradc.autograd.functional against torch.autograd.functional: Jacobians in both modes, Hessians,
and the vector products, for tensor and tuple inputs and outputs, in float64."""
import numpy as np
import pytest

import gradc

torch = pytest.importorskip("torch")
rng = np.random.default_rng(0)
X, Y = rng.standard_normal(3), rng.standard_normal((2, 3))
V = X[::-1].copy()


def _same(ours, theirs, path="result"):
    if isinstance(theirs, (tuple, list)):   # (PyTorch's forward mode returns lists; gradc tuples throughout)
        assert isinstance(ours, tuple) and len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _same(a, b, f"{path}[{i}]")
    else:
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=path)


def _both(call):
    return call(gradc, gradc.autograd.functional), call(torch, torch.autograd.functional)


CASES = {
    "jacobian tuple in and out": lambda t, F: F.jacobian(lambda a, b: ((a * b).sin().sum(0) * a.exp(), (a ** 2).sum() * b),
                                                         (t.tensor(X), t.tensor(Y))),
    "jacobian forward mode": lambda t, F: F.jacobian(lambda a, b: ((a * b).sin().sum(0) * a.exp(), (a ** 2).sum() * b),
                                                     (t.tensor(X), t.tensor(Y)), vectorize=True, strategy="forward-mode"),
    "jacobian of one tensor": lambda t, F: F.jacobian(lambda a: a.tanh() * 2, t.tensor(X)),
    "jacobian of an unused input": lambda t, F: F.jacobian(lambda a, b: a * 2, (t.tensor(X), t.tensor(Y[0]))),
    "hessian of two inputs": lambda t, F: F.hessian(lambda a, b: (a.sin() * b).sum() + (a ** 3).sum(),
                                                    (t.tensor(X), t.tensor(Y[0]))),
    "hessian of one input": lambda t, F: F.hessian(lambda a: (a ** 3).sum() * a.sum(), t.tensor(X)),
    "vjp": lambda t, F: F.vjp(lambda a, b: a * b, (t.tensor(X), t.tensor(Y[0])), t.tensor(V)),
    "jvp": lambda t, F: F.jvp(lambda a, b: a * b.exp(), (t.tensor(X), t.tensor(Y[0])), (t.tensor(V), t.tensor(Y[1]))),
    "hvp": lambda t, F: F.hvp(lambda a: (a.sin() * a).sum(), t.tensor(X), t.tensor(V)),
    "vhp": lambda t, F: F.vhp(lambda a, b: (a.sin() * b).sum(), (t.tensor(X), t.tensor(Y[0])),
                              (t.tensor(V), t.tensor(Y[1]))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_pytorch(case):
    ours, theirs = _both(CASES[case])
    _same(ours, theirs)


def test_strict_names_the_unused_input_and_create_graph_keeps_history():
    from gradc.autograd.functional import jacobian, vjp
    with pytest.raises(gradc.AutogradError, match="does not depend on input 1"):
        jacobian(lambda a, b: a * 2, (gradc.tensor(X), gradc.tensor(Y[0])), strict=True)
    x = gradc.tensor(X, requires_grad=True)
    _, g = vjp(lambda a: (a ** 3).sum(), x, create_graph=True)
    g.sum().backward()   # d/dx sum(3 x^2) = 6 x
    np.testing.assert_allclose(x.grad.numpy(), 6 * X, rtol=1e-12)
