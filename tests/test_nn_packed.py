"""Variable-length sequences (gradc.nn.utils.rnn) against PyTorch (float64): packing and unpacking
(values, batch sizes, permutations, gradients), RNN/LSTM/GRU on a PackedSequence (packed outputs,
final states in the original batch order, gradients of inputs, initial states and parameters),
eagerly and compiled; bad lengths get a named error."""
import warnings

import numpy as np
import pytest

import gradc
from gradc import ShapeError, nn
from gradc.nn.utils import rnn as R
from nn_parity import load_from_torch

torch = pytest.importorskip("torch")
TR = torch.nn.utils.rnn


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def close(g, t, tol=1e-10):
    np.testing.assert_allclose(g.detach().numpy(), t.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths, enforce", [([5, 4, 2, 1], True), ([3, 5, 1, 4], False)])
def test_pack_and_pad_match_torch(batch_first, lengths, enforce):
    x = randn(4, 5, 3) if batch_first else randn(5, 4, 3)
    gx, tx = gradc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    gp = R.pack_padded_sequence(gx, lengths, batch_first=batch_first, enforce_sorted=enforce)
    tp = TR.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=enforce)
    close(gp.data, tp.data)
    assert gp.batch_sizes.tolist() == tp.batch_sizes.tolist()
    for g, t in ((gp.sorted_indices, tp.sorted_indices), (gp.unsorted_indices, tp.unsorted_indices)):
        assert (g is None and t is None) or g.tolist() == t.tolist()
    gpad, glen = R.pad_packed_sequence(gp, batch_first=batch_first, padding_value=-2.0, total_length=7)
    tpad, tlen = TR.pad_packed_sequence(tp, batch_first=batch_first, padding_value=-2.0, total_length=7)
    close(gpad, tpad)
    assert glen.tolist() == tlen.tolist() and glen.dtype is gradc.int64
    w = randn(*tpad.shape, seed=1)
    (gpad * gradc.tensor(w)).sum().backward()
    (tpad * torch.tensor(w)).sum().backward()
    close(gx.grad, tx.grad)


def test_pad_sequence_pack_sequence_and_unpack():
    seqs = [randn(n, 2, seed=n) for n in (4, 2, 3)]
    for side in ("right", "left"):
        for bf in (False, True):
            close(R.pad_sequence([gradc.tensor(s) for s in seqs], batch_first=bf, padding_value=1.5, padding_side=side),
                  TR.pad_sequence([torch.tensor(s) for s in seqs], batch_first=bf, padding_value=1.5,
                                  padding_side=side))
    gp = R.pack_sequence([gradc.tensor(s) for s in seqs], enforce_sorted=False)
    tp = TR.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    close(gp.data, tp.data)
    for g, s in zip(R.unpack_sequence(gp), seqs):
        np.testing.assert_array_equal(g.numpy(), s)
    assert isinstance(gp, tuple) and gp._fields == tp._fields and type(gp).__name__ == "PackedSequence"
    assert gp.to(gradc.float32).data.dtype is gradc.float32 and not gp.is_cuda


CONFIGS = [dict(), dict(num_layers=2, bidirectional=True), dict(num_layers=2, batch_first=True)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=[str(c) for c in CONFIGS])
@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_recurrent_layers_on_packed_sequences_match_torch(name, cfg):
    g, t = getattr(nn, name)(3, 4, **cfg).double(), getattr(torch.nn, name)(3, 4, **cfg).double()
    load_from_torch(g, t)
    bf, dirs = cfg.get("batch_first", False), cfg.get("num_layers", 1) * (2 if cfg.get("bidirectional") else 1)
    x = randn(4, 5, 3) if bf else randn(5, 4, 3)
    lengths = [3, 5, 1, 4]
    h0, c0 = randn(dirs, 4, 4, seed=2), randn(dirs, 4, 4, seed=3)
    gx, tx = gradc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    gh0, th0 = gradc.tensor(h0, requires_grad=True), torch.tensor(h0, requires_grad=True)
    gc0, tc0 = gradc.tensor(c0, requires_grad=True), torch.tensor(c0, requires_grad=True)
    ghx, thx = ((gh0, gc0), (th0, tc0)) if name == "LSTM" else (gh0, th0)
    go, gs = g(R.pack_padded_sequence(gx, lengths, batch_first=bf, enforce_sorted=False), ghx)
    to, ts = t(TR.pack_padded_sequence(tx, lengths, batch_first=bf, enforce_sorted=False), thx)
    assert isinstance(go, R.PackedSequence) and go.batch_sizes.tolist() == to.batch_sizes.tolist()
    close(go.data, to.data)
    gstates, tstates = (gs if name == "LSTM" else (gs,)), (ts if name == "LSTM" else (ts,))
    for a, b in zip(gstates, tstates):
        close(a, b)
    gpad, _ = R.pad_packed_sequence(go, batch_first=bf)
    tpad, _ = TR.pad_packed_sequence(to, batch_first=bf)
    w = randn(*tpad.shape, seed=4)
    ((gpad * gradc.tensor(w)).sum() + sum(s.sum() * 0.5 for s in gstates)).backward()
    ((tpad * torch.tensor(w)).sum() + sum(s.sum() * 0.5 for s in tstates)).backward()
    for a, b in [(gx, tx), (gh0, th0)] + ([(gc0, tc0)] if name == "LSTM" else []):
        close(a.grad, b.grad)
    for (k, tp), gp in zip(t.named_parameters(), g.parameters()):
        close(gp.grad, tp.grad)


def test_compiled_packed_lstm_training_step_equals_eager():
    """pack -> LSTM -> pad -> loss -> backward -> SGD step as one compiled program: the same losses
    and parameters as the eager step; a new set of lengths traces again."""
    models = [nn.LSTM(3, 4, num_layers=2) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [gradc.optim.SGD(m.parameters(), lr=0.1) for m in models]

    def step(model, opt, x, lengths):
        opt.zero_grad()
        out, (h, c) = model(R.pack_padded_sequence(x, lengths, enforce_sorted=False))
        pad, _ = R.pad_packed_sequence(out)
        loss = (pad ** 2).mean() + h.sum() * 0.1
        loss.backward()
        opt.step()
        return loss

    compiled = gradc.compile(lambda x, lengths: step(models[1], opts[1], x, lengths), fullgraph=True)
    for i, lengths in enumerate(([2, 5, 3], [2, 5, 3], [4, 1, 5])):
        x = gradc.tensor(randn(5, 3, 3, seed=10 + i).astype(np.float32))
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # traced and compiled, never a fallback to eager
            le, lc = step(models[0], opts[0], x, lengths), compiled(x, lengths)
        np.testing.assert_allclose(lc.item(), le.item(), rtol=1e-5)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert compiled.trace_count <= 3


def test_bad_lengths_are_named():
    x = gradc.tensor(randn(4, 3, 2))
    with pytest.raises(ShapeError, match="decreasing order.*enforce_sorted=False"):
        R.pack_padded_sequence(x, [2, 3, 1])
    with pytest.raises(ShapeError, match="greater than 0"):
        R.pack_padded_sequence(x, [3, 0, 1], enforce_sorted=False)
    with pytest.raises(ShapeError, match="exceeds the 4 time steps"):
        R.pack_padded_sequence(x, [6, 3, 1])
    with pytest.raises(ShapeError, match="expected 3 lengths"):
        R.pack_padded_sequence(x, [3, 1])
    p = R.pack_padded_sequence(x, [4, 3, 1])
    with pytest.raises(ShapeError, match="total_length=2 is shorter"):
        R.pad_packed_sequence(p, total_length=2)
    with pytest.raises(ShapeError, match=r"packed data has shape \(8, 2\), expected \(total length, 5\)"):
        nn.GRU(5, 3)(p)
