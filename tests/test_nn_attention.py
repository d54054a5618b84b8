"""MultiheadAttention, TransformerEncoderLayer/Encoder and F.scaled_dot_product_attention against
PyTorch (float64, dropout off): outputs, attention weights, gradients and state-dict layout for
every mask kind and option, eagerly and compiled."""
import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import ShapeError, nn
from nn_parity import check_function, check_module, load_from_torch

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def pair(g_cls, t_cls, *args, **kwargs):
    return g_cls(*args, **kwargs).double(), t_cls(*args, **kwargs).double()


def _randomise_biases(t):
    with torch.no_grad():
        for name, p in t.named_parameters():
            if "bias" in name:
                p.uniform_(-0.5, 0.5)


L, S, N, E, H = 4, 5, 2, 8, 2


def _masks(kind):
    rng = np.random.default_rng(3)
    if kind == "bool":
        m = rng.random((L, S)) < 0.3
        m[:, 0] = False  # every query keeps at least one key
        return m, None
    if kind == "float":
        return rng.standard_normal((L, S)), None
    if kind == "3d":
        m = rng.random((N * H, L, S)) < 0.3
        m[..., 0] = False
        return m, None
    if kind == "padding":
        kpm = np.zeros((N, S), dtype=bool)
        kpm[0, -2:] = True
        return None, kpm
    if kind == "both":
        m = rng.random((L, S)) < 0.3
        m[:, 0] = False
        kpm = np.zeros((N, S), dtype=bool)
        kpm[1, -1] = True
        return m, kpm
    return None, None


@pytest.mark.parametrize("kind", ["none", "bool", "float", "3d", "padding", "both"])
@pytest.mark.parametrize("average", [True, False])
def test_multihead_attention_matches_torch(kind, average):
    g, t = pair(nn.MultiheadAttention, torch.nn.MultiheadAttention, E, H)
    _randomise_biases(t)
    assert list(g.state_dict()) == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    mask, kpm = _masks(kind)
    arrays = [randn(L, N, E), randn(S, N, E, seed=1), randn(S, N, E, seed=2)]
    extra = [a for a in (mask, kpm) if a is not None]

    def call(m, q, k, v, *ms):
        it = iter(ms)
        am = next(it) if mask is not None else None
        kp = next(it) if kpm is not None else None
        return m(q, k, v, key_padding_mask=kp, attn_mask=am, average_attn_weights=average)

    check_module(torch, g, t, arrays + extra, grads=[True] * 3 + [False] * len(extra) if kind != "float"
                 else [True] * 3 + [False], call=call, compiled=kind in ("none", "both") and average)


def test_multihead_self_attention_batch_first_kdim_and_bias_kv():
    g, t = pair(nn.MultiheadAttention, torch.nn.MultiheadAttention, E, H, batch_first=True)
    _randomise_biases(t)
    check_module(torch, g, t, [randn(N, L, E)], call=lambda m, x: m(x, x, x))
    g, t = pair(nn.MultiheadAttention, torch.nn.MultiheadAttention, E, H, kdim=3, vdim=5, add_bias_kv=True,
                add_zero_attn=True)
    assert list(g.state_dict()) == list(t.state_dict())
    mask, kpm = _masks("both")
    check_module(torch, g, t, [randn(L, N, E), randn(S, N, 3), randn(S, N, 5), mask, kpm],
                 grads=[True, True, True, False, False],
                 call=lambda m, q, k, v, am, kp: m(q, k, v, key_padding_mask=kp, attn_mask=am))
    g, t = pair(nn.MultiheadAttention, torch.nn.MultiheadAttention, E, H, bias=False)
    check_module(torch, g, t, [randn(L, E), randn(S, E), randn(S, E)], compiled=False,
                 call=lambda m, q, k, v: m(q, k, v, need_weights=False)[0])


def test_multihead_attention_errors():
    m = nn.MultiheadAttention(E, H)
    x = gradc.zeros(L, N, E)
    with pytest.raises(ShapeError, match=r"2-D attn_mask must be \(4, 4\)"):
        m(x, x, x, attn_mask=gradc.zeros(3, 4))
    with pytest.raises(ShapeError, match="key_padding_mask must be"):
        m(x, x, x, key_padding_mask=gradc.zeros(N, 3, dtype=gradc.bool))
    with pytest.raises(ShapeError, match="is_causal"):
        m(x, x, x, is_causal=True)
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(7, 2)


@pytest.mark.parametrize("cfg", [dict(), dict(norm_first=True), dict(activation="gelu", batch_first=True),
                                 dict(bias=False, norm_first=True)])
def test_transformer_encoder_layer_matches_torch(cfg):
    g, t = pair(nn.TransformerEncoderLayer, torch.nn.TransformerEncoderLayer, E, H, dim_feedforward=16, dropout=0.0,
                **cfg)
    _randomise_biases(t)
    assert list(g.state_dict()) == list(t.state_dict())
    x = randn(N, L, E) if cfg.get("batch_first") else randn(L, N, E)
    causal = np.triu(np.ones((L, L), dtype=bool), 1)
    check_module(torch, g, t, [x, causal], grads=[True, False], compiled=not cfg,
                 call=lambda m, x, msk: m(x, src_mask=msk, is_causal=True))


def test_transformer_encoder_stack_and_training_step():
    t_layer = torch.nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.0)
    t = torch.nn.TransformerEncoder(t_layer, 2, norm=torch.nn.LayerNorm(E), enable_nested_tensor=False).double()
    g = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.0), 2,
                              norm=nn.LayerNorm(E)).double()
    assert list(g.state_dict()) == list(t.state_dict())
    kpm = np.zeros((N, L), dtype=bool)
    kpm[0, -1] = True
    check_module(torch, g, t, [randn(L, N, E), kpm], grads=[True, False],
                 call=lambda m, x, k: m(x, src_key_padding_mask=k))
    mask = nn.transformer.generate_square_subsequent_mask(L).numpy()
    np.testing.assert_array_equal(mask, torch.nn.Transformer.generate_square_subsequent_mask(L).numpy())


def test_transformer_training_with_dropout_is_random_and_eval_is_not():
    layer = nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.5)
    x = gradc.tensor(randn(L, N, E).astype(np.float32))
    a, b = layer(x).detach().numpy(), layer(x).detach().numpy()
    assert not np.allclose(a, b)
    layer.eval()
    np.testing.assert_array_equal(layer(x).detach().numpy(), layer(x).detach().numpy())


@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal", "scale"])
def test_scaled_dot_product_attention_matches_torch(kind):
    q, k, v = randn(2, 3, 4, 8), randn(2, 3, 6, 8, seed=1), randn(2, 3, 6, 5, seed=2)
    mask = None
    if kind == "bool":
        mask = np.random.default_rng(4).random((4, 6)) < 0.6
        mask[:, 0] = True
    elif kind == "float":
        mask = randn(4, 6, seed=5)
    kw = dict(is_causal=kind == "causal", scale=0.3 if kind == "scale" else None)
    if mask is None:
        check_function(torch, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw),
                       lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, **kw), [q, k, v])
    else:
        check_function(torch, lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m, **kw),
                       lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m, **kw),
                       [q, k, v, mask], grads=[True, True, True, False])


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_takes_a_one_dimensional_mask_over_the_keys(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 4)))
    m = np.array([True, False, True, True, False]) if kind == "bool" else rng.standard_normal(5).astype(np.float32)
    want = torch.nn.functional.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)), attn_mask=torch.tensor(m))
    got = F.scaled_dot_product_attention(*map(gradc.tensor, (q, k, v)), attn_mask=gradc.tensor(m))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mask_shape", [(1, 2, 3, 5), (3, 5), (2, 1, 1, 5), (1, 1, 3, 1), (5,)])
def test_a_float_attn_mask_gets_its_gradient(mask_shape):
    # a learned relative-position bias (T5, Swin, ALiBi) is passed as attn_mask: d(mask) is d(scores)
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in [(2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 4), mask_shape]]

    def grads(fn):
        ts = [gradc.tensor(a, requires_grad=True) for a in arrays]
        (fn(*ts) ** 2).sum().backward()
        return [t.grad.numpy() for t in ts]

    def attention(q, k, v, m):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m)

    def reference(q, k, v, m):   # the scores spelled out: softmax(q k^T / sqrt(E) + m) v
        return ((q @ k.transpose(-2, -1)) / 2.0 + m).softmax(-1) @ v
    want = grads(reference)
    for got in (grads(attention), grads(gradc.compile(attention))):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
