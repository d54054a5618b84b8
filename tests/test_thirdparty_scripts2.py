"""More PyTorch tutorial scripts (tests/thirdparty_scripts2.py) run with gradc in place of torch,
eagerly and with the training step under gradc.compile, from PyTorch's initial weights on the same
data, beside PyTorch: the nn.Transformer translation model (with its greedy decode), the spatial
transformer network (affine_grid + grid_sample), a siamese net trained with TripletMarginLoss and a
CNN + bidirectional-GRU speech model trained with CTCLoss.
Dropout is 0 and data is drawn by NumPy so that all three runs see the same numbers. The compiled
runs use the NumPy backend (GRADC_BACKEND), for build time.

Tolerances, float32: the printed numbers (losses, accuracies, decoded tokens) rtol=1e-4,
atol=1e-5; parameters and buffers rtol=1e-4, atol=1e-5, except the key part of each attention's
in_proj_bias, whose gradient is zero in exact arithmetic (a bias on every key shifts all scores of
a query alike, which softmax ignores), so Adam moves it by +-lr on rounding noise alone: it is left
out (the query and value parts are compared); and the speech model's rescnn cnn1.bias, which the
LayerNorm over features right after it removes (a per-channel constant), for the same reason."""
import numpy as np
import pytest

import gradc
from thirdparty_scripts2 import siamese_triplet, spatial_transformer, speech_ctc, translation

torch = pytest.importorskip("torch")

SCRIPTS = {"transformer_translation": translation, "spatial_transformer": spatial_transformer,
           "siamese_triplet": siamese_triplet, "speech_recognition_ctc": speech_ctc}
SKIP = {"speech_recognition_ctc": ("rescnn_layers.0.cnn1.bias",)}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GRADC_BACKEND", "numpy")


@pytest.fixture(scope="module")
def reference():
    """PyTorch's initial weights and run, once per script."""
    cache = {}

    def get(name):
        if name not in cache:
            make, run = SCRIPTS[name](torch)
            torch.manual_seed(0)
            init = {k: v.detach().clone() for k, v in make().state_dict().items()}
            model, out = run(init={k: v.clone() for k, v in init.items()})
            cache[name] = (init, out, {k: v.detach().numpy().copy() for k, v in model.state_dict().items()})
        return cache[name]
    return get


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("name", list(SCRIPTS))
def test_script_runs_like_pytorch(name, compile, reference):
    init, t_out, t_state = reference(name)
    _, run = SCRIPTS[name](gradc)
    model, g_out = run(init={k: gradc.tensor(v.numpy()) for k, v in init.items()}, compile=compile)
    assert len(g_out) == len(t_out)
    np.testing.assert_allclose(g_out, t_out, rtol=1e-4, atol=1e-5)
    g_state = model.state_dict()
    assert list(g_state) == list(t_state)
    moved = 0.0
    for k, v in t_state.items():
        if k in SKIP.get(name, ()):
            continue
        g = g_state[k].numpy()
        if k.endswith("attn.in_proj_bias"):
            e = v.shape[0] // 3
            g, v = np.concatenate([g[:e], g[2 * e:]]), np.concatenate([v[:e], v[2 * e:]])
        np.testing.assert_allclose(g, v, rtol=1e-4, atol=1e-5, err_msg=k)
        moved = max(moved, float(np.abs(t_state[k].astype(np.float64) - init[k].numpy()).max()))
    assert moved > 1e-3  # training changed the parameters by far more than the tolerance
