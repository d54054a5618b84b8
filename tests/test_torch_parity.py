"""Forward values, output dtypes and gradients of every op-database row with a torch equivalent
equal PyTorch's, in float64 and float32; and the dtype promotion table equals torch.result_type."""
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gradc  # noqa: E402
from gradc.testing import assert_close  # noqa: E402

from opdb import case_id, cases  # noqa: E402

TORCH_CASES = cases(predicate=lambda row, s: row.torch_fn is not None)
GRAD_TOL = {"float32": (1e-4, 1e-5), "float64": (1e-9, 1e-11)}


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _torch_dtype_name(t):
    return str(t.dtype).replace("torch.", "")


@pytest.mark.parametrize("case", TORCH_CASES, ids=case_id)
def test_matches_torch(case):
    row, _, sample, dtype = case
    diff = row.diff_args(sample) if sample.torch_grad else ()
    g_in = sample.tensors(dtype, requires_grad=diff)
    t_in = sample.torch_tensors(dtype, requires_grad=diff)
    g_out = _as_tuple(row.fn(*g_in, **sample.kwargs))
    t_out = _as_tuple(row.torch_fn(*t_in, **sample.kwargs))
    assert len(g_out) == len(t_out)
    rtol, atol = row.tolerance(dtype, torch=True)
    for k, (g, t) in enumerate(zip(g_out, t_out)):
        assert g.dtype.name == _torch_dtype_name(t), f"output {k}: gradc {g.dtype!r}, torch {t.dtype}"
        assert_close(g, t.detach().numpy(), rtol=rtol, atol=atol, msg=f"output {k}")
    if not diff:
        return
    # Project the floating outputs on fixed random directions and compare the input gradients.
    rng = np.random.default_rng(0)
    g_total, t_total = 0, 0
    for g, t in zip(g_out, t_out):
        if not t.dtype.is_floating_point:
            continue
        v = rng.standard_normal(tuple(t.shape)).astype(dtype)
        if g.requires_grad:
            g_total = g_total + (g * gradc.tensor(v)).sum()
        if t.requires_grad:
            t_total = t_total + (t * torch.tensor(v)).sum()
    if isinstance(g_total, gradc.Tensor):
        g_total.backward()
    t_grads = torch.autograd.grad(t_total, [t_in[i] for i in diff], allow_unused=True) \
        if isinstance(t_total, torch.Tensor) else [None] * len(diff)
    rtol, atol = GRAD_TOL[dtype]
    for i, tg in zip(diff, t_grads):
        gg = g_in[i].grad
        expected = np.zeros(sample.args[i].shape, dtype) if tg is None else tg.numpy()
        actual = np.zeros(sample.args[i].shape, dtype) if gg is None else gg
        assert_close(actual, expected, rtol=rtol, atol=atol, msg=f"gradient of input {i}")


# ---------------------------------------------------------------------------- promotion table
DTYPES = ["bool", "int64", "float16", "float32", "float64"]
_VALUES = {"bool": [True, True], "int64": [1, 2], "float16": [1.0, 2.0], "float32": [1.0, 2.0],
           "float64": [1.0, 2.0]}


def _pair(da, db, ndim_a, ndim_b):
    a, b = _VALUES[da], _VALUES[db]
    a, b = (a if ndim_a else a[0]), (b if ndim_b else b[0])
    return ((gradc.tensor(a, dtype=getattr(gradc, da)), gradc.tensor(b, dtype=getattr(gradc, db))),
            (torch.tensor(a, dtype=getattr(torch, da)), torch.tensor(b, dtype=getattr(torch, db))))


@pytest.mark.parametrize("da, db", list(itertools.product(DTYPES, DTYPES)))
@pytest.mark.parametrize("ndims", [(1, 1), (1, 0), (0, 1), (0, 0)], ids=["1d-1d", "1d-0d", "0d-1d", "0d-0d"])
def test_tensor_promotion_matches_torch(da, db, ndims):
    (ga, gb), (ta, tb) = _pair(da, db, *ndims)
    expected = str(torch.result_type(ta, tb)).replace("torch.", "")
    assert (ga * gb).dtype.name == expected
    assert (ga < gb).dtype is gradc.bool
    if expected != "bool":
        assert (ga + gb).dtype.name == expected
        assert (ga / gb).dtype.name == _torch_dtype_name(ta / tb)


@pytest.mark.parametrize("da", DTYPES)
@pytest.mark.parametrize("scalar", [True, 3, 2.5], ids=["bool", "int", "float"])
def test_scalar_promotion_matches_torch(da, scalar):
    ga = gradc.tensor(_VALUES[da], dtype=getattr(gradc, da))
    ta = torch.tensor(_VALUES[da], dtype=getattr(torch, da))
    assert (ga * scalar).dtype.name == _torch_dtype_name(ta * scalar)
    assert (scalar * ga).dtype.name == _torch_dtype_name(scalar * ta)
    assert (ga / scalar).dtype.name == _torch_dtype_name(ta / scalar)
    if da != "bool" or not isinstance(scalar, bool):
        assert (ga + scalar).dtype.name == _torch_dtype_name(ta + scalar)
