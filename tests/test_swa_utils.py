"""torch.optim.swa_utils against PyTorch: SWA, EMA (multi_avg_fn, and avg_fn over buffers too)
averaged models over a training run with SWALR's cosine annealing, then update_bn."""
import numpy as np
import pytest

import gradc

torch = pytest.importorskip("torch")


def _run(torch):
    nn = torch.nn
    su = torch.optim.swa_utils
    AveragedModel, SWALR, update_bn = su.AveragedModel, su.SWALR, su.update_bn
    get_ema_multi_avg_fn, get_ema_avg_fn = su.get_ema_multi_avg_fn, su.get_ema_avg_fn
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32) * 0.3))
    swa = AveragedModel(model)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    ema2 = AveragedModel(model, avg_fn=get_ema_avg_fn(0.8), use_buffers=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = SWALR(opt, swa_lr=0.05, anneal_epochs=3, anneal_strategy="cos")
    X = torch.tensor(rng.standard_normal((32, 4)).astype(np.float32)); Y = torch.tensor(rng.integers(0, 2, 32))
    lrs = []
    for epoch in range(6):
        for i in range(0, 32, 8):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(X[i:i+8]), Y[i:i+8])
            loss.backward(); opt.step()
        swa.update_parameters(model); ema.update_parameters(model); ema2.update_parameters(model)
        sched.step(); lrs.append(opt.param_groups[0]["lr"])
    loader = [(X[i:i+8], Y[i:i+8]) for i in range(0, 32, 8)]
    update_bn(loader, swa)
    swa.eval(); ema.eval()
    out = [swa(X).detach().numpy(), ema(X).detach().numpy(), ema2(X).detach().numpy()]
    sd = {k: v.detach().numpy() if hasattr(v, "detach") else v for k, v in swa.state_dict().items()}
    return lrs, out, sd
import torch, gradc


def test_averaged_models_swalr_and_update_bn_match_pytorch():
    (lrs, outs, sd), (t_lrs, t_outs, t_sd) = _run(gradc), _run(torch)
    np.testing.assert_allclose(lrs, t_lrs, rtol=1e-12)
    for ours, theirs in zip(outs, t_outs):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert list(sd) == list(t_sd)   # the same state-dict keys: n_averaged, module.0.weight, ...
    for k in sd:
        np.testing.assert_allclose(np.asarray(sd[k]), np.asarray(t_sd[k]), rtol=1e-4, atol=1e-5)


def test_copy_converts_dtypes_as_pytorch():
    for dtype, values in ((gradc.int64, [1.5, -2.7, 3.9]), (gradc.bool, [0.0, 0.1, -1.0])):
        theirs = torch.zeros(3, dtype=getattr(torch, dtype.name if dtype is not gradc.bool else "bool"))
        ours = gradc.zeros(3, dtype=dtype).copy_(gradc.tensor(values))
        np.testing.assert_array_equal(ours.numpy(), theirs.copy_(torch.tensor(values)).numpy())
