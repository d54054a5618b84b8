"""Batched matmuls of CUDA programs as one cuBLAS strided-batched call, transposes as flags.

CuPy's matmul copies any operand of rank > 2 that is not C-contiguous (`ascontiguousarray`, then
gemmStridedBatchedEx with no transposes): attention's q @ k.transpose(-2, -1), and the backward's
products with transposed operands, would each copy a whole operand first. Here an operand whose
matrices are row-major (unit column stride) or column-major (unit row stride) with a leading
dimension at least their extent, and whose batch dimensions step by one stride (0 when
broadcast), goes to cuBLAS as it is: C = A @ B row-major is C^T = B^T A^T column-major, so the
call is gemm(op(B), op(A)) with op = N for a row-major operand and T for a column-major one.
Anything else (rank 2, integer data, a stride pattern cuBLAS cannot take, no cuBLAS: the host
check's NumPy) goes through the op table's matmul kernel."""
from ..ops import OPS

_DTYPES = {"float32": (0, 0), "float64": (1, 1), "float16": (2, 68)}   # cudaDataType, compute type


def _matrix(shape, strides):
    """(op, ld) of a row-major ("N") or column-major ("T") matrix, in elements; None otherwise."""
    rows, cols = shape
    sr, sc = strides
    if (sc == 1 or cols == 1) and sr >= max(cols, 1) and sr > 0:
        return "N", sr
    if (sr == 1 or rows == 1) and sc >= max(rows, 1) and sc > 0:
        return "T", sc
    if rows == 1 and cols == 1:
        return "N", 1
    return None


def _batch_stride(batch, shape, strides):
    """The one stride (in elements) of an operand's matrices over the output's batch dims, or
    None when they do not step uniformly. `shape`/`strides` are the operand's batch dims."""
    lead = len(batch) - len(shape)
    eff = [0] * lead + [0 if (s == 1 and b != 1) else t for s, b, t in zip(shape, batch[lead:], strides)]
    step, expect = None, None
    for b, t in zip(reversed(batch), reversed(eff)):
        if b == 1:
            continue
        if step is None:
            step, expect = t, t * b
        elif t != expect or (step == 0) != (t == 0):
            return None
        else:
            expect = t * b
    return 0 if step is None else step


def plan(a_shape, a_strides, b_shape, b_strides, itemsize):
    """The arguments of one gemmStridedBatched call computing a @ b into a C-contiguous result (as a
    dict), or None when the operands' layout does not allow it. Strides are in bytes, as NumPy's."""
    if len(a_shape) < 3 and len(b_shape) < 3:
        return None
    if any(s % itemsize for s in tuple(a_strides) + tuple(b_strides)):
        return None
    sa = [s // itemsize for s in a_strides]
    sb = [s // itemsize for s in b_strides]
    M, K = a_shape[-2:]
    N = b_shape[-1]
    nb = max(len(a_shape), len(b_shape)) - 2
    ab, bb = tuple(a_shape[:-2]), tuple(b_shape[:-2])
    batch = tuple(max(x, y) for x, y in zip((1,) * (nb - len(ab)) + ab, (1,) * (nb - len(bb)) + bb))
    count = 1
    for b in batch:
        count *= b
    ma, mb = _matrix((M, K), sa[-2:]), _matrix((K, N), sb[-2:])
    stride_a, stride_b = _batch_stride(batch, ab, sa[:-2]), _batch_stride(batch, bb, sb[:-2])
    if ma is None or mb is None or stride_a is None or stride_b is None or min(M, N, K, count) == 0:
        return None
    # column-major view: C^T (N x M) = op(B)^T-side x op(A): first operand B, second A
    return {"transa": 0 if mb[0] == "N" else 1, "transb": 0 if ma[0] == "N" else 1, "m": N, "n": M, "k": K,
            "lda": mb[1], "strideA": stride_b, "ldb": ma[1], "strideB": stride_a, "ldc": N, "strideC": M * N,
            "batch": count, "out_shape": batch + (M, N)}


def _cublas():
    try:
        from cupy_backends.cuda.libs import cublas
    except ImportError:
        return None
    return cublas


def matmul(cp, a, b, out=None):
    """a @ b on the device; into `out` when it is given (a planned buffer)."""
    p = plan(a.shape, a.strides, b.shape, b.strides, a.itemsize) if a.dtype == b.dtype else None
    cublas = _cublas() if p is not None and str(a.dtype) in _DTYPES and hasattr(cp, "cuda") else None
    if cublas is None:
        return OPS["matmul"].eager(cp, a, b, out=out)
    import numpy as np
    c = out if out is not None and out.flags.c_contiguous and out.dtype == a.dtype else \
        cp.empty(p["out_shape"], dtype=a.dtype)
    dtype, compute = _DTYPES[str(a.dtype)]
    coef = np.float64 if a.dtype == np.float64 else np.float32
    one, zero = np.array(1, dtype=coef), np.array(0, dtype=coef)
    cublas.gemmStridedBatchedEx(cp.cuda.device.get_cublas_handle(), p["transa"], p["transb"], p["m"], p["n"], p["k"],
                                one.ctypes.data, b.data.ptr, dtype, p["lda"], p["strideA"],
                                a.data.ptr, dtype, p["ldb"], p["strideB"], zero.ctypes.data,
                                c.data.ptr, dtype, p["ldc"], p["strideC"], p["batch"], compute, -1)
    if out is not None and c is not out:
        out[...] = c
        return out
    return c
