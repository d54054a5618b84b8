"""A minGPT-style script (tests/gpt_script.py: decay / no-decay AdamW groups, warmup + cosine
LambdaLR, clip_grad_norm_, a DataLoader over a character dataset, generate with topk / softmax,
torch.save / torch.load checkpoints) runs unchanged with PyTorch and with gradc in its place.

From the same initial weights (PyTorch's state dict loaded into gradc) and the same batches it
trains 20 steps with PyTorch, gradc eagerly and gradc with the step compiled. Tolerances, float32:
losses rtol=1e-5, atol=1e-5; final parameters compiled vs eager rtol=1e-5, atol=1e-6 on the NumPy
backend (the same NumPy calls as eager), and as for PyTorch on backends that sum in their own
order (C: the attention's key bias, whose gradient is zero in exact arithmetic, gets AdamW steps
from rounding noise: measured within 8e-6); gradc vs PyTorch rtol=1e-4, atol=1e-5. Measured:
losses within 5e-7 and parameters within 6e-6 of PyTorch's; compiled equal to eager (bitwise,
where the backend is NumPy).
Training moves the parameters by far more than that (checked)."""
import os
import pickle

import numpy as np
import pytest

import gradc
from gradc.runtime import native
from gpt_script import GPTConfig, make_gpt, train

torch = pytest.importorskip("torch")
CONFIG = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32)
STEPS, BATCH = 20, 4


def _data():
    data = np.random.default_rng(0).integers(0, CONFIG.vocab_size, 400).tolist()
    order = np.random.default_rng(1).permutation(len(data) - CONFIG.block_size).tolist()
    return data, order


def _initial_state():
    torch.manual_seed(0)
    GPT, _ = make_gpt(torch)
    return {k: v.detach().numpy().copy() for k, v in GPT(CONFIG).state_dict().items()}


def _params(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The three 20-step runs, shared by the tests below (the compiled one traces twice: the
    first step creates the AdamW state the second step reads)."""
    init, (data, order) = _initial_state(), _data()
    out = {"init": init}
    out["torch"] = train(torch, {k: torch.tensor(v) for k, v in init.items()}, data, order, STEPS, BATCH, config=CONFIG)
    out["eager"] = train(gradc, init, data, order, STEPS, BATCH, config=CONFIG)
    with pytest.MonkeyPatch.context() as mp:  # a fresh compile cache: the programs are built here
        mp.setenv("GRADC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        out["compiled"] = train(gradc, init, data, order, STEPS, BATCH, config=CONFIG, compile=gradc.compile)
    return out


def test_gpt_trains_20_steps_compiled_equal_to_eager_equal_to_pytorch(runs):
    (t_model, t_loss, _), (e_model, e_loss, _), (c_model, c_loss, c_step) = runs["torch"], runs["eager"], runs["compiled"]
    assert len(t_loss) == len(e_loss) == len(c_loss) == STEPS
    np.testing.assert_allclose(e_loss, t_loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c_loss, e_loss, rtol=1e-5, atol=1e-5)
    assert np.mean(t_loss[-5:]) < np.mean(t_loss[:5])  # it trains
    assert c_step.trace_count <= 2  # the scheduled (float) lr is a program input: no retrace per rate
    t_p, e_p, c_p = _params(t_model), _params(e_model), _params(c_model)
    assert list(e_p) == list(t_p)
    moved = max(np.abs(t_p[k] - runs["init"][k]).max() for k in t_p if k.endswith("weight"))
    assert moved > 1e-2
    backend = c_step.backend if c_step.backend != "auto" else native.choose_backend(False)
    tol = dict(rtol=1e-5, atol=1e-6) if backend == "numpy" else dict(rtol=1e-4, atol=1e-5)
    for k in t_p:
        np.testing.assert_allclose(c_p[k], e_p[k], **tol, err_msg=f"{k}: compiled vs eager")
        np.testing.assert_allclose(e_p[k], t_p[k], rtol=1e-4, atol=1e-5, err_msg=f"{k}: gradc vs torch")


def test_weight_decay_groups_split_like_pytorch(runs):
    """configure_optimizers walks named_modules and isinstance checks: the same parameters land
    in the decay group in both libraries."""
    def groups(lib, model):
        opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95))
        ids = {id(p): n for n, p in model.named_parameters()}
        return [(g["weight_decay"], sorted(ids[id(p)] for p in g["params"])) for g in opt.param_groups]
    t, g = groups(torch, runs["torch"][0]), groups(gradc, runs["eager"][0])
    assert g == t
    assert len(t[0][1]) == 1 + 4 * CONFIG.n_layer  # lm_head + c_attn, c_proj, c_fc, c_proj per block


def test_greedy_generation_with_topk_gives_pytorchs_tokens(runs):
    prompt = [[1, 2, 3], [7, 7, 0]]
    t_model, g_model = runs["torch"][0], runs["eager"][0]
    t_model.eval()
    g_model.eval()
    # 20 new tokens: past block_size, so the prompt window slides (idx[:, -block_size:])
    t_out = t_model.generate(torch.tensor(prompt), 20, top_k=5).tolist()
    g_out = g_model.generate(gradc.tensor(prompt), 20, top_k=5)
    assert g_out.dtype == gradc.int64 and g_out.requires_grad is False
    assert g_out.tolist() == t_out
    assert len(t_out[0]) == 23


def test_topk_masking_matches_pytorch(runs):
    """The line `logits[logits < v[:, [-1]]] = -inf` of generate: boolean-mask assignment."""
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((3, 10)).astype(np.float32)
    out = {}
    for lib in (torch, gradc):
        x = lib.tensor(logits)
        v, _ = lib.topk(x, 4)
        x[x < v[:, [-1]]] = -float("Inf")
        out[lib.__name__] = lib.nn.functional.softmax(x, dim=-1).numpy()
    np.testing.assert_allclose(out["gradc"], out["torch"], rtol=1e-6, atol=1e-7)
    assert (out["gradc"] > 0).sum(1).tolist() == [4, 4, 4]


@pytest.mark.parametrize("lib_name", ["torch", "gradc"])
def test_checkpoint_mid_training_resumes_to_the_uninterrupted_run(runs, tmp_path, lib_name):
    """Stop after 8 steps, torch.save model + optimizer + scheduler state, start a fresh process
    state from torch.load and finish: parameters equal the uninterrupted 20-step run exactly
    (same operations in the same order; the DataLoader resumes at the saved step)."""
    lib = torch if lib_name == "torch" else gradc
    init = runs["init"] if lib is gradc else {k: torch.tensor(v) for k, v in runs["init"].items()}
    data, order = _data()
    path = str(tmp_path / "ckpt.pt")
    _, first, _ = train(lib, init, data, order, STEPS, BATCH, config=CONFIG, stop_at=8, save_to=path)
    assert len(first) == 8
    # resume from other weights entirely: everything must come from the checkpoint
    other = {k: v * 0 + 1 for k, v in init.items()}
    resumed, rest, _ = train(lib, other, data, order, STEPS, BATCH, config=CONFIG, resume_from=path)
    full_model, full_loss = runs["eager" if lib is gradc else "torch"][:2]
    assert len(rest) == STEPS - 8
    assert first + rest == full_loss
    for k, v in _params(full_model).items():
        np.testing.assert_array_equal(_params(resumed)[k], v, err_msg=k)


class _Payload:
    """Unpickling this calls open(canary, 'w'): a checkpoint loader that unpickles runs code."""

    def __init__(self, canary):
        self.canary = canary

    def __reduce__(self):
        return (open, (self.canary, "w"))


@pytest.mark.parametrize("fmt", ["pickle", "torch-zip"])
def test_crafted_checkpoint_never_runs_code(tmp_path, fmt):
    canary = str(tmp_path / "canary")
    path = tmp_path / "evil.pt"
    payload = {"model": {"w": _Payload(canary)}, "step": 3}
    if fmt == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:  # what torch.save writes: a zip with a pickle inside
        torch.save(payload, str(path))
    assert not os.path.exists(canary)
    with pytest.raises(gradc.ArtifactError) as info:
        gradc.load(str(path))
    assert str(path) in str(info.value) or "evil.pt" in str(info.value)
    assert not os.path.exists(canary)
