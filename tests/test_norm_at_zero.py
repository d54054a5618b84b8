"""Norms at the zero vector: the gradient is PyTorch's subgradient 0 (not the NaN of inf * 0), and
what is built on norms (normalize, cosine_similarity) matches PyTorch there."""
import numpy as np
import pytest

import gradc


def _both(fn):
    torch = pytest.importorskip("torch")
    out = []
    for lib in (gradc, torch):
        x = lib.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]], dtype=lib.float64, requires_grad=True)
        fn(lib, x).sum().backward()
        out.append(x.grad.numpy())
    return out


@pytest.mark.parametrize("p", [2, 3, 1.5, "fro"])
def test_norm_gradient_at_zero(p):
    ours, theirs = _both(lambda lib, x: x.norm(p, dim=1) if p != "fro" else x.norm() * lib.ones(1, dtype=lib.float64))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize("p", [2, 1, 3])
def test_normalize_and_cosine_similarity_at_zero(p):
    w = [1.0, 2.0, 3.0]
    ours, theirs = _both(lambda lib, x: lib.nn.functional.normalize(x, p=p, dim=1) * lib.tensor(w, dtype=lib.float64))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    ours, theirs = _both(lambda lib, x: lib.nn.functional.cosine_similarity(x, lib.ones(2, 3, dtype=lib.float64)))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_compiled_norm_gradient_at_zero():
    x = gradc.zeros(2, 3, requires_grad=True)

    def step(x):
        loss = x.norm(dim=1).sum()
        loss.backward()
        return loss
    gradc.compile(step)(x)
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((2, 3), np.float32))
