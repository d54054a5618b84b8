"""Convolution, padding, pooling, resampling and normalisation layers against PyTorch (float64, so
the tolerance is tight): forward values, gradients with respect to input and parameters, state-dict
keys and shapes, eagerly and under gradc.compile; plus their errors and initialisation."""
import math

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
    """The same layer in gradc and torch, both in float64."""
    return g_cls(*args, **kwargs).double(), t_cls(*args, **kwargs).double()


# ---------------------------------------------------------------------------- convolution
CONV2D = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
    dict(padding="same", dilation=2),
    dict(padding="valid"),
    dict(groups=2, padding=1),
    dict(groups=4, padding=1, out=8),          # depthwise with a channel multiplier
    dict(groups=4, padding=1, out=4),          # depthwise
    dict(bias=False, stride=3),
    dict(padding=1, padding_mode="reflect"),
    dict(padding=(2, 1), padding_mode="replicate"),
    dict(padding=1, padding_mode="circular"),
    dict(padding="same", padding_mode="reflect", kernel=(2, 3)),
]


@pytest.mark.parametrize("cfg", CONV2D, ids=[str(c) for c in CONV2D])
def test_conv2d_matches_torch(cfg):
    cfg = dict(cfg)
    out, kernel = cfg.pop("out", 6), cfg.pop("kernel", 3)
    g, t = pair(nn.Conv2d, torch.nn.Conv2d, 4, out, kernel, **cfg)
    check_module(torch, g, t, [randn(2, 4, 7, 8)])


@pytest.mark.parametrize("cfg", [dict(), dict(stride=2, padding=2, dilation=2), dict(padding="same", groups=2),
                                 dict(padding=1, padding_mode="reflect", bias=False)])
def test_conv1d_matches_torch(cfg):
    g, t = pair(nn.Conv1d, torch.nn.Conv1d, 4, 6, 3, **cfg)
    check_module(torch, g, t, [randn(2, 4, 9)])


CONVT = [
    dict(),
    dict(stride=2),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(2, 3), padding=(0, 2), dilation=(2, 1), groups=2),
    dict(stride=3, padding=2, output_padding=(2, 1), bias=False),
    dict(padding=2),                           # padding beyond the kernel's reach crops
]


@pytest.mark.parametrize("cfg", CONVT, ids=[str(c) for c in CONVT])
def test_conv_transpose2d_matches_torch(cfg):
    g, t = pair(nn.ConvTranspose2d, torch.nn.ConvTranspose2d, 4, 6, 3, **cfg)
    check_module(torch, g, t, [randn(2, 4, 5, 6)])


def test_conv_transpose_output_size_and_1d():
    g, t = pair(nn.ConvTranspose2d, torch.nn.ConvTranspose2d, 4, 2, 3, stride=2, padding=1)
    check_module(torch, g, t, [randn(2, 4, 5, 6)], call=lambda m, x: m(x, output_size=(10, 12)), compiled=False)
    with pytest.raises(ValueError, match="between 9 and 10"):
        g(gradc.zeros(1, 4, 5, 6, dtype=gradc.float64), output_size=(12, 12))
    g1, t1 = pair(nn.ConvTranspose1d, torch.nn.ConvTranspose1d, 3, 4, 3, stride=2, padding=1, output_padding=1)
    check_module(torch, g1, t1, [randn(2, 3, 7)])


def test_conv_functional_unbatched_and_unfold_fold():
    x, w, b = randn(3, 6, 7), randn(4, 3, 2, 3, seed=1), randn(4, seed=2)
    check_function(torch, lambda x, w, b: F.conv2d(x, w, b, padding=1),
                   lambda x, w, b: TF.conv2d(x, w, b, padding=1), [x, w, b])
    check_function(torch, lambda x: F.unfold(x, (2, 3), dilation=(2, 1), padding=1, stride=2),
                   lambda x: TF.unfold(x, (2, 3), dilation=(2, 1), padding=1, stride=2), [randn(2, 3, 6, 7)])
    check_function(torch, lambda c: F.fold(c, (6, 7), (2, 3), padding=1, stride=2),
                   lambda c: TF.fold(c, (6, 7), (2, 3), padding=1, stride=2), [randn(2, 18, 16)])


def test_conv_float32_default_init_and_layout():
    g = nn.Conv2d(6, 8, (3, 5), groups=2)
    assert g.weight.shape == (8, 3, 3, 5) and g.bias.shape == (8,) and g.weight.dtype is gradc.float32
    assert list(g.state_dict()) == ["weight", "bias"]
    fan_in = 3 * 3 * 5
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)): gain sqrt(1/3), bound gain*sqrt(3/fan_in)
    w, b = g.weight.detach().numpy(), g.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.15 * bound / math.sqrt(3)
    t = nn.ConvTranspose2d(6, 8, 3, groups=2)
    assert t.weight.shape == (6, 4, 3, 3)
    assert np.abs(t.bias.detach().numpy()).max() <= 1 / math.sqrt(4 * 9)
    gt, tt = nn.Conv2d(3, 5, 3, padding=1), torch.nn.Conv2d(3, 5, 3, padding=1)
    load_from_torch(gt, tt)
    x = randn(2, 3, 8, 8).astype(np.float32)
    np.testing.assert_allclose(gt(gradc.tensor(x)).detach().numpy(), tt(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_conv_errors_name_both_numbers():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ShapeError, match=r"input has 5 channels.*expects 3"):
        conv(gradc.zeros(1, 5, 8, 8))
    with pytest.raises(ShapeError, match=r"input has 4 channels.*expects 6 \(weight.shape\[1\] \* groups = 3 \* 2\)"):
        F.conv2d(gradc.zeros(1, 4, 8, 8), gradc.zeros(4, 3, 3, 3), groups=2)
    with pytest.raises(ShapeError, match="larger than the padded input"):
        conv(gradc.zeros(1, 3, 2, 8))
    with pytest.raises(ValueError, match="stride 1"):
        F.conv2d(gradc.zeros(1, 3, 8, 8), gradc.zeros(4, 3, 3, 3), stride=2, padding="same")
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")


# ---------------------------------------------------------------------------- padding
@pytest.mark.parametrize("mode,widths", [("constant", (1, 2, 0, 3)), ("constant", (-1, 2, 1, -2)),
                                         ("reflect", (2, 1, 3, 0)), ("replicate", (3, 1, 0, 2)),
                                         ("circular", (1, 2, 3, 1)), ("reflect", (1, 1)), ("constant", (1, 1))])
def test_pad_matches_torch(mode, widths):
    value = 1.5 if mode == "constant" else None
    shape = (2, 3, 5, 6) if len(widths) == 4 else (3, 5)
    check_function(torch, lambda x: F.pad(x, widths, mode=mode, value=value),
                   lambda x: TF.pad(x, widths, mode=mode, value=value), [randn(*shape)])


def test_pad_errors():
    x = gradc.zeros(1, 2, 3, 3)
    with pytest.raises(ShapeError, match="even length"):
        F.pad(x, (1, 2, 3))
    with pytest.raises(ShapeError, match="smaller than the size 3"):
        F.pad(x, (3, 0), mode="reflect")
    with pytest.raises(ValueError, match="mode"):
        F.pad(x, (1, 1), mode="edge")


# ---------------------------------------------------------------------------- pooling
MAXPOOL = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1)),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=2, ceil_mode=True),               # odd sizes: a last, partial window
    dict(kernel_size=(3, 2), stride=2, padding=(1, 0), ceil_mode=True),
]


@pytest.mark.parametrize("cfg", MAXPOOL, ids=[str(c) for c in MAXPOOL])
def test_max_pool2d_matches_torch(cfg):
    check_function(torch, lambda x: F.max_pool2d(x, **cfg), lambda x: TF.max_pool2d(x, **cfg), [randn(2, 3, 7, 9)])
    g_val, g_idx = F.max_pool2d(gradc.tensor(randn(2, 3, 7, 9)), **cfg, return_indices=True)
    t_val, t_idx = TF.max_pool2d(torch.tensor(randn(2, 3, 7, 9)), **cfg, return_indices=True)
    np.testing.assert_array_equal(g_idx.numpy(), t_idx.numpy())
    np.testing.assert_allclose(g_val.numpy(), t_val.numpy())


def test_max_pool_gradient_goes_to_the_first_maximum_only():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, :2, :2] = 1.0           # a four-way tie in the first window
    x[0, 0, 1, 3] = x[0, 0, 0, 3] = 2.0
    for size, stride in ((2, 2), (3, 1)):      # the reshape path and the strided-slice path
        g, t = gradc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        F.max_pool2d(g, size, stride).sum().backward()
        TF.max_pool2d(t, size, stride).sum().backward()
        np.testing.assert_array_equal(g.grad.numpy(), t.grad.numpy())
        assert set(np.unique(g.grad.numpy())) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_max_pool_modules_1d_and_unbatched():
    g, t = nn.MaxPool1d(3, 2, padding=1, return_indices=True), torch.nn.MaxPool1d(3, 2, padding=1, return_indices=True)
    gv, gi = g(gradc.tensor(randn(2, 3, 10)))
    tv, ti = t(torch.tensor(randn(2, 3, 10)))
    np.testing.assert_allclose(gv.numpy(), tv.numpy())
    np.testing.assert_array_equal(gi.numpy(), ti.numpy())
    check_module(torch, nn.MaxPool2d(2, ceil_mode=True), torch.nn.MaxPool2d(2, ceil_mode=True), [randn(3, 5, 7)])
    check_module(torch, nn.MaxPool1d(2), torch.nn.MaxPool1d(2), [randn(2, 3, 9)])


AVGPOOL = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True, count_include_pad=False),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=2, padding=1, divisor_override=3),
]


@pytest.mark.parametrize("cfg", AVGPOOL, ids=[str(c) for c in AVGPOOL])
def test_avg_pool2d_matches_torch(cfg):
    check_function(torch, lambda x: F.avg_pool2d(x, **cfg), lambda x: TF.avg_pool2d(x, **cfg), [randn(2, 3, 7, 8)])


def test_avg_pool1d_and_modules():
    check_module(torch, nn.AvgPool1d(3, 2, 1, count_include_pad=False), torch.nn.AvgPool1d(3, 2, 1,
                 count_include_pad=False), [randn(2, 3, 10)])
    check_module(torch, nn.AvgPool2d(2, ceil_mode=True), torch.nn.AvgPool2d(2, ceil_mode=True), [randn(2, 3, 5, 7)])


@pytest.mark.parametrize("size", [1, 3, (2, 5), (None, 3), 4])
def test_adaptive_pools_match_torch(size):
    x = randn(2, 3, 7, 8)
    check_module(torch, nn.AdaptiveAvgPool2d(size), torch.nn.AdaptiveAvgPool2d(size), [x])
    check_module(torch, nn.AdaptiveMaxPool2d(size), torch.nn.AdaptiveMaxPool2d(size), [x])
    g_val, g_idx = F.adaptive_max_pool2d(gradc.tensor(x), size, return_indices=True)
    t_val, t_idx = TF.adaptive_max_pool2d(torch.tensor(x), size, return_indices=True)
    np.testing.assert_array_equal(g_idx.numpy(), t_idx.numpy())


def test_adaptive_pools_1d():
    x = randn(2, 3, 10)
    for o in (1, 3, 4):
        check_module(torch, nn.AdaptiveAvgPool1d(o), torch.nn.AdaptiveAvgPool1d(o), [x])
        check_module(torch, nn.AdaptiveMaxPool1d(o), torch.nn.AdaptiveMaxPool1d(o), [x])


def test_pooling_errors():
    x = gradc.zeros(1, 2, 3, 3)
    with pytest.raises(ShapeError, match=r"larger than the padded input \(3 \+ 0 padding = 3\)"):
        F.max_pool2d(x, 4)
    with pytest.raises(ShapeError, match="larger than the padded input"):
        F.avg_pool2d(x, (2, 6), padding=(0, 1))
    with pytest.raises(ShapeError, match="at most half of the kernel size"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ShapeError, match="4-D"):
        F.max_pool2d(gradc.zeros(3, 3), 2)


# ---------------------------------------------------------------------------- interpolate
INTERP = [
    dict(scale_factor=2, mode="nearest"),
    dict(size=(5, 11), mode="nearest"),
    dict(scale_factor=(1.7, 0.6), mode="nearest"),
    dict(size=(9, 4), mode="nearest-exact"),
    dict(scale_factor=2, mode="bilinear", align_corners=False),
    dict(size=(9, 13), mode="bilinear", align_corners=True),
    dict(size=(3, 5), mode="bilinear"),
    dict(scale_factor=(1.5, 2.5), mode="bilinear", recompute_scale_factor=True),
    dict(scale_factor=1.5, mode="bilinear"),
    dict(size=(8, 10), mode="bicubic", align_corners=False),
    dict(size=(5, 12), mode="bicubic", align_corners=True),
    dict(size=(3, 4), mode="area"),
]


@pytest.mark.parametrize("cfg", INTERP, ids=[str(c) for c in INTERP])
def test_interpolate_matches_torch(cfg):
    check_function(torch, lambda x: F.interpolate(x, **cfg), lambda x: TF.interpolate(x, **cfg), [randn(2, 3, 6, 7)])


def test_interpolate_1d_3d_and_upsample_modules():
    check_function(torch, lambda x: F.interpolate(x, size=11, mode="linear"),
                   lambda x: TF.interpolate(x, size=11, mode="linear"), [randn(2, 3, 6)])
    check_function(torch, lambda x: F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=True),
                   lambda x: TF.interpolate(x, scale_factor=2, mode="trilinear", align_corners=True),
                   [randn(1, 2, 3, 4, 2)])
    check_module(torch, nn.Upsample(scale_factor=3), torch.nn.Upsample(scale_factor=3), [randn(1, 2, 3, 4)])
    check_module(torch, nn.UpsamplingBilinear2d(size=(5, 7)), torch.nn.UpsamplingBilinear2d(size=(5, 7)),
                 [randn(1, 2, 3, 4)])
    with pytest.raises(ShapeError, match="4-D"):
        F.interpolate(gradc.zeros(1, 2, 3), scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match="exactly one"):
        F.interpolate(gradc.zeros(1, 2, 3), size=3, scale_factor=2)
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(gradc.zeros(1, 2, 3), size=3, align_corners=True)


@pytest.mark.parametrize("g_cls,t_cls,padding", [
    (nn.ZeroPad2d, torch.nn.ZeroPad2d, (1, 2, 0, 1)), (nn.ReflectionPad2d, torch.nn.ReflectionPad2d, 2),
    (nn.ReplicationPad1d, torch.nn.ReplicationPad1d, (3, 1)), (nn.CircularPad2d, torch.nn.CircularPad2d, 1)])
def test_padding_modules(g_cls, t_cls, padding):
    shape = (2, 3, 5) if "1d" in g_cls.__name__ else (2, 3, 5, 6)
    check_module(torch, g_cls(padding), t_cls(padding), [randn(*shape)])
    check_module(torch, nn.ConstantPad2d(1, 2.5), torch.nn.ConstantPad2d(1, 2.5), [randn(2, 3, 4, 4)])


# ---------------------------------------------------------------------------- normalisation
def _same_buffers(g_module, t_module, rtol=1e-7, atol=1e-9):
    t_buf = dict(t_module.named_buffers())
    for k, b in g_module.named_buffers():
        np.testing.assert_allclose(b.numpy(), t_buf[k].numpy(), rtol=rtol, atol=atol, err_msg=k)


@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (6, 4)), ("BatchNorm1d", (5, 4, 3)),
                                       ("BatchNorm2d", (3, 4, 5, 2)), ("BatchNorm3d", (2, 4, 3, 2, 2))])
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_batch_norm_training_running_stats_and_eval(cls, shape, momentum):
    g, t = pair(getattr(nn, cls), getattr(torch.nn, cls), 4, momentum=momentum)
    with torch.no_grad():  # non-trivial affine parameters
        t.weight.uniform_(0.5, 1.5)
        t.bias.uniform_(-0.5, 0.5)
    load_from_torch(g, t)
    assert list(g.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert g.num_batches_tracked.dtype is gradc.int64
    for step in range(3):  # three batches: the running averages of a moving sequence
        x = randn(*shape, seed=step) * (step + 1) + step
        gt, tt = gradc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        go, to = g(gt), t(tt)
        np.testing.assert_allclose(go.detach().numpy(), to.detach().numpy(), rtol=1e-7, atol=1e-9)
        (go * go).sum().backward()
        (to * to).sum().backward()
        np.testing.assert_allclose(gt.grad.numpy(), tt.grad.numpy(), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(g.weight.grad.numpy(), t.weight.grad.numpy(), rtol=1e-7, atol=1e-9)
        _same_buffers(g, t)
    assert int(g.num_batches_tracked.item()) == 3
    g.eval(), t.eval()
    check_module(torch, g, t, [randn(*shape, seed=9)])


def test_batch_norm_options():
    x = randn(4, 3, 2, 2)
    for kw in (dict(affine=False), dict(track_running_stats=False), dict(affine=False, track_running_stats=False)):
        g, t = pair(nn.BatchNorm2d, torch.nn.BatchNorm2d, 3, **kw)
        check_module(torch, g, t, [x])
        g.eval(), t.eval()  # without running statistics eval still uses the batch's
        check_module(torch, g, t, [x])
        assert list(g.state_dict()) == list(t.state_dict())
    g = nn.BatchNorm1d(3)
    with pytest.raises(ShapeError, match="more than 1 value per channel"):
        g(gradc.zeros(1, 3))
    with pytest.raises(ShapeError, match="expected 2D or 3D input, got 4D"):
        g(gradc.zeros(2, 3, 4, 4))
    with pytest.raises(ShapeError, match="running_mean has shape"):
        g(gradc.zeros(2, 5))
    rm, rv = gradc.zeros(3, dtype=gradc.float64), gradc.ones(3, dtype=gradc.float64)
    check_function(torch, lambda x: F.batch_norm(x, rm, rv, training=False, eps=1e-3),
                   lambda x: TF.batch_norm(x, torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64),
                                           training=False, eps=1e-3), [x])


def _bn_net(torch_mod, momentum):
    nn_ = torch_mod
    return nn_.Sequential(nn_.Conv2d(2, 4, 3, padding=1), nn_.BatchNorm2d(4, momentum=momentum), nn_.ReLU(),
                          nn_.Flatten(), nn_.Linear(4 * 5 * 5, 3), nn_.BatchNorm1d(3, momentum=momentum))


@pytest.mark.parametrize("momentum", [0.1, None])
def test_compiled_training_step_updates_batch_norm_statistics(momentum):
    """A gradc.compile'd SGD step of a BatchNorm model equals the eager step, buffers included
    (float32: the compiled program sums the batch statistics in another order, and 1/std amplifies
    those last-bit differences over four momentum steps, hence rtol 1e-4)."""
    torch.manual_seed(0)
    t = _bn_net(torch.nn, momentum)
    models = [_bn_net(nn, momentum) for _ in range(2)]
    for m in models:
        load_from_torch(m, t)
    opts = [gradc.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in models]

    def step(model, opt, x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    eager = lambda x, y: step(models[0], opts[0], x, y)  # noqa: E731
    compiled = gradc.compile(lambda x, y: step(models[1], opts[1], x, y), fullgraph=True)
    for i in range(4):
        x, y = gradc.tensor(randn(6, 2, 5, 5, seed=i).astype(np.float32)), gradc.tensor(randn(6, 3, seed=50 + i)
                                                                                        .astype(np.float32))
        le, lc = eager(x, y), compiled(x, y)
        np.testing.assert_allclose(lc.item(), le.item(), rtol=1e-5)
    assert compiled.trace_count <= 2  # the first step creates .grad and the momentum buffers: one retrace
    se, sc = models[0].state_dict(), models[1].state_dict()
    assert int(sc["1.num_batches_tracked"].item()) == 4 and int(sc["5.num_batches_tracked"].item()) == 4
    for k in se:
        np.testing.assert_allclose(sc[k].numpy(), se[k].numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
    assert not np.allclose(sc["1.running_var"].numpy(), 1.0)
    for m in models:
        m.eval()
    x = gradc.tensor(randn(6, 2, 5, 5, seed=7).astype(np.float32))
    with gradc.no_grad():
        np.testing.assert_allclose(gradc.compile(models[1])(x).numpy(), models[0](x).numpy(), rtol=1e-5, atol=1e-6)


def test_group_instance_and_rms_norm():
    x = randn(3, 6, 4, 5)
    g, t = pair(nn.GroupNorm, torch.nn.GroupNorm, 3, 6)
    with torch.no_grad():
        t.weight.uniform_(0.5, 1.5), t.bias.uniform_(-1, 1)
    check_module(torch, g, t, [x])
    check_module(torch, *pair(nn.GroupNorm, torch.nn.GroupNorm, 2, 6, affine=False, eps=1e-3), [x])
    check_module(torch, *pair(nn.InstanceNorm2d, torch.nn.InstanceNorm2d, 6, affine=True), [x])
    g, t = pair(nn.InstanceNorm1d, torch.nn.InstanceNorm1d, 6, track_running_stats=True)
    check_module(torch, g, t, [randn(3, 6, 7)], compiled=False)  # one update each
    _same_buffers(g, t)
    g, t = pair(nn.RMSNorm, torch.nn.RMSNorm, (4, 5))
    with torch.no_grad():
        t.weight.uniform_(0.5, 1.5)
    check_module(torch, g, t, [x])
    check_module(torch, *pair(nn.RMSNorm, torch.nn.RMSNorm, 5, eps=1e-3, elementwise_affine=False), [x])
    # eps=None is the dtype's machine epsilon: visible on an all-zero-but-tiny input
    tiny = np.full((1, 4), 1e-9, dtype=np.float32)
    np.testing.assert_allclose(nn.RMSNorm(4)(gradc.tensor(tiny)).detach().numpy(),
                               torch.nn.RMSNorm(4)(torch.tensor(tiny)).detach().numpy(), rtol=1e-5)
    check_function(torch, lambda x: F.normalize(x, dim=1), lambda x: TF.normalize(x, dim=1), [x])
    with pytest.raises(ShapeError, match="not divisible into 4 groups"):
        F.group_norm(gradc.zeros(2, 6, 3), 4)
