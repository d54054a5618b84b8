"""Random draws by parameter tensor and in-place fills (bernoulli, normal, random_, exponential_,
geometric_, log_normal_, cauchy_, fill_diagonal_), and gradc.linalg against torch.linalg: values,
float64 gradients and compiled = eager."""
import math

import numpy as np
import pytest

import gradc
from gradc.testing import gradcheck


def test_draws_have_their_distributions():
    gradc.manual_seed(0)
    n = 200_000
    assert abs(gradc.bernoulli(gradc.full((n,), 0.3)).mean().item() - 0.3) < 0.01
    assert abs(gradc.zeros(n).exponential_(2.0).mean().item() - 0.5) < 0.01
    assert abs(gradc.zeros(n).geometric_(0.25).mean().item() - 4.0) < 0.05
    assert abs(gradc.zeros(n).log_normal_(0.0, 0.5).mean().item() - math.exp(0.125)) < 0.01
    assert abs(gradc.zeros(n).cauchy_().median().item()) < 0.02
    assert abs(gradc.normal(2.0, 3.0, (n,)).std().item() - 3.0) < 0.03
    r = gradc.zeros(n).random_(3, 7)
    assert set(np.unique(r.numpy())) == {3.0, 4.0, 5.0, 6.0}
    assert set(np.unique(gradc.zeros(1000, dtype=gradc.int64).random_(2).numpy())) == {0, 1}
    assert gradc.bernoulli(gradc.ones(3, dtype=gradc.float64)).dtype is gradc.float64


def test_normal_with_tensor_parameters_differentiates():
    mean = gradc.zeros(4, dtype=gradc.float64, requires_grad=True)
    std = gradc.ones(4, dtype=gradc.float64, requires_grad=True)
    gradc.manual_seed(3)
    y = gradc.normal(mean, std)
    y.sum().backward()
    np.testing.assert_array_equal(mean.grad.numpy(), np.ones(4))
    np.testing.assert_allclose(std.grad.numpy(), y.detach().numpy())   # (y - mean) / std


def test_compiled_draws_equal_eager_draws():
    def f(p):
        return gradc.bernoulli(p) + gradc.normal(p, 1.0)
    p = gradc.full((5,), 0.5)
    step = gradc.compile(f)
    step(p)
    gradc.manual_seed(1)
    a = step(p)
    gradc.manual_seed(1)
    np.testing.assert_array_equal(a.numpy(), f(p).numpy())


def test_fill_diagonal_matches_pytorch():
    torch = pytest.importorskip("torch")
    for shape, wrap in (((3, 3), False), ((7, 3), True), ((7, 3), False), ((2, 5), False), ((3, 3, 3), False)):
        np.testing.assert_array_equal(gradc.zeros(*shape).fill_diagonal_(2.0, wrap).numpy(),
                                      torch.zeros(*shape).fill_diagonal_(2.0, wrap).numpy())
    assert gradc.ones(2).get_device() == -1


def _spd(rng, n=4):
    a = rng.standard_normal((2, n, n))
    return a @ a.transpose(0, 2, 1) + n * np.eye(n)


def test_linalg_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    A, S, B = rng.standard_normal((2, 4, 4)), _spd(rng), rng.standard_normal((2, 4, 3))
    L, U = np.tril(A) + 3 * np.eye(4), np.triu(A) + 3 * np.eye(4)
    g, t = gradc.tensor, torch.tensor
    pairs = [(gradc.linalg.vector_norm(g(B), 3, dim=1), torch.linalg.vector_norm(t(B), 3, dim=1)),
             (gradc.linalg.norm(g(A)), torch.linalg.norm(t(A))),
             (gradc.linalg.cholesky(g(S), upper=True), torch.linalg.cholesky(t(S), upper=True)),
             (gradc.linalg.solve_triangular(g(U), g(B), upper=True), torch.linalg.solve_triangular(t(U), t(B), upper=True)),
             (gradc.linalg.solve_triangular(g(L), g(B.transpose(0, 2, 1)), upper=False, left=False, unitriangular=True),
              torch.linalg.solve_triangular(t(L), t(B.transpose(0, 2, 1)), upper=False, left=False, unitriangular=True)),
             (gradc.linalg.multi_dot([g(A[0]), g(A[1]), g(B[0])]), torch.linalg.multi_dot([t(A[0]), t(A[1]), t(B[0])])),
             (gradc.linalg.vecdot(g(B), g(B)), torch.linalg.vecdot(t(B), t(B)))]
    pairs += [(gradc.linalg.matrix_norm(g(A), o), torch.linalg.matrix_norm(t(A), o))
              for o in ("fro", "nuc", 1, -1, 2, -2, math.inf)]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="ord must be"):
        gradc.linalg.matrix_norm(g(A), 3)


def test_linalg_gradients():
    rng = np.random.default_rng(1)
    S = gradc.tensor(_spd(rng, 3), requires_grad=True)
    U = gradc.tensor(np.triu(rng.standard_normal((3, 3))) + 3 * np.eye(3), requires_grad=True)
    B = gradc.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    assert gradcheck(lambda s: gradc.linalg.cholesky((s + s.mT) / 2), [S])
    assert gradcheck(lambda u, b: gradc.linalg.solve_triangular(u.triu(), b, upper=True), [U, B])
    assert gradcheck(lambda u: gradc.linalg.matrix_norm(u, 1), [U])
