"""Batched matmuls as one cuBLAS strided-batched call (gradc/runtime/cuda_blas.py): the call's
arguments, run through a NumPy model of cublasGemmStridedBatchedEx (column-major matrices read
from flat memory through leading dimensions and batch strides), give a @ b for every layout the
plan accepts, with transposed operands as flags instead of copies."""
import numpy as np
import pytest

from gradc.runtime import cuda_blas


def _flat(x):
    """The memory an operand's pointer reaches, from its data pointer on (as cuBLAS sees it)."""
    base = x
    while base.base is not None:
        base = base.base
    off = (x.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // x.itemsize
    return base.reshape(-1)[off:]


def _gemm_strided_batched(p, A, B):
    """cuBLAS's C[b] = op(A[b]) @ op(B[b]) on column-major matrices (A: first operand's memory)."""
    m, n, k = p["m"], p["n"], p["k"]
    C = np.zeros(p["strideC"] * (p["batch"] - 1) + p["ldc"] * n, dtype=A.dtype)

    def mat(mem, off, rows, cols, ld, trans):
        r, c = (cols, rows) if trans else (rows, cols)
        full = np.array([[mem[off + j * ld + i] for j in range(c)] for i in range(r)])
        return full.T if trans else full
    for b in range(p["batch"]):
        a = mat(A, b * p["strideA"], m, k, p["lda"], p["transa"])
        bb = mat(B, b * p["strideB"], k, n, p["ldb"], p["transb"])
        c = a @ bb
        for j in range(n):
            for i in range(m):
                C[b * p["strideC"] + j * p["ldc"] + i] = c[i, j]
    return C


def _check(a, b):
    p = cuda_blas.plan(a.shape, a.strides, b.shape, b.strides, a.itemsize)
    assert p is not None
    C = _gemm_strided_batched(p, _flat(b), _flat(a))   # first operand: b's memory (C^T = B^T A^T)
    np.testing.assert_allclose(C[:int(np.prod(p["out_shape"]))].reshape(p["out_shape"]), a @ b, rtol=1e-5)
    return p


rng = np.random.default_rng(0)


def _r(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_contiguous_batches():
    p = _check(_r(3, 4, 5), _r(3, 5, 2))
    assert (p["transa"], p["transb"]) == (0, 0)


def test_transposed_operand_is_a_flag_not_a_copy():
    q, k = _r(2, 3, 4, 8), _r(2, 3, 6, 8)
    p = _check(q, k.transpose(0, 1, 3, 2))      # attention scores: q @ k^T
    assert p["transa"] == 1 and p["transb"] == 0
    g, v = _r(2, 3, 4, 6), _r(2, 3, 6, 8)
    p = _check(g.transpose(0, 1, 3, 2), _r(2, 3, 4, 8))   # a gradient: g^T @ x
    assert p["transb"] == 1
    assert _check(g, v)["strideC"] == 4 * 8


def test_broadcast_batch_has_stride_zero():
    p = _check(_r(4, 3, 5), _r(5, 2))
    assert p["strideA"] == 0 and p["batch"] == 4
    p = _check(_r(1, 3, 5), _r(4, 5, 2))
    assert p["strideB"] == 0


def test_a_view_with_a_row_pitch_keeps_its_leading_dimension():
    big = _r(3, 4, 9)
    p = _check(big[:, :, :5], _r(3, 5, 2))   # rows 9 apart: ld 9
    assert p["ldb"] == 9


@pytest.mark.parametrize("layout", ["non-uniform batch", "rank 2", "both strides > 1"])
def test_layouts_cublas_cannot_take_are_left_to_the_op_kernel(layout):
    if layout == "non-uniform batch":   # heads split out of (B, T, H, D): batch dims B, H do not step uniformly
        x = _r(2, 4, 3, 8).transpose(0, 2, 1, 3)
        assert cuda_blas.plan(x.shape, x.strides, (2, 3, 8, 5), (480, 160, 20, 4), 4) is None
    elif layout == "rank 2":
        assert cuda_blas.plan((3, 4), (16, 4), (4, 2), (8, 4), 4) is None
    else:
        x = _r(2, 6, 8)[:, ::2, ::2]
        assert cuda_blas.plan(x.shape, x.strides, (2, 4, 5), (80, 20, 4), 4) is None


def test_without_cublas_the_op_kernel_runs():
    a, b = _r(2, 3, 4), _r(2, 4, 5)
    np.testing.assert_allclose(cuda_blas.matmul(np, a, b), a @ b, rtol=1e-6)
    out = np.empty((2, 3, 5), dtype=np.float32)
    assert cuda_blas.matmul(np, a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-6)
