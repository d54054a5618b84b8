"""The nn modules and functions beyond the vision and sequence layers, beside PyTorch: the names
exist, modules have PyTorch's state-dict keys and shapes, and from identical weights give PyTorch's
outputs and gradients (float32: rtol 1e-4, atol 1e-5 unless stated); the random layers draw as
documented; bad shapes get named errors. The functions' own rows (gradcheck, eager vs compiled,
parity) are in tests/opdb_nn_more.py."""
import warnings

import numpy as np
import pytest

import gradc
import gradc.nn as gnn
import gradc.nn.functional as F
from gradc.errors import DTypeError, ShapeError

torch = pytest.importorskip("torch")
tnn, tF = torch.nn, torch.nn.functional

MODULES = ("Transformer TransformerDecoder TransformerDecoderLayer MarginRankingLoss HingeEmbeddingLoss "
           "CosineEmbeddingLoss SoftMarginLoss MultiLabelSoftMarginLoss MultiMarginLoss MultiLabelMarginLoss "
           "TripletMarginLoss TripletMarginWithDistanceLoss GaussianNLLLoss PoissonNLLLoss CTCLoss PairwiseDistance "
           "Bilinear EmbeddingBag LazyLinear LazyConv1d LazyConv2d LocalResponseNorm LPPool1d LPPool2d LPPool3d "
           "AlphaDropout FeatureAlphaDropout RReLU ChannelShuffle FractionalMaxPool2d AdaptiveAvgPool3d ConstantPad3d ZeroPad3d "
           "ReflectionPad3d ReplicationPad3d CircularPad3d InstanceNorm3d").split()
FUNCTIONS = ("multi_head_attention_forward grid_sample affine_grid gumbel_softmax upsample upsample_nearest "
             "upsample_bilinear margin_ranking_loss hinge_embedding_loss cosine_embedding_loss soft_margin_loss "
             "multilabel_soft_margin_loss multi_margin_loss multilabel_margin_loss triplet_margin_loss "
             "triplet_margin_with_distance_loss gaussian_nll_loss poisson_nll_loss ctc_loss pairwise_distance pdist "
             "bilinear embedding_bag local_response_norm lp_pool1d lp_pool2d lp_pool3d alpha_dropout "
             "feature_alpha_dropout rrelu channel_shuffle adaptive_avg_pool3d fractional_max_pool2d").split()


def test_names_exist_as_in_pytorch():
    assert [n for n in MODULES if not hasattr(gnn, n)] == []
    assert [n for n in FUNCTIONS if not hasattr(F, n)] == []
    assert all(hasattr(tnn, n) for n in MODULES) and all(hasattr(tF, n) for n in FUNCTIONS)


def _r(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _pair(name, args=(), kw=None):
    kw = kw or {}
    torch.manual_seed(0)
    t, g = getattr(tnn, name)(*args, **kw), getattr(gnn, name)(*args, **kw)
    ts, gs = t.state_dict(), g.state_dict()
    assert list(gs) == list(ts)
    assert [tuple(v.shape) for v in gs.values()] == [tuple(v.shape) for v in ts.values()]
    g.load_state_dict({k: gradc.tensor(v.numpy()) for k, v in ts.items()})
    return t, g


def _compare(t, g, inputs, grad=(0,), rtol=1e-4, atol=1e-5):
    t_in = [torch.tensor(x, requires_grad=i in grad) for i, x in enumerate(inputs)]
    g_in = [gradc.tensor(x, requires_grad=i in grad) for i, x in enumerate(inputs)]
    to, go = t(*t_in), g(*g_in)
    np.testing.assert_allclose(go.detach().numpy(), to.detach().numpy(), rtol=rtol, atol=atol)
    w = np.random.default_rng(9).standard_normal(tuple(to.shape)).astype(np.float32)
    (to * torch.tensor(w)).sum().backward()
    (go * gradc.tensor(w)).sum().backward()
    for i in grad:
        np.testing.assert_allclose(g_in[i].grad.numpy(), t_in[i].grad.numpy(), rtol=rtol, atol=atol)
    tp = dict(t.named_parameters())
    for n, p in g.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[n].grad.numpy(), rtol=rtol, atol=atol, err_msg=n)


rng0 = np.random.default_rng(0)
LAYERS = [
    ("Bilinear", (3, 4, 5), {}, lambda r: [_r(r, 2, 3), _r(r, 2, 4)], (0, 1)),
    ("EmbeddingBag", (10, 4), {"mode": "max"}, lambda r: [np.array([[1, 2, 3], [4, 5, 9]])], ()),
    ("EmbeddingBag", (10, 4), {"mode": "sum", "padding_idx": 2},
     lambda r: [np.array([1, 2, 3, 4, 5, 9]), np.array([0, 3, 3])], ()),
    ("LocalResponseNorm", (3,), {}, lambda r: [_r(r, 2, 5, 3, 3)], (0,)),
    ("LPPool2d", (2, 3), {"stride": 2}, lambda r: [np.abs(_r(r, 2, 3, 7, 7)) + 0.1], (0,)),
    ("LPPool1d", (1.5, 2), {}, lambda r: [np.abs(_r(r, 2, 3, 7)) + 0.1], (0,)),
    ("ChannelShuffle", (2,), {}, lambda r: [_r(r, 1, 4, 2, 2)], (0,)),
    ("AdaptiveAvgPool3d", ((2, 3, 2),), {}, lambda r: [_r(r, 1, 2, 5, 6, 4)], (0,)),
    ("ConstantPad3d", ((1, 2, 0, 1, 2, 0), 1.5), {}, lambda r: [_r(r, 1, 2, 2, 3, 2)], (0,)),
    ("ReflectionPad3d", (1,), {}, lambda r: [_r(r, 1, 2, 2, 3, 3)], (0,)),
    ("InstanceNorm3d", (3,), {"affine": True, "track_running_stats": True}, lambda r: [_r(r, 2, 3, 2, 3, 4)], (0,)),
    ("PairwiseDistance", (), {"p": 1.0, "keepdim": True}, lambda r: [_r(r, 3, 4), _r(r, 3, 4)], (0, 1)),
    ("TransformerDecoderLayer", (8, 2, 16, 0.0), {"batch_first": True, "norm_first": True},
     lambda r: [_r(r, 2, 3, 8), _r(r, 2, 4, 8)], (0, 1)),
    ("TransformerDecoderLayer", (8, 2, 16, 0.0), {"activation": "gelu"},
     lambda r: [_r(r, 3, 2, 8), _r(r, 4, 2, 8)], (0, 1)),
]


@pytest.mark.parametrize("name, args, kw, inputs, grad", LAYERS, ids=[f"{c[0]}-{i}" for i, c in enumerate(LAYERS)])
def test_layer_matches_torch(name, args, kw, inputs, grad):
    t, g = _pair(name, args, kw)
    t.train(), g.train()
    _compare(t, g, inputs(np.random.default_rng(1)), grad)


LOSSES = [
    ("MarginRankingLoss", {"margin": 0.2}, lambda r: [_r(r, 5), _r(r, 5), np.sign(_r(r, 5))], (0, 1)),
    ("HingeEmbeddingLoss", {"reduction": "sum"}, lambda r: [_r(r, 3, 4), np.sign(_r(r, 3, 4))], (0,)),
    ("CosineEmbeddingLoss", {"margin": 0.1}, lambda r: [_r(r, 4, 5), _r(r, 4, 5), np.sign(_r(r, 4))], (0, 1)),
    ("SoftMarginLoss", {}, lambda r: [_r(r, 3, 4), np.sign(_r(r, 3, 4))], (0,)),
    ("MultiLabelSoftMarginLoss", {"weight": "w5"}, lambda r: [_r(r, 3, 5), (_r(r, 3, 5) > 0) * np.float32(1)], (0,)),
    ("MultiMarginLoss", {"p": 2, "weight": "w5"}, lambda r: [_r(r, 4, 5), np.array([0, 4, 2, 2])], (0,)),
    ("MultiLabelMarginLoss", {"reduction": "none"},
     lambda r: [_r(r, 2, 4), np.array([[3, 0, -1, 1], [1, 2, 3, 0]])], (0,)),
    ("TripletMarginLoss", {"margin": 1.5, "swap": True}, lambda r: [_r(r, 4, 5), _r(r, 4, 5), _r(r, 4, 5)], (0, 1, 2)),
    ("GaussianNLLLoss", {"full": True}, lambda r: [_r(r, 4, 3), _r(r, 4, 3), np.abs(_r(r, 4)) + 0.1], (0, 2)),
    ("PoissonNLLLoss", {"log_input": False, "full": True},
     lambda r: [np.abs(_r(r, 4, 3)) + 0.1, np.float32(r.poisson(2.0, (4, 3)))], (0,)),
]


@pytest.mark.parametrize("name, kw, inputs, grad", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss_module_matches_torch(name, kw, inputs, grad):
    w = np.linspace(0.5, 1.5, 5).astype(np.float32)
    tkw = {k: (torch.tensor(w) if v == "w5" else v) for k, v in kw.items()}
    gkw = {k: (gradc.tensor(w) if v == "w5" else v) for k, v in kw.items()}
    t, g = getattr(tnn, name)(**tkw), getattr(gnn, name)(**gkw)
    assert list(g.state_dict()) == list(t.state_dict())
    _compare(t, g, inputs(np.random.default_rng(2)), grad)


def test_triplet_with_distance_and_ctc_modules():
    rng = np.random.default_rng(3)
    a, p, n = (_r(rng, 4, 5) for _ in range(3))
    t = tnn.TripletMarginWithDistanceLoss(distance_function=tnn.CosineSimilarity(), margin=0.5)
    g = gnn.TripletMarginWithDistanceLoss(distance_function=gnn.CosineSimilarity(), margin=0.5)
    _compare(t, g, [a, p, n], (0, 1, 2))
    logits = _r(rng, 6, 2, 5)
    tc, gc_ = tnn.CTCLoss(blank=4, reduction="sum"), gnn.CTCLoss(blank=4, reduction="sum")
    args = (np.array([0, 1, 1, 3, 2]), (6, 5), (3, 2))   # concatenated 1-D targets with tuple lengths
    to = tc(torch.tensor(logits).log_softmax(2), torch.tensor(args[0]), *args[1:])
    go = gc_(gradc.tensor(logits).log_softmax(2), gradc.tensor(args[0]), *args[1:])
    np.testing.assert_allclose(go.numpy(), to.numpy(), rtol=1e-5)


def test_ctc_impossible_alignments_and_unbatched():
    rng = np.random.default_rng(4)
    lp = np.log(rng.dirichlet(np.ones(4), (3, 2))).astype(np.float32)      # T=3
    targets, il, tl = np.array([[1, 1, 2], [2, 3, 0]]), np.array([3, 3]), np.array([3, 2])  # 1 1 2 needs T >= 4
    for zi in (False, True):
        t = tF.ctc_loss(torch.tensor(lp), torch.tensor(targets), torch.tensor(il), torch.tensor(tl),
                        reduction="none", zero_infinity=zi)
        g = F.ctc_loss(gradc.tensor(lp), gradc.tensor(targets), gradc.tensor(il), gradc.tensor(tl),
                       reduction="none", zero_infinity=zi)
        np.testing.assert_allclose(g.numpy(), t.numpy(), rtol=1e-5)
    x = gradc.tensor(lp, requires_grad=True)
    F.ctc_loss(x, gradc.tensor(targets), gradc.tensor(il), gradc.tensor(tl), zero_infinity=True).backward()
    assert np.isfinite(x.grad.numpy()).all() and np.abs(x.grad.numpy()[:, 0]).max() == 0.0
    t = tF.ctc_loss(torch.tensor(lp[:, 1]), torch.tensor(targets[1, :2]), torch.tensor(3), torch.tensor(2))
    g = F.ctc_loss(gradc.tensor(lp[:, 1]), gradc.tensor(targets[1, :2]), gradc.tensor(3), gradc.tensor(2))
    assert g.shape == () and abs(float(g.item()) - float(t.item())) < 1e-5


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ctc_gradient_of_a_log_probs_leaf_is_pytorchs(reduction):
    """PyTorch's own CTCLoss example: log_probs a detached log_softmax, its .grad compared; a
    padded input step (input_lengths 5 of 6) gets no gradient, compiled as eagerly."""
    lp = np.log(np.random.default_rng(5).dirichlet(np.ones(4), (6, 2)))
    targets, il, tl = np.array([[1, 2, 2], [3, 1, 0]]), np.array([6, 5]), np.array([3, 2])
    t = torch.tensor(lp, requires_grad=True)
    tF.ctc_loss(t, torch.tensor(targets), torch.tensor(il), torch.tensor(tl), reduction=reduction).sum().backward()

    def loss(x):
        return F.ctc_loss(x, gradc.tensor(targets), gradc.tensor(il), gradc.tensor(tl), reduction=reduction).sum()
    for run in (loss, gradc.compile(lambda x: gradc.autograd.grad(loss(x), x)[0])):
        g = gradc.tensor(lp, requires_grad=True)
        grad = run(g) if run is not loss else (run(g).backward(), g.grad)[1]
        np.testing.assert_allclose(grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_transformer_masks_state_dict_and_compiled_step():
    torch.manual_seed(0)
    kw = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=16, dropout=0.0)
    t, g = _pair("Transformer", (), kw)
    assert list(g.state_dict())[:2] == ["encoder.layers.0.self_attn.in_proj_weight",
                                        "encoder.layers.0.self_attn.in_proj_bias"]
    rng = np.random.default_rng(5)
    src, tgt = _r(rng, 5, 3, 8), _r(rng, 4, 3, 8)
    kpm = np.zeros((3, 5), bool)
    kpm[1, 3:] = True
    tm = tnn.Transformer.generate_square_subsequent_mask(4)
    gm = gnn.Transformer.generate_square_subsequent_mask(4)
    np.testing.assert_array_equal(gm.numpy(), tm.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        to = t(torch.tensor(src), torch.tensor(tgt), tgt_mask=tm, src_key_padding_mask=torch.tensor(kpm),
               memory_key_padding_mask=torch.tensor(kpm), tgt_is_causal=True)
    go = g(gradc.tensor(src), gradc.tensor(tgt), tgt_mask=gm, src_key_padding_mask=gradc.tensor(kpm),
           memory_key_padding_mask=gradc.tensor(kpm), tgt_is_causal=True)
    np.testing.assert_allclose(go.detach().numpy(), to.detach().numpy(), rtol=1e-4, atol=1e-5)

    def step(src, tgt, mask):
        g.zero_grad()
        out = g(src, tgt, tgt_mask=mask)
        loss = (out * out).mean()
        loss.backward()
        return loss, [p.grad for p in g.parameters()]
    args = (gradc.tensor(src), gradc.tensor(tgt), gm)
    e_loss, e_grads = step(*args)
    c_loss, c_grads = gradc.compile(step, backend="numpy")(*args)
    np.testing.assert_allclose(c_loss.item(), e_loss.item(), rtol=1e-5)
    for a, b in zip(c_grads, e_grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ShapeError, match="batch number of src"):
        g(gradc.tensor(src), gradc.tensor(_r(rng, 4, 2, 8)))
    with pytest.raises(ShapeError, match="d_model"):
        g(gradc.tensor(src), gradc.tensor(_r(rng, 4, 3, 6)))


def test_multi_head_attention_forward_matches_torch():
    rng = np.random.default_rng(6)
    e, h = 6, 3
    q, k = _r(rng, 4, 2, e), _r(rng, 5, 2, e)
    ipw, ipb, ow, ob = _r(rng, 3 * e, e), _r(rng, 3 * e), _r(rng, e, e), _r(rng, e)
    bk, bv, am = _r(rng, 1, 1, e), _r(rng, 1, 1, e), _r(rng, 4, 5)
    T, G = torch.tensor, gradc.tensor
    t = tF.multi_head_attention_forward(T(q), T(k), T(k), e, h, T(ipw), T(ipb), T(bk), T(bv), True, 0.0, T(ow),
                                        T(ob), attn_mask=T(am), average_attn_weights=False)
    g = F.multi_head_attention_forward(G(q), G(k), G(k), e, h, G(ipw), G(ipb), G(bk), G(bv), True, 0.0, G(ow),
                                       G(ob), attn_mask=G(am), average_attn_weights=False)
    for a, b in zip(g, t):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_lazy_modules_become_their_eager_classes():
    torch.manual_seed(0)
    t, g = tnn.LazyLinear(3), gnn.LazyLinear(3)
    assert g.has_uninitialized_params() and list(g.parameters()) == []
    x = np.random.default_rng(7).standard_normal((2, 5)).astype(np.float32)
    t(torch.tensor(x)), g(gradc.tensor(x))
    assert type(g) is gnn.Linear and g.in_features == 5 and list(g.state_dict()) == list(t.state_dict())
    g.load_state_dict({k: gradc.tensor(v.numpy()) for k, v in t.state_dict().items()})
    np.testing.assert_allclose(g(gradc.tensor(x)).detach().numpy(), t(torch.tensor(x)).detach().numpy(), rtol=1e-5)
    c = gnn.LazyConv2d(4, 3, padding=1)
    out = c(gradc.randn(2, 3, 5, 5))
    assert type(c) is gnn.Conv2d and c.in_channels == 3 and tuple(c.weight.shape) == (4, 3, 3, 3)
    assert out.shape == (2, 4, 5, 5)
    with pytest.raises(ShapeError, match="LazyConv1d"):
        gnn.LazyConv1d(2, 3)(gradc.randn(2, 3, 4, 5))


def test_random_layers():
    gradc.manual_seed(0)
    r = gnn.RReLU(0.1, 0.3)
    x = -gradc.ones(20000)
    y = r(x).numpy()
    assert -0.3 <= y.min() and y.max() <= -0.1 and abs(y.mean() + 0.2) < 0.01 and len(np.unique(y)) > 1000
    r.eval()
    np.testing.assert_allclose(r(x).numpy(), -0.2, rtol=1e-6)
    d = gnn.AlphaDropout(0.3)
    x = gradc.randn(400, 100)
    y = d(x).numpy()
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1.0) < 0.02   # SELU's mean 0 and variance 1 are kept
    assert (np.isclose(y, y.min()).mean() - 0.3) < 0.02          # the dropped units share one value
    d.eval()
    assert d(x) is x
    p, alpha = 0.5, 1.7580993408473766
    dropped = alpha * (p - 1) / np.sqrt((alpha ** 2 * p + 1) * (1 - p))     # the value of a dropped unit
    maps = gnn.FeatureAlphaDropout(p)(gradc.randn(16, 64, 3, 3)).numpy().reshape(1024, 9)
    whole = np.isclose(maps, dropped, atol=1e-6).all(1)
    assert abs(whole.mean() - p) < 0.08 and not np.isclose(maps[~whole], dropped, atol=1e-6).any()
    logits = gradc.zeros(3000, 3, requires_grad=True)
    s = F.gumbel_softmax(logits, tau=0.5, hard=True)
    assert set(np.unique(s.detach().numpy())) == {0.0, 1.0} and (s.detach().numpy().sum(1) == 1).all()
    counts = s.detach().numpy().sum(0)
    assert counts.min() > 900      # uniform logits pick each class about equally
    (s * gradc.tensor(np.arange(3.0, dtype=np.float32))).sum().backward()
    assert np.abs(logits.grad.numpy()).max() > 0      # the straight-through gradient is the soft sample's


def test_fractional_max_pool2d_module():
    rng = np.random.default_rng(8)
    x, u = _r(rng, 2, 3, 9, 9), rng.random((2, 3, 2)).astype(np.float32)
    t = tnn.FractionalMaxPool2d(3, output_ratio=0.5, return_indices=True, _random_samples=torch.tensor(u))
    g = gnn.FractionalMaxPool2d(3, output_ratio=0.5, return_indices=True, _random_samples=gradc.tensor(u))
    (a, ai), (b, bi) = t(torch.tensor(x)), g(gradc.tensor(x))
    np.testing.assert_array_equal(b.numpy(), a.numpy())
    np.testing.assert_array_equal(bi.numpy(), ai.numpy())
    y = gnn.FractionalMaxPool2d(2, output_size=(4, 4))(gradc.tensor(x))    # fresh samples: still window maxima
    assert y.shape == (2, 3, 4, 4) and set(np.unique(y.numpy())) <= set(np.unique(x))
    with pytest.raises(ValueError, match="exactly one"):
        gnn.FractionalMaxPool2d(2)
    with pytest.raises(ShapeError, match="does not fit"):
        F.fractional_max_pool2d(gradc.tensor(x), 3, output_size=(8, 8))


def test_upsample_is_interpolate_with_a_warning():
    x = gradc.randn(1, 2, 3, 4)
    with pytest.warns(UserWarning, match="deprecated"):
        y = F.upsample(x, scale_factor=2, mode="bilinear", align_corners=False)
    np.testing.assert_array_equal(y.numpy(), F.interpolate(x, scale_factor=2, mode="bilinear",
                                                           align_corners=False).numpy())
    with pytest.warns(UserWarning):
        z = F.upsample_bilinear(x, size=(5, 6))
    with pytest.warns(UserWarning):
        t = tF.upsample_bilinear(torch.tensor(x.numpy()), size=(5, 6))
    np.testing.assert_allclose(z.numpy(), t.numpy(), rtol=1e-5, atol=1e-6)


def test_named_errors_for_bad_input():
    x = gradc.randn(3, 4)
    with pytest.raises(ShapeError, match="target has shape"):
        F.margin_ranking_loss(x, x, gradc.ones(3))
    with pytest.raises(ShapeError, match="cosine_embedding_loss"):
        F.cosine_embedding_loss(x, gradc.randn(3, 5), gradc.ones(3))
    with pytest.raises(DTypeError, match="int64"):
        F.multi_margin_loss(x, gradc.zeros(3))
    with pytest.raises(ShapeError, match="var of shape"):
        F.gaussian_nll_loss(x, x, gradc.ones(2))
    with pytest.raises(ShapeError, match="theta must have shape"):
        F.affine_grid(gradc.randn(2, 2, 3), (3, 1, 4, 4))
    with pytest.raises(ShapeError, match="grid must be"):
        F.grid_sample(gradc.randn(1, 1, 4, 4), gradc.randn(1, 3, 3, 3))
    with pytest.raises(ValueError, match="bicubic"):
        F.grid_sample(gradc.randn(1, 1, 4, 4), gradc.randn(1, 3, 3, 2), mode="bicubic")
    with pytest.raises(ShapeError, match="weight"):
        F.bilinear(x, x, gradc.randn(2, 4, 5))
    with pytest.raises(ValueError, match="per_sample_weights"):
        F.embedding_bag(gradc.tensor([[1, 2]]), x, mode="mean", per_sample_weights=gradc.ones(1, 2))
    with pytest.raises(ShapeError, match="groups"):
        F.channel_shuffle(gradc.randn(1, 5, 2, 2), 2)
    with pytest.raises(ShapeError, match="pdist"):
        F.pdist(gradc.randn(2, 3, 4))
    with pytest.raises(ShapeError, match="log_probs"):
        F.ctc_loss(gradc.randn(2, 3, 4, 5), gradc.tensor([[1]]), (2,), (1,))
    with pytest.raises(ShapeError, match="concatenated targets"):
        F.ctc_loss(gradc.randn(4, 2, 5), gradc.tensor([1, 2, 3]), (4, 4), (1, 1))
    with pytest.raises(gradc.errors.OutOfRangeError, match="ctc_loss: targets"):
        F.ctc_loss(gradc.randn(4, 1, 5), gradc.tensor([[1, 7]]), (4,), (2,))
    with pytest.raises(gradc.errors.OutOfRangeError, match="embedding_bag"):
        F.embedding_bag(gradc.tensor([[1, 9]]), x)
    with pytest.raises(ShapeError, match="adaptive_avg_pool3d"):
        F.adaptive_avg_pool3d(gradc.randn(2, 3, 4), 2)


@pytest.mark.parametrize("nhead, batch_first, mask", [
    (2, True, [[False, False, True], [False, False, False]]),    # PyTorch's nested path: padded rows are 0
    (1, True, [[False, False, True], [False, False, False]]),    # odd heads: its regular path
    (2, False, [[False, False, True], [False, False, False]]),
    (2, True, [[True, False, False], [False, False, False]])])   # not left-aligned: the regular path
def test_transformer_encoder_inference_with_padding_matches_pytorchs_paths(nhead, batch_first, mask):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = tnn.TransformerEncoder(tnn.TransformerEncoderLayer(4, nhead, 8, batch_first=batch_first), 1,
                                   norm=tnn.LayerNorm(4)).eval()
        g = gnn.TransformerEncoder(gnn.TransformerEncoderLayer(4, nhead, 8, batch_first=batch_first), 1,
                                   norm=gnn.LayerNorm(4)).eval()
    g.load_state_dict({k: gradc.tensor(v.numpy()) for k, v in t.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    x = x if batch_first else x.transpose(1, 0, 2).copy()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = t(torch.tensor(x), src_key_padding_mask=torch.tensor(mask)).numpy()
    with gradc.no_grad():
        np.testing.assert_allclose(g(gradc.tensor(x), src_key_padding_mask=gradc.tensor(mask)).numpy(), expected,
                                   rtol=1e-5, atol=1e-6)
