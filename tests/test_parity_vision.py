"""PyTorch-parity regressions from vision model code (torchvision's models and the habits around
them): each once differed from PyTorch, eagerly or under gradc.compile."""
import warnings

import numpy as np
import pytest

import gradc
import gradc.nn as gnn
import gradc.nn.functional as GF
import gradc.utils.checkpoint as gcp

torch = pytest.importorskip("torch")
import torch.utils.checkpoint as tcp  # noqa: E402


def _pair(make_torch, make_gradc):
    torch.manual_seed(0)
    t, g = make_torch(), make_gradc()
    g.load_state_dict({k: gradc.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    return t, g


def _bn_stats(m):
    return [b.detach().numpy() for b in m.buffers() if b.dtype.is_floating_point]


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_a_checkpointed_batch_norm_updates_its_statistics_twice_when_compiled_too(backend):
    # torchvision's DenseNet(memory_efficient=True): backward recomputes the segment, so PyTorch
    # updates the running statistics a second time; a compiled step must do the same.
    t, g = _pair(lambda: torch.nn.Sequential(torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 3)),
                 lambda: gnn.Sequential(gnn.BatchNorm1d(3), gnn.Linear(3, 3)))
    x = np.random.RandomState(0).randn(4, 3).astype(np.float32)

    def gstep(x):
        gcp.checkpoint(g, x, use_reentrant=False).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    for _ in range(2):
        tcp.checkpoint(t, tx, use_reentrant=False).sum().backward()
    gx = gradc.tensor(x, requires_grad=True)
    compiled = gradc.compile(gstep, backend=backend)
    for _ in range(2):
        compiled(gx)
    assert compiled.trace_count == 2, compiled.recompile_reasons   # (the second call accumulates into .grad)
    for a, b in zip(_bn_stats(g), _bn_stats(t)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(g[0].num_batches_tracked) == int(t[0].num_batches_tracked) == 4
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_a_checkpointed_batch_norm_whose_backward_comes_later_runs_eagerly():
    # The second update happens in a backward outside the compiled call: that call runs eagerly.
    t, g = _pair(lambda: torch.nn.BatchNorm1d(3), lambda: gnn.BatchNorm1d(3))
    x = np.random.RandomState(1).randn(4, 3).astype(np.float32)
    compiled = gradc.compile(lambda x: gcp.checkpoint(g, x, use_reentrant=False))
    with pytest.warns(UserWarning, match="checkpointed segment"):
        compiled(gradc.tensor(x, requires_grad=True)).sum().backward()
    tcp.checkpoint(t, torch.tensor(x, requires_grad=True), use_reentrant=False).sum().backward()
    for a, b in zip(_bn_stats(g), _bn_stats(t)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fuse_conv_bn_eval_matches_pytorch():
    for transpose in (False, True):
        conv_t = torch.nn.ConvTranspose2d if transpose else torch.nn.Conv2d
        conv_g = gnn.ConvTranspose2d if transpose else gnn.Conv2d
        tc, gc = _pair(lambda: conv_t(3, 4, 3), lambda: conv_g(3, 4, 3))
        tb, gb = _pair(lambda: torch.nn.BatchNorm2d(4), lambda: gnn.BatchNorm2d(4))
        with torch.no_grad():
            for b in (tb.running_mean, tb.weight, tb.bias):
                b.uniform_(-1, 1)
            tb.running_var.uniform_(0.5, 2)
        gb.load_state_dict({k: gradc.tensor(v.detach().numpy()) for k, v in tb.state_dict().items()})
        for m in (tc, gc, tb, gb):
            m.eval()
        x = np.random.RandomState(2).randn(2, 3, 6, 6).astype(np.float32)
        expected = torch.nn.utils.fusion.fuse_conv_bn_eval(tc, tb, transpose=transpose)(torch.tensor(x))
        got = gnn.utils.fusion.fuse_conv_bn_eval(gc, gb, transpose=transpose)(gradc.tensor(x))
        np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(gradc.GradcError, match="eval"):
        gnn.utils.fuse_conv_bn_eval(gnn.Conv2d(1, 1, 1), gnn.BatchNorm2d(1))


def test_names_torchvision_models_call():
    x = np.random.RandomState(3).randn(1, 2, 5, 5).astype(np.float32)
    for a, b in zip(GF.max_pool2d_with_indices(gradc.tensor(x), 2), torch.nn.functional.max_pool2d_with_indices(
            torch.tensor(x), 2)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    gradc._assert(True, "holds")
    with pytest.raises(AssertionError, match="a message"):
        gradc._assert(False, "a message")
    assert gradc.fx.wrap("len") == "len" and gradc.vmap is gradc.func.vmap
    from gradc._dynamo.eval_frame import OptimizedModule
    assert isinstance(gradc.compile(gnn.Linear(2, 2)), OptimizedModule)
    assert all(isinstance(m(), gnn.modules.dropout._DropoutNd) for m in (gnn.Dropout, gnn.Dropout2d, gnn.AlphaDropout))


def test_activation_reprs_read_as_pytorchs():
    for name in ("Hardswish", "Hardsigmoid", "ELU", "CELU", "Hardtanh", "RReLU"):
        for kw in ({}, {"inplace": True}):
            assert repr(getattr(gnn, name)(**kw)) == repr(getattr(torch.nn, name)(**kw))


def test_a_checkpointed_segment_drawing_and_updating_state_runs_eagerly():
    gradc.manual_seed(0)
    seg = gnn.Sequential(gnn.Dropout(0.5), gnn.BatchNorm1d(3))
    x = gradc.randn(4, 3, requires_grad=True)

    def step(x):
        gcp.checkpoint(seg, x, use_reentrant=False).sum().backward()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gradc.compile(step)(x)
    assert any("draws random numbers and updates state" in str(w.message) for w in caught)
    assert int(seg[1].num_batches_tracked) == 2   # (eagerly: the forward and backward's recomputation)
