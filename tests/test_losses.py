"""PyTorch parity for the regression, binary and distribution losses and their modules (values
and float64 gradients, every reduction), eager and compiled."""
import numpy as np
import pytest

import gradc
import gradc.nn as nn
import gradc.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional
RNG = np.random.default_rng(0)
X, Y = RNG.standard_normal((4, 5)), RNG.standard_normal((4, 5))
P, T01 = RNG.uniform(0.05, 0.95, (4, 5)), (RNG.random((4, 5)) > 0.5).astype(np.float64)
LOGP = np.log(RNG.dirichlet(np.ones(5), 4))
Q = RNG.dirichlet(np.ones(5), 4)
W, PW = RNG.uniform(0.5, 2.0, (5,)), RNG.uniform(0.5, 3.0, (5,))

CASES = [
    ("l1", lambda m, a, b, **k: m.l1_loss(a, b, **k), X, Y, {}),
    ("smooth_l1", lambda m, a, b, **k: m.smooth_l1_loss(a, b, beta=0.7, **k), X, Y, {}),
    ("smooth_l1_beta0", lambda m, a, b, **k: m.smooth_l1_loss(a, b, beta=0.0, **k), X, Y, {}),
    ("huber", lambda m, a, b, **k: m.huber_loss(a, b, delta=0.8, **k), X, Y, {}),
    ("bce", lambda m, a, b, **k: m.binary_cross_entropy(a, b, **k), P, T01, {}),
    ("bce_logits", lambda m, a, b, **k: m.binary_cross_entropy_with_logits(a, b, **k), X * 5, T01, {}),
    ("bce_logits_weights", lambda m, a, b, w, pw, **k: m.binary_cross_entropy_with_logits(a, b, weight=w, pos_weight=pw, **k),
     X * 5, T01, {"w": W, "pw": PW}),
    ("kl_div", lambda m, a, b, **k: m.kl_div(a, b, **k), LOGP, Q, {}),
    ("kl_div_log_target", lambda m, a, b, **k: m.kl_div(a, b, log_target=True, **k), LOGP, np.log(Q), {}),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_loss_matches_torch(case, reduction):
    name, fn, a, b, extra = case
    ga, ta = gradc.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    gx = {k: gradc.tensor(v) for k, v in extra.items()}
    tx = {k: torch.tensor(v) for k, v in extra.items()}
    g = fn(F, ga, gradc.tensor(b), *gx.values(), reduction=reduction)
    t = fn(TF, ta, torch.tensor(b), *tx.values(), reduction=reduction)
    np.testing.assert_allclose(g.detach().numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)
    g.sum().backward()
    t.sum().backward()
    np.testing.assert_allclose(ga.grad.numpy(), ta.grad.numpy(), rtol=1e-9, atol=1e-12)
    compiled = gradc.compile(lambda x, y, *e: fn(F, x, y, *e, reduction=reduction), fullgraph=True)
    np.testing.assert_allclose(compiled(gradc.tensor(a), gradc.tensor(b), *gx.values()).numpy(),
                               t.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_kl_div_batchmean_and_extreme_logits():
    g = F.kl_div(gradc.tensor(LOGP), gradc.tensor(Q), reduction="batchmean")
    t = TF.kl_div(torch.tensor(LOGP), torch.tensor(Q), reduction="batchmean")
    assert abs(g.item() - t.item()) < 1e-12
    big = np.array([-800.0, 800.0, 0.0])
    tgt = np.array([1.0, 0.0, 1.0])
    g = F.binary_cross_entropy_with_logits(gradc.tensor(big), gradc.tensor(tgt), reduction="none")
    t = TF.binary_cross_entropy_with_logits(torch.tensor(big), torch.tensor(tgt), reduction="none")
    np.testing.assert_allclose(g.numpy(), t.numpy(), rtol=1e-12)


@pytest.mark.parametrize("module,tmodule,a,b", [
    (nn.L1Loss(), torch.nn.L1Loss(), X, Y), (nn.SmoothL1Loss(beta=0.5), torch.nn.SmoothL1Loss(beta=0.5), X, Y),
    (nn.HuberLoss(delta=2.0), torch.nn.HuberLoss(delta=2.0), X, Y), (nn.KLDivLoss(reduction="batchmean"),
                                                                      torch.nn.KLDivLoss(reduction="batchmean"), LOGP, Q),
    (nn.BCELoss(weight=gradc.tensor(W)), torch.nn.BCELoss(weight=torch.tensor(W)), P, T01),
    (nn.BCEWithLogitsLoss(pos_weight=gradc.tensor(PW)), torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(PW)), X, T01),
    (nn.MSELoss(reduction="sum"), torch.nn.MSELoss(reduction="sum"), X, Y),
])
def test_loss_modules_match_torch(module, tmodule, a, b):
    assert abs(module(gradc.tensor(a), gradc.tensor(b)).item() - tmodule(torch.tensor(a), torch.tensor(b)).item()) < 1e-10


def test_cosine_similarity_and_one_hot():
    for dim in (0, 1):
        np.testing.assert_allclose(F.cosine_similarity(gradc.tensor(X), gradc.tensor(Y), dim=dim).numpy(),
                                   TF.cosine_similarity(torch.tensor(X), torch.tensor(Y), dim=dim).numpy(), rtol=1e-12)
    z = np.zeros((2, 3))
    np.testing.assert_allclose(nn.CosineSimilarity()(gradc.tensor(z), gradc.tensor(X[:2, :3])).numpy(),
                               torch.nn.CosineSimilarity()(torch.tensor(z), torch.tensor(X[:2, :3])).numpy())
    idx = np.array([[0, 3], [2, 1]])
    np.testing.assert_array_equal(F.one_hot(gradc.tensor(idx)).numpy(), TF.one_hot(torch.tensor(idx)).numpy())
    np.testing.assert_array_equal(F.one_hot(gradc.tensor(idx), 6).numpy(), TF.one_hot(torch.tensor(idx), 6).numpy())
    with pytest.raises(gradc.ShapeError):
        F.l1_loss(gradc.ones(2), gradc.ones(3))


def test_regression_losses_take_weight_and_legacy_arguments_as_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, y, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.random((3, 4))
    for name, extra in (("mse_loss", {}), ("l1_loss", {}), ("huber_loss", {"delta": 0.5})):
        for reduction in ("mean", "sum", "none"):
            ours = getattr(gradc.nn.functional, name)(gradc.tensor(x), gradc.tensor(y), reduction=reduction,
                                                      weight=gradc.tensor(w), **extra)
            theirs = getattr(torch.nn.functional, name)(torch.tensor(x), torch.tensor(y), reduction=reduction,
                                                        weight=torch.tensor(w), **extra)
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gradc.nn.functional.mse_loss(gradc.tensor(x), gradc.tensor(y), size_average=False).numpy(),
                               torch.nn.functional.mse_loss(torch.tensor(x), torch.tensor(y), size_average=False).numpy())
    with pytest.raises(gradc.ShapeError, match="same size"):
        gradc.nn.functional.mse_loss(gradc.tensor(x), gradc.tensor(y), weight=gradc.ones(4))
