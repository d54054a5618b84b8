"""gradc.special against torch.special, values and gradients."""
import numpy as np
import pytest

import gradc

NAMES = ["expit", "logit", "erf", "erfc", "erfinv", "gammaln", "digamma", "psi", "log1p", "expm1", "exp2", "sinc",
         "entr", "ndtr", "ndtri", "log_ndtr"]


@pytest.mark.parametrize("name", NAMES)
def test_special_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    vals = [0.05, 0.3, 0.7, 0.95] if name in ("logit", "erfinv", "ndtri") else [-3.0, -0.4, 0.0, 0.6, 2.5]
    if name == "log1p":
        vals = [-0.5, 0.0, 0.6, 2.5]
    if name in ("gammaln", "digamma", "psi"):
        vals = [0.3, 1.0, 2.5, 7.0]
    x = gradc.tensor(vals, dtype=gradc.float64, requires_grad=True)
    t = torch.tensor(vals, dtype=torch.float64, requires_grad=True)
    a, b = getattr(gradc.special, name)(x), getattr(torch.special, name)(t)
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    if name != "entr":   # torch's entr gradient at 0 is -inf; values only there
        a.sum().backward(), b.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_xlogy_family_and_reductions():
    torch = pytest.importorskip("torch")
    x, y = [0.0, 1.5, 2.0], [0.0, 0.5, 3.0]
    for name in ("xlogy", "xlog1py"):
        np.testing.assert_allclose(getattr(gradc.special, name)(gradc.tensor(x), gradc.tensor(y)).numpy(),
                                   getattr(torch.special, name)(torch.tensor(x), torch.tensor(y)).numpy(), rtol=1e-6)
    m = [[0.1, 2.0], [3.0, -1.0]]
    for name in ("logsumexp", "softmax", "log_softmax"):
        np.testing.assert_allclose(getattr(gradc.special, name)(gradc.tensor(m), 1).numpy(),
                                   getattr(torch.special, name)(torch.tensor(m), 1).numpy(), rtol=1e-6)
