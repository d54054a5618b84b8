"""3-D convolution and pooling modules and max unpooling against PyTorch (float64): state-dict
names and shapes, PyTorch's default initialisation ranges, outputs and gradients of inputs and
parameters, eagerly and compiled; bad input gets a named error."""
import math

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import ShapeError, nn
from nn_parity import check_function, check_module

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def distinct(*shape, seed=0):
    n = math.prod(shape)
    return ((np.random.default_rng(seed).permutation(n) - n / 2) * 0.25).reshape(shape)


CONV3D = [dict(), dict(stride=(1, 2, 1), padding=1, dilation=(2, 1, 1)), dict(groups=2, padding="same", bias=False),
          dict(padding=1, padding_mode="replicate")]


@pytest.mark.parametrize("cfg", CONV3D, ids=[str(c) for c in CONV3D])
def test_conv3d_matches_torch(cfg):
    g, t = nn.Conv3d(4, 6, 3, **cfg).double(), torch.nn.Conv3d(4, 6, 3, **cfg).double()
    assert [(k, v.shape) for k, v in g.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in t.state_dict().items()]
    check_module(torch, g, t, [randn(2, 4, 5, 6, 5)], compiled=cfg == CONV3D[1])


@pytest.mark.parametrize("cfg", [dict(), dict(stride=2, padding=1, output_padding=(1, 0, 1), groups=2)])
def test_conv_transpose3d_matches_torch(cfg):
    g, t = nn.ConvTranspose3d(4, 6, (2, 3, 2), **cfg).double(), torch.nn.ConvTranspose3d(4, 6, (2, 3, 2), **cfg).double()
    check_module(torch, g, t, [randn(2, 4, 3, 4, 3)], compiled=bool(cfg))
    if cfg:
        x = randn(1, 4, 3, 4, 3)
        np.testing.assert_allclose(g(gradc.tensor(x), output_size=(5, 8, 5)).detach().numpy(),
                                   t(torch.tensor(x), output_size=(5, 8, 5)).detach().numpy(), rtol=1e-10)


def test_conv3d_default_init_bounds():
    g = nn.Conv3d(3, 5, (2, 3, 3))
    bound = 1 / math.sqrt(3 * 2 * 3 * 3)
    w, b = g.weight.detach().numpy(), g.bias.detach().numpy()
    assert w.shape == (5, 3, 2, 3, 3) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound and w.std() > bound / 4


POOL3D = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(2, 3, 2), stride=(1, 2, 2),
                                                                               dilation=(2, 1, 1), ceil_mode=True)]


@pytest.mark.parametrize("cfg", POOL3D, ids=[str(c) for c in POOL3D])
def test_max_pool3d_matches_torch(cfg):
    check_module(torch, nn.MaxPool3d(**cfg), torch.nn.MaxPool3d(**cfg), [distinct(2, 3, 5, 7, 6)],
                 compiled=cfg is POOL3D[1])
    x = distinct(2, 3, 5, 7, 6)
    gv, gi = F.max_pool3d(gradc.tensor(x), return_indices=True, **cfg)
    tv, ti = TF.max_pool3d(torch.tensor(x), return_indices=True, **cfg)
    np.testing.assert_array_equal(gi.numpy(), ti.numpy())


@pytest.mark.parametrize("cfg", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                                 dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
                                 dict(kernel_size=2, divisor_override=3)])
def test_avg_pool3d_matches_torch(cfg):
    check_module(torch, nn.AvgPool3d(**cfg), torch.nn.AvgPool3d(**cfg), [randn(2, 3, 5, 6, 7)],
                 compiled=cfg.get("ceil_mode", False))
    check_function(torch, lambda x: F.avg_pool3d(x, **cfg), lambda x: TF.avg_pool3d(x, **cfg), [randn(3, 4, 5, 6)],
                   compiled=False)   # unbatched


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_unpool_inverts_max_pool_as_torch(nd):
    shape = (2, 3) + (6, 5, 4)[:nd]
    x = distinct(*shape)
    pool, unpool = (f"max_pool{nd}d", f"max_unpool{nd}d")
    tv, ti = getattr(TF, pool)(torch.tensor(x), 2, return_indices=True)
    gv, gi = getattr(F, pool)(gradc.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(gi.numpy(), ti.numpy())
    size = shape[2:]
    check_function(torch, lambda v: getattr(F, unpool)(v, gi, 2, output_size=size),
                   lambda v: getattr(TF, unpool)(v, ti, 2, output_size=size), [tv.numpy()])
    g_mod, t_mod = getattr(nn, f"MaxUnpool{nd}d")(2), getattr(torch.nn, f"MaxUnpool{nd}d")(2)
    np.testing.assert_allclose(g_mod(gv, gi, size).numpy(), t_mod(tv, ti, size).numpy())
    assert repr(g_mod) == repr(t_mod)


def test_max_unpool_errors_are_named():
    v, i = F.max_pool2d(gradc.tensor(distinct(1, 2, 4, 4)), 2, return_indices=True)
    with pytest.raises(ShapeError, match="output_size .* out of range: dim 0 must lie strictly between 2 and 6"):
        F.max_unpool2d(v, i, 2, output_size=(7, 4))
    for unpool in (F.max_unpool2d, gradc.compile(F.max_unpool2d)):   # the same message compiled
        with pytest.raises(gradc.OutOfRangeError, match=r"max_unpool2d: indices into output planes of \(3, 3\) = 9 "
                                                        r"elements .*output_size\): index \d+ is out of range for a "
                                                        r"dimension of size 9"):
            unpool(v, i, 2, output_size=(3, 3))  # PyTorch: "Found an invalid max index"
    with pytest.raises(ShapeError, match="indices must be a tensor of the input's shape"):
        F.max_unpool2d(v, i[:, :1], 2)
    with pytest.raises(ShapeError, match="larger than the padded input"):
        F.max_pool3d(gradc.tensor(randn(1, 1, 2, 5, 5)), 3)
    with pytest.raises(ShapeError, match=r"conv3d: the input has 3 channels .* expects 4"):
        F.conv3d(gradc.tensor(randn(1, 3, 4, 4, 4)), gradc.tensor(randn(2, 4, 2, 2, 2)))
