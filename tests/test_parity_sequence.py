"""PyTorch-parity regressions from sequence and NLP models (attention hints, embedding bags,
masks made with finfo, empty sequences): each once differed from PyTorch."""
import numpy as np
import pytest

import gradc

torch = pytest.importorskip("torch")


def _mha_pair():
    torch.manual_seed(0)
    mt = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    mg = gradc.nn.MultiheadAttention(16, 4, batch_first=True)
    mg.load_state_dict({k: gradc.tensor(v.detach().numpy()) for k, v in mt.state_dict().items()})
    return mt, mg


@pytest.mark.parametrize("need_weights", [False, True])
def test_is_causal_without_weights_or_padding_takes_the_hint_as_pytorch_does(need_weights):
    # Without weights or a padding mask PyTorch reads is_causal=True as "causal", whatever the mask
    # holds; otherwise it applies the mask. gradc does the same.
    mt, mg = _mha_pair()
    x = np.random.RandomState(0).randn(2, 5, 16).astype(np.float32)
    mask = np.random.RandomState(1).randn(5, 5).astype(np.float32)
    a, _ = mt(*[torch.tensor(x)] * 3, attn_mask=torch.tensor(mask), is_causal=True, need_weights=need_weights)
    b, _ = mg(*[gradc.tensor(x)] * 3, attn_mask=gradc.tensor(mask), is_causal=True, need_weights=need_weights)
    np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("offsets", [[1, 2], [0, 2, 1], [0, 5]])
def test_embedding_bag_refuses_offsets_pytorch_refuses(offsets):
    x, o = [1, 2, 3], offsets
    with pytest.raises(RuntimeError):
        torch.nn.EmbeddingBag(10, 3, mode="sum")(torch.tensor(x), torch.tensor(o))
    with pytest.raises(IndexError, match="offsets"):
        gradc.nn.EmbeddingBag(10, 3, mode="sum")(gradc.tensor(x), gradc.tensor(o))


def test_full_refuses_a_fill_that_overflows_its_dtype():
    # (HF's causal masks fill with finfo(float64).min: in float32 PyTorch raises instead of giving -inf)
    with pytest.raises(RuntimeError, match="overflow"):
        torch.full((2, 2), torch.finfo(torch.float64).min)
    with pytest.raises(RuntimeError, match="overflow"):
        gradc.full((2, 2), gradc.finfo(gradc.float64).min)
    big = float(np.finfo(np.float32).max)
    assert gradc.full((1,), big).item() == torch.full((1,), big).item()
    assert gradc.full((1,), -1e300, dtype=gradc.float64).item() == -1e300


def test_an_empty_square_subsequent_mask():
    for n in (0, 1, 3):
        np.testing.assert_array_equal(gradc.nn.Transformer.generate_square_subsequent_mask(n).numpy(),
                                      torch.nn.Transformer.generate_square_subsequent_mask(n).numpy())


def test_an_rnn_over_no_steps_says_so():
    with pytest.raises(RuntimeError, match="sequence length"):
        torch.nn.LSTM(6, 8)(torch.randn(0, 4, 6))
    with pytest.raises(RuntimeError, match="sequence length larger than 0"):
        gradc.nn.LSTM(6, 8)(gradc.randn(0, 4, 6))
