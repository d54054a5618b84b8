"""Well-known PyTorch example scripts (tests/thirdparty_scripts.py) run with gradc in place of
torch, eagerly and with the training step under gradc.compile, from PyTorch's initial weights on
the same data, beside PyTorch. Dropout is 0 and noise is drawn by NumPy so that all three runs
see the same numbers. The compiled runs use the NumPy backend (GRADC_BACKEND), for build time.

Tolerances, float32: the printed numbers (losses, D(x), accuracies, the last eval sums) rtol=1e-4,
atol=1e-5; parameters and buffers rtol=1e-4, atol=1e-5, except the seq2seq attention's Va.bias,
whose gradient is zero in exact arithmetic (softmax ignores a shift), so Adam moves it by +-lr
on rounding noise alone: it is left out. Measured: at most ~1e-6 on the numbers and ~4e-7 on the
parameters."""
import numpy as np
import pytest

import gradc
from thirdparty_scripts import dcgan, mnist, nanogpt, resnet, seq2seq, word_lm

torch = pytest.importorskip("torch")

SCRIPTS = {"word_language_model_lstm": lambda lib: word_lm(lib, "LSTM"),  # (the GRU path: seq2seq below)
           "dcgan": dcgan, "seq2seq_attention": seq2seq, "resnet_basicblock": resnet, "nanogpt": nanogpt,
           "mnist": mnist}
SKIP = {"seq2seq_attention": ("decoder.attention.Va.bias",)}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    # The scripts call torch.compile(step) with the default backend; NumPy's programs build in a
    # fraction of the C compiler's time, which keeps this file fast (the C backend has its own tests).
    monkeypatch.setenv("GRADC_BACKEND", "numpy")


def _kwargs(name, tmp_path_factory):
    return {"out_dir": str(tmp_path_factory.mktemp("ckpt"))} if name == "nanogpt" else {}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """PyTorch's initial weights and run, once per script."""
    cache = {}

    def get(name):
        if name not in cache:
            make, run = SCRIPTS[name](torch)
            torch.manual_seed(0)
            init = {k: v.detach().clone() for k, v in make().state_dict().items()}
            model, out = run(init={k: v.clone() for k, v in init.items()}, **_kwargs(name, tmp_path_factory))
            cache[name] = (init, out, {k: v.detach().numpy().copy() for k, v in model.state_dict().items()})
        return cache[name]
    return get


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("name", list(SCRIPTS))
def test_script_runs_like_pytorch(name, compile, reference, tmp_path_factory):
    init, t_out, t_state = reference(name)
    _, run = SCRIPTS[name](gradc)
    model, g_out = run(init={k: gradc.tensor(v.numpy()) for k, v in init.items()}, compile=compile,
                       **_kwargs(name, tmp_path_factory))
    assert len(g_out) == len(t_out)
    np.testing.assert_allclose(g_out, t_out, rtol=1e-4, atol=1e-5)
    g_state = model.state_dict()
    assert list(g_state) == list(t_state)
    moved = 0.0
    for k, v in t_state.items():
        if k in SKIP.get(name, ()):
            continue
        np.testing.assert_allclose(g_state[k].numpy(), v, rtol=1e-4, atol=1e-5, err_msg=k)
        moved = max(moved, float(np.abs(v.astype(np.float64) - init[k].numpy()).max()))
    assert moved > 1e-3  # training changed the parameters by far more than the tolerance
