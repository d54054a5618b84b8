"""linalg decompositions against PyTorch, values and gradients in float64: svd (tall, wide, batched),
eigh, qr, pinv, matrix norms 2/-2/nuc, cond, matrix_rank, lstsq with each driver's outputs, and
gradchecks of factor functions; and the legacy torch.svd/qr/pinverse names."""
import numpy as np
import pytest

import gradc
from gradc.testing import gradcheck

torch = pytest.importorskip("torch")
rng = np.random.default_rng(0)
A, SQ, W, B = rng.standard_normal((4, 3)), rng.standard_normal((2, 3, 3)), rng.standard_normal((3, 5)), \
    rng.standard_normal((4, 2))


def _sym(a):
    return (a + a.mT) / 2


def _invariant(u, s, vh):   # singular vectors up to sign: their projectors
    return u @ u.mT, s, vh.mT @ vh


CASES = {
    "svdvals": (lambda t, a: t.linalg.svdvals(a), A),
    "svd tall": (lambda t, a: _invariant(*t.linalg.svd(a, full_matrices=False)) + ((lambda u, s, vh: (u * s.unsqueeze(-2)) @ vh)(*t.linalg.svd(a, full_matrices=False)),), A),
    "svd wide": (lambda t, a: _invariant(*t.linalg.svd(a, full_matrices=False)), W),
    "svd batched": (lambda t, a: _invariant(*t.linalg.svd(a, full_matrices=False)), SQ),
    "eigh": (lambda t, a: (lambda w, v: (w, (v * w.unsqueeze(-2)) @ v.mT, v @ v.mT * w.sum(-1)[..., None, None]))(*t.linalg.eigh(_sym(a))), SQ),
    "eigvalsh upper": (lambda t, a: t.linalg.eigvalsh(_sym(a), UPLO="U"), SQ),
    "qr tall": (lambda t, a: (lambda q, r: (q.abs(), r.abs(), q @ r))(*t.linalg.qr(a)), A),
    "qr square": (lambda t, a: (lambda q, r: (q @ r, (q * q).sum(-1), r * r))(*t.linalg.qr(a)), SQ),
    "pinv tall": (lambda t, a: t.linalg.pinv(a), A),
    "pinv wide": (lambda t, a: t.linalg.pinv(a), W),
    "matrix norms": (lambda t, a: (t.linalg.matrix_norm(a, 2), t.linalg.norm(a[0], "nuc"),
                                   t.linalg.matrix_norm(a, -2, keepdim=True)), SQ),
    "cond": (lambda t, a: t.linalg.cond(a), SQ),
    "lstsq": (lambda t, a: t.linalg.lstsq(a, t.tensor(B, dtype=a.dtype)).solution, A),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_values_and_gradients_match_pytorch(case):
    f, a = CASES[case]
    ta, ga = torch.tensor(a, requires_grad=True), gradc.tensor(a, requires_grad=True)
    theirs, ours = f(torch, ta), f(gradc, ga)
    theirs, ours = (theirs, ours) if isinstance(theirs, tuple) else ((theirs,), (ours,))
    for x, y in zip(ours, theirs):
        np.testing.assert_allclose(x.detach().numpy(), y.detach().numpy(), rtol=1e-7, atol=1e-9)
    weights = [k + 1.3 for k in range(len(ours))]
    (g_ours,) = gradc.autograd.grad(sum((x * w).sum() for x, w in zip(ours, weights)), [ga])
    (g_theirs,) = torch.autograd.grad(sum((y * w).sum() for y, w in zip(theirs, weights)), [ta])
    np.testing.assert_allclose(g_ours.numpy(), g_theirs.numpy(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("driver", ["gels", "gelsy", "gelsd", "gelss", None])
def test_lstsq_reports_what_each_driver_reports(driver):
    theirs = torch.linalg.lstsq(torch.tensor(A), torch.tensor(B), driver=driver)
    ours = gradc.linalg.lstsq(gradc.tensor(A), gradc.tensor(B), driver=driver)
    for x, y in zip(ours, theirs):
        assert tuple(x.shape) == tuple(y.shape)
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-7)


def test_rank_legacy_names_and_gradchecks():
    low_rank = np.array([[1.0, 2.0], [2.0, 4.0]])
    assert gradc.linalg.matrix_rank(gradc.tensor(low_rank)).item() == torch.linalg.matrix_rank(torch.tensor(low_rank)).item() == 1
    u, s, v = gradc.svd(gradc.tensor(A))
    np.testing.assert_allclose((u @ gradc.diag(s) @ v.T).numpy(), A, atol=1e-12)
    np.testing.assert_allclose(gradc.tensor(A).pinverse().numpy(), np.linalg.pinv(A), atol=1e-12)
    assert tuple(gradc.qr(gradc.tensor(A), some=False)[0].shape) == (4, 4)
    x = gradc.tensor(A, requires_grad=True)
    for f in (lambda a: gradc.linalg.svd(a, full_matrices=False)[1],
              lambda a: (lambda u, s, vh: u @ u.mT)(*gradc.linalg.svd(a, full_matrices=False)),
              lambda a: (lambda q, r: q @ r * 2)(*gradc.linalg.qr(a)), lambda a: gradc.linalg.qr(a)[1].abs()):
        assert gradcheck(f, (x,))
    with pytest.raises(gradc.ShapeError, match="full_matrices=False"):
        gradc.linalg.svd(gradc.tensor(A, requires_grad=True))[0].sum().backward()
