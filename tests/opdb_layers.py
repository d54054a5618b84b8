"""Op-database rows for the sliding-window primitives (im2col, col2im) and the vision layers built
on them (convolutions 1-3-D and transposed, max/avg pooling 2-3-D, max_unpool): registered into
opdb.ROWS, so gradcheck, eager vs compiled, PyTorch parity and the CUDA host check iterate them."""
import itertools

import numpy as np

import gradc.nn.functional as F
from gradc.ops.movement import col2im, im2col, window_matmul
from opdb import S, _tF, distinct, op, randn


def _outs(spatial, kernel, stride, dilation, pads):
    return tuple((n + lo + hi - d * (k - 1) - 1) // s + 1
                 for n, k, s, d, (lo, hi) in zip(spatial, kernel, stride, dilation, pads))


def _im2col_ref(x, axis, kernel, stride, dilation, pads, value):
    """Window by window, element by element: out[..., o, j, ...] = padded[o * s + j * d]."""
    nd = len(kernel)
    lead, spatial, trail = x.shape[:axis], x.shape[axis:axis + nd], x.shape[axis + nd:]
    outs = _outs(spatial, kernel, stride, dilation, pads)
    out = np.empty(lead + outs + tuple(kernel) + trail)
    for o in itertools.product(*map(range, outs)):
        for j in itertools.product(*map(range, kernel)):
            src = [oo * s + jj * d - lo for oo, jj, s, d, (lo, _) in zip(o, j, stride, dilation, pads)]
            inside = all(0 <= p < n for p, n in zip(src, spatial))
            key = (Ellipsis,) if not lead else (slice(None),) * len(lead)
            dst = (slice(None),) * len(lead) + o + j
            out[dst] = x[(slice(None),) * len(lead) + tuple(src)] if inside else value
    return out


def _col2im_ref(c, axis, size, kernel, stride, dilation, pads):
    nd = len(kernel)
    lead, trail = c.shape[:axis], c.shape[axis + 2 * nd:]
    outs = c.shape[axis:axis + nd]
    out = np.zeros(lead + tuple(size) + trail)
    for o in itertools.product(*map(range, outs)):
        for j in itertools.product(*map(range, kernel)):
            dst = [oo * s + jj * d - lo for oo, jj, s, d, (lo, _) in zip(o, j, stride, dilation, pads)]
            if all(0 <= p < n for p, n in zip(dst, size)):
                out[(slice(None),) * len(lead) + tuple(dst)] += c[(slice(None),) * len(lead) + o + j]
    return out


_WINDOWS = [  # (shape, axis, kernel, stride, dilation, pads)
    ((2, 5, 6, 3), 1, (3, 2), (2, 1), (1, 2), ((1, 1), (0, 1))),
    ((2, 3, 7), 2, (3,), (2,), (1,), ((1, 2),)),
    ((1, 4, 3, 4, 2), 1, (2, 2, 3), (1, 2, 1), (1, 1, 1), ((0, 0), (1, 0), (1, 1))),
    ((2, 7, 3), 1, (2,), (2,), (1,), ((0, -1),)),
    ((2, 4, 6, 3), 1, (2, 2), (2, 2), (1, 1), ((0, 0), (0, -1))),   # windows that tile, a tail left unread
]


def _im2col_samples(rng):
    return [S(randn(rng, shape), axis=a, kernel=k, stride=s, dilation=d, pads=p, value=v)
            for (shape, a, k, s, d, p), v in zip(_WINDOWS, (0.0, -1.5, 0.0, 0.0, -2.0))]


def _col2im_samples(rng):
    out = []
    for shape, a, k, s, d, p in _WINDOWS:
        nd = len(k)
        spatial = shape[a:a + nd]
        cols = shape[:a] + _outs(spatial, k, s, d, p) + k + shape[a + nd:]
        out.append(S(randn(rng, cols), axis=a, size=spatial, kernel=k, stride=s, dilation=d, pads=p))
    return out


op("im2col", lambda x, **k: im2col(x, **k), _im2col_samples, ref=_im2col_ref)
op("col2im", lambda x, **k: col2im(x, k.pop("axis"), k.pop("size"), **k), _col2im_samples, ref=_col2im_ref)


def _window_matmul_ref(c, w):
    """Every output element as its own sum over the window and channels."""
    r = w.ndim - 1
    lead = c.shape[:c.ndim - r]
    out = np.empty(lead + (w.shape[0],))
    for i in itertools.product(*map(range, lead)):
        for o in range(w.shape[0]):
            out[i + (o,)] = (c[i] * w[o]).sum()
    return out


def _window_matmul_samples(rng):
    return [S(randn(rng, (2, 3, 2, 3, 2, 4)), randn(rng, (5, 3, 2, 4))),   # conv2d columns (N, oh, ow, kh, kw, C)
            S(randn(rng, (3, 4, 2, 3)), randn(rng, (2, 2, 3))),            # conv1d
            S(randn(rng, (4, 3)), randn(rng, (2, 3)))]                     # a 1x1 window: a plain product


op("window_matmul", window_matmul, _window_matmul_samples, ref=_window_matmul_ref)
# the weight's gradient alone (a first convolution's) is summed per leading index: its own path
op("window_matmul_weight", window_matmul, _window_matmul_samples, ref=_window_matmul_ref, grad_args=(1,))


def _tf(name):
    return lambda *a, **k: getattr(_tF(), name)(*a, **k)


def _f(name):
    return lambda *a, **k: getattr(F, name)(*a, **k)


def _conv_samples(rng):
    return [S(randn(rng, (2, 4, 6, 5)), randn(rng, (6, 2, 3, 2)), randn(rng, (6,)), stride=(2, 1), padding=1,
              dilation=(1, 2), groups=2),
            S(randn(rng, (1, 3, 5, 5)), randn(rng, (4, 3, 3, 3)), randn(rng, (4,)), padding="same"),
            S(randn(rng, (2, 3, 5, 4)), randn(rng, (3, 1, 2, 2)), randn(rng, (3,)), groups=3)]


def _conv3d_samples(rng):
    return [S(randn(rng, (2, 2, 4, 5, 4)), randn(rng, (3, 2, 2, 3, 2)), randn(rng, (3,)), stride=(1, 2, 1),
              padding=(1, 0, 1)),
            S(randn(rng, (1, 4, 3, 4, 4)), randn(rng, (2, 2, 1, 2, 2)), randn(rng, (2,)), dilation=(1, 2, 1),
              groups=2)]


def _conv_t_samples(rng):
    return [S(randn(rng, (2, 4, 3, 4)), randn(rng, (4, 3, 3, 2)), randn(rng, (6,)), stride=2, padding=(1, 0),
              output_padding=(1, 0), groups=2),
            S(randn(rng, (1, 2, 4, 3)), randn(rng, (2, 3, 2, 3)), randn(rng, (3,)), stride=(1, 2), dilation=(2, 1),
              padding=(0, 2), output_padding=(1, 1))]


def _conv_t3d_samples(rng):
    return [S(randn(rng, (1, 2, 3, 2, 3)), randn(rng, (2, 3, 2, 2, 2)), randn(rng, (3,)), stride=(2, 1, 2),
              padding=(0, 1, 1), output_padding=(1, 0, 0))]


op("conv2d", _f("conv2d"), _conv_samples, torch_fn=_tf("conv2d"))
op("conv3d", _f("conv3d"), _conv3d_samples, torch_fn=_tf("conv3d"))
op("conv_transpose2d", _f("conv_transpose2d"), _conv_t_samples, torch_fn=_tf("conv_transpose2d"))
op("conv_transpose3d", _f("conv_transpose3d"), _conv_t3d_samples, torch_fn=_tf("conv_transpose3d"))


def _pool2d_samples(rng):
    return [S(distinct(rng, (2, 3, 6, 7)), kernel_size=3, stride=2, padding=1),
            S(distinct(rng, (1, 2, 5, 5)), kernel_size=2, ceil_mode=True),
            S(distinct(rng, (2, 2, 7, 6)), kernel_size=(3, 2), stride=(2, 1), dilation=(2, 1))]


def _pool3d_samples(rng):
    return [S(distinct(rng, (1, 2, 4, 5, 4)), kernel_size=2, stride=(2, 1, 2), padding=(1, 0, 0)),
            S(distinct(rng, (2, 1, 5, 3, 4)), kernel_size=(3, 2, 2), stride=2, ceil_mode=True)]


def _avg3d_samples(rng):
    return [S(randn(rng, (1, 2, 4, 5, 4)), kernel_size=2, stride=(2, 1, 2), padding=(1, 0, 0)),
            S(randn(rng, (2, 1, 5, 3, 4)), kernel_size=(3, 2, 2), stride=2, padding=1, ceil_mode=True,
              count_include_pad=False)]


op("max_pool2d", _f("max_pool2d"), _pool2d_samples, torch_fn=_tf("max_pool2d"))
op("max_pool3d", _f("max_pool3d"), _pool3d_samples, torch_fn=_tf("max_pool3d"))
op("avg_pool3d", _f("avg_pool3d"), _avg3d_samples, torch_fn=_tf("avg_pool3d"))


def _pool_indices(x, k):
    """max_pool2d's flat indices for non-overlapping k x k windows of x (N, C, H, W)."""
    n, c, h, w = x.shape
    oh, ow = h // k, w // k
    blocks = x[:, :, :oh * k, :ow * k].reshape(n, c, oh, k, ow, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, oh, ow, -1)
    j = blocks.argmax(-1)
    rows = np.arange(oh)[:, None] * k + j // k
    cols = np.arange(ow)[None, :] * k + j % k
    return blocks.max(-1), (rows * w + cols).astype(np.int64)


def _unpool_samples(rng):
    v, i = _pool_indices(distinct(rng, (2, 3, 4, 6)), 2)
    v2, i2 = _pool_indices(distinct(rng, (1, 2, 5, 5)), 2)
    return [S(v, i, kernel_size=2), S(v2, i2, kernel_size=2, output_size=(5, 5))]


op("max_unpool2d", _f("max_unpool2d"), _unpool_samples, torch_fn=_tf("max_unpool2d"), grad_args=(0,))
