"""PyTorch's remaining spellings (gradc.tensor_aliases), each against PyTorch: dtype queries,
comparison and clamp names, conjugate transposes of real tensors, copysign, aminmax, diagflat,
histogram, trapezoid, the *_scatter functions."""
import numpy as np
import pytest

import gradc

torch = pytest.importorskip("torch")
_R = np.random.default_rng(0)
A, B = _R.standard_normal((3, 4)).astype(np.float32), _R.standard_normal((3, 4)).astype(np.float32)

CASES = {
    "result_type": lambda T, a, b: (T.result_type(a, 2.5), T.result_type(a.long(), 2), T.result_type(a.long(), 2.0),
                                    T.result_type(a, a.double())),
    "promote_types": lambda T, a, b: (T.promote_types(T.int32, T.float32), T.promote_types(T.bool, T.int64)),
    "can_cast": lambda T, a, b: (T.can_cast(T.float32, T.int64), T.can_cast(T.int64, T.float32), T.can_cast(T.bool, T.int32)),
    "comparison names": lambda T, a, b: (T.not_equal(a, b), T.greater(a, b), T.less_equal(a, b), a.greater_equal(b)),
    "copysign": lambda T, a, b: (T.copysign(a, b), T.copysign(a, -0.0), T.copysign(a, 1),
                                 T.copysign(T.tensor([1, -2]), T.tensor([-0.0, 3.0]))),
    "aminmax": lambda T, a, b: (*T.aminmax(a), *T.aminmax(a, dim=1), *T.aminmax(a, dim=0, keepdim=True)),
    "diagflat": lambda T, a, b: (T.diagflat(a[0]), T.diagflat(a[:2, :2], 1), T.diagflat(a[0], -2)),
    "histogram": lambda T, a, b: (*T.histogram(a.reshape(-1), 5), *T.histogram(a, 4, range=(-1.0, 1.0), density=True),
                                  *T.histogram(a, 3, weight=b.abs())),
    "split_with_sizes": lambda T, a, b: a.split_with_sizes([1, 3], 1),
    "conjugate transposes": lambda T, a, b: (a.H, a[None].mH, a.adjoint()),
    "in-place spellings": lambda T, a, b: (a.clone().floor_divide_(0.3), T.tensor([float("nan"), float("inf"), 1.0]).nan_to_num_(),
                                           a.clone().clip_(-0.5, 0.5)),
    "trapezoid": lambda T, a, b: (T.trapezoid(a), T.trapezoid(a, dx=0.5, dim=0), T.trapezoid(a, T.arange(4.0) ** 2),
                                  T.cumulative_trapezoid(a), T.cumulative_trapezoid(a, T.arange(4.0) * 0.5)),
    "scatters": lambda T, a, b: (T.select_scatter(a, b[:, 0], 1, 2), T.slice_scatter(a, b[:, :2], 1, 1, 3),
                                 T.diagonal_scatter(a, b[0, :3]), T.diagonal_scatter(a, b[0, :3], 1),
                                 T.diagonal_scatter(a, b[0, :2], -1)),
    "others": lambda T, a, b: (T.positive(a), T.isreal(a), T.narrow_copy(a, 1, 1, 2), T.chain_matmul(a, b.t(), a)),
}


def _plain(v):
    return v.numpy() if hasattr(v, "numpy") else str(v).split(".")[-1]


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_pytorch(case):
    ours = [_plain(v) for v in CASES[case](gradc, gradc.tensor(A), gradc.tensor(B))]
    theirs = [_plain(v) for v in CASES[case](torch, torch.tensor(A), torch.tensor(B))]
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        if isinstance(t, str):
            assert o == t
        else:
            assert o.shape == t.shape and o.dtype == t.dtype
            np.testing.assert_allclose(o, t, rtol=1e-5, atol=1e-6)


def test_scatter_functions_differentiate():
    x = gradc.tensor(A.astype(np.float64), requires_grad=True)
    src = gradc.tensor(B[0, :3].astype(np.float64), requires_grad=True)
    assert gradc.testing.gradcheck(lambda x, s: gradc.diagonal_scatter(x, s, 1) * 2, (x, src))
    assert gradc.dtypes.float32.is_signed and not gradc.bool.is_signed and not gradc.float32.is_complex
