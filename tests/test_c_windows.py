"""col2im as a C kernel of its own on the C backend (gradc.codegen.c_windows): the same bits as
the NumPy kernel for every stride, dilation, padding and tiling, from window-position-major
columns and from the window-offset-major memory of a convolution's column gradient."""
import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc.ops.movement import col2im


def _c_works():
    try:
        gradc.compile(lambda x: x * 2.0, backend="c")(gradc.ones(2, 2))
        return True
    except gradc.GradcError:
        return False


pytestmark = pytest.mark.skipif(not _c_works(), reason="no working C compiler for backend='c'")


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))


def _programs(fn):
    progs = [p for v in fn._programs.values() if isinstance(v, list) for p in v]
    return progs + [p.backward[0] for p in progs if getattr(p, "backward", None)]   # a forward's own backward


def _c_kernel_ops(fn):
    return [k["ops"] for p in _programs(fn) for k in p.stats.get("c_kernels", {}).values()]


def _outs(size, k, s, d, p):
    return (size + p[0] + p[1] - d * (k - 1) - 1) // s + 1


@pytest.mark.parametrize("kernel,stride,dilation,pads", [
    ((3, 3), (1, 1), (1, 1), ((0, 0), (0, 0))),
    ((3, 2), (2, 1), (1, 2), ((1, 1), (0, 2))),
    ((2, 2), (2, 2), (1, 1), ((0, 0), (0, 0))),      # windows that tile: copies
    ((2, 2), (2, 2), (1, 1), ((0, -1), (0, 0))),     # tiles with a tail row left at zero
    ((3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_col2im_equals_eager_bit_for_bit(kernel, stride, dilation, pads, dtype):
    h, w = 7, 6
    oh = _outs(h, kernel[0], stride[0], dilation[0], pads[0])
    ow = _outs(w, kernel[1], stride[1], dilation[1], pads[1])
    cols = np.random.default_rng(1).standard_normal((3, oh, ow) + kernel + (5,)).astype(dtype)
    cols[0, 0, 0] = -0.0

    def fn(x):
        return col2im(x * 1.0, 1, (h, w), kernel, stride, dilation, pads)

    want = fn(gradc.tensor(cols)).numpy()
    compiled = gradc.compile(fn, backend="c")
    got = compiled(gradc.tensor(cols)).numpy()
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))
    assert "col2im" in _c_kernel_ops(compiled)


@pytest.mark.parametrize("wide", [True, False])
def test_convolution_input_gradient_equals_eager(monkeypatch, wide):
    # wide: the column gradient is one GEMM writing window-position-major columns; without it, K
    # narrow products write window-offset-major memory, which the col2im kernel reads as it lies
    from gradc.codegen import c_backend
    if not wide:
        monkeypatch.setattr(c_backend, "wide_column_gradient", lambda *args: None)
    gradc.manual_seed(0)
    conv = gradc.nn.Conv2d(4, 6, 3, padding=1)
    x = np.random.default_rng(2).standard_normal((2, 4, 8, 9)).astype(np.float32)

    def fwd(x):
        return F.relu(conv(x))

    def grad(f):
        xt = gradc.tensor(x, requires_grad=True)
        (f(xt) * 1.5).sum().backward()
        return xt.grad.numpy()

    want = grad(fwd)
    compiled = gradc.compile(fwd, backend="c")
    got = grad(compiled)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert "col2im" in _c_kernel_ops(compiled)
    sources = [p.own_source.get("program.c", "") for p in _programs(compiled)]
    assert any(("position-major" if wide else "offset-major") + " columns" in src for src in sources)


@pytest.mark.parametrize("kernel,stride,dilation,pads,value", [
    ((3, 3), (1, 1), (1, 1), ((0, 0), (0, 0)), 0.0),
    ((3, 2), (2, 1), (1, 2), ((1, 1), (0, 2)), 0.0),
    ((2, 2), (2, 2), (1, 1), ((0, 1), (1, 0)), float("-inf")),   # a max pool's windows, padded with -inf
    ((3, 3), (2, 2), (1, 1), ((1, 1), (1, 1)), float("nan")),
])
@pytest.mark.parametrize("layout", ["contiguous", "channels_first_view"])
def test_im2col_equals_eager_bit_for_bit(kernel, stride, dilation, pads, value, layout):
    from gradc.ops.movement import im2col
    x = np.random.default_rng(4).standard_normal((3, 7, 6, 8)).astype(np.float32)
    x[0, 0, 0, 0] = -0.0

    if layout == "channels_first_view":   # (N, C, H, W) memory (the program's input) viewed channels-last
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def fn(t):
        if layout == "channels_first_view":
            t = t.permute(0, 2, 3, 1)
        return im2col(t, 1, kernel, stride, dilation, pads, value)

    want = fn(gradc.tensor(x)).numpy()
    compiled = gradc.compile(fn, backend="c")
    got = compiled(gradc.tensor(x)).numpy()
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))
    overlapping = kernel[0] * kernel[1] > stride[0] * stride[1]
    assert ("im2col" in _c_kernel_ops(compiled)) == (layout == "contiguous" or overlapping)
