"""Forward values of every op-database row against its NumPy reference (float32 and float64),
coverage of the primitive table, dtype promotion and broadcasting rules."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import gradc
from gradc import dtypes as D
from gradc import dispatch
from gradc.ops import OPS
from gradc.testing import assert_close

from opdb import REQUIRED_ROWS, ROWS, case_id, cases


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


FORWARD = cases(predicate=lambda row, s: row.ref is not None)


@pytest.mark.parametrize("case", FORWARD, ids=case_id)
def test_forward_matches_numpy(case):
    row, _, sample, dtype = case
    out = _as_tuple(row.fn(*sample.tensors(dtype), **sample.kwargs))
    ref = _as_tuple(row.ref(*sample.ref_arrays(dtype), **sample.kwargs))
    assert len(out) == len(ref), f"{row.name}: {len(out)} outputs, reference has {len(ref)}"
    rtol, atol = row.tolerance(dtype)
    for k, (o, r) in enumerate(zip(out, ref)):
        assert isinstance(o, gradc.Tensor), f"output {k} is {type(o).__name__}, not a Tensor"
        want = D.ALL[row.expected_dtype(sample, dtype, r)]
        assert o.dtype is want, f"output {k}: dtype {o.dtype!r}, expected {want!r}"
        assert not o.requires_grad, "no input requires grad, so no output may"
        assert_close(o, np.asarray(r), rtol=rtol, atol=atol, check_dtype=False, msg=f"output {k}")


def test_database_covers_the_public_ops():
    missing = REQUIRED_ROWS - {r.name for r in ROWS}
    assert not missing, f"op database lacks rows for {sorted(missing)}"
    for row in ROWS:
        samples = row.samples()
        assert samples, f"{row.name} has no samples"
        assert row.ref is not None or row.torch_fn is not None, f"{row.name} has no reference"
    # Samples are deterministic: the compiler tests rebuild them and must see the same data.
    for row in ROWS:
        for a, b in zip(row.samples(), row.samples()):
            assert all(np.array_equal(x, y, equal_nan=np.asarray(x).dtype.kind == "f") for x, y in zip(a.args, b.args)), \
                row.name


def test_every_primitive_is_exercised():
    """Each local primitive of the op table is reached by some row, forward or through its VJP."""
    seen = set()

    class Recording(dispatch.Mode):  # a transform on the dispatch stack that notes every primitive
        order = 0

        def bind(self, prim, args, attrs):
            seen.add(prim.name)
            return self.below.bind(prim, args, attrs)

        def low_dtype(self):
            return None

    mode = Recording()
    dispatch.push(mode)
    try:
        for row in ROWS:
            for s in row.samples():
                diff = row.diff_args(s)
                out = [o for o in _as_tuple(row.fn(*s.tensors("float64", requires_grad=diff), **s.kwargs))
                       if o.requires_grad]
                if out:
                    sum(o.sum() for o in out).backward()
    finally:
        dispatch.pop(mode)
    # Collectives need a process group of several ranks: the distributed tests cover them.
    missing = {name for name, prim in OPS.items() if prim.kind != "collective"} - seen
    assert not missing, f"primitives no row reaches: {sorted(missing)}"


def test_differentiable_rows_record_history():
    for row in ROWS:
        for s in row.samples():
            diff = row.diff_args(s)
            if not diff:
                continue
            out = [o for o in _as_tuple(row.fn(*s.tensors("float64", requires_grad=diff), **s.kwargs))
                   if o.dtype.is_floating_point]
            assert all(o.requires_grad for o in out), f"{row.name} {s.label()}: output lost its history"


# ---------------------------------------------------------------------------- dtype promotion
def t(values, dtype):
    return gradc.tensor(values, dtype=dtype)


@pytest.mark.parametrize("make, expected", [
    (lambda: t([1.0, 2.0], gradc.float32) * 2.5, gradc.float32),
    (lambda: 2.5 * t([1.0, 2.0], gradc.float32), gradc.float32),
    (lambda: t([1.0, 2.0], gradc.float64) + 1, gradc.float64),
    (lambda: t([1.0, 2.0], gradc.float16) * 2.5, gradc.float16),
    (lambda: t([1, 2], gradc.int64) + 2.5, gradc.float32),
    (lambda: t([1, 2], gradc.int64) * 3, gradc.int64),
    (lambda: t([True, False], gradc.bool) + 1, gradc.int64),
    (lambda: t([True, False], gradc.bool) * 1.5, gradc.float32),
    (lambda: t([1, 2], gradc.int64) / t([2, 2], gradc.int64), gradc.float32),
    (lambda: t([1, 2], gradc.int64) / 2, gradc.float32),
    (lambda: 1 / t([1, 2], gradc.int64), gradc.float32),
    (lambda: t([1, 2], gradc.int64) + t([1.0, 2.0], gradc.float32), gradc.float32),
    (lambda: t([1.0], gradc.float32) + t([1.0], gradc.float64), gradc.float64),
    (lambda: t([1.0], gradc.float16) + t([1.0], gradc.float32), gradc.float32),
    (lambda: t([True], gradc.bool) + t([1.0], gradc.float16), gradc.float16),
    (lambda: t([1, 2], gradc.int64).exp(), gradc.float32),
    (lambda: t([1, 2], gradc.int64).sqrt(), gradc.float32),
    (lambda: t([True, False], gradc.bool).sum(), gradc.int64),
    (lambda: t([1, 2], gradc.int64).sum(), gradc.int64),
    (lambda: t([1.0, 2.0], gradc.float16).sum(), gradc.float16),
    (lambda: t([1.0], gradc.float32) < t([2.0], gradc.float64), gradc.bool),
    (lambda: t([1], gradc.int64) == 1.0, gradc.bool),
    (lambda: t([1.0, 2.0], gradc.float32).argmax(), gradc.int64),
    (lambda: gradc.where(t([True], gradc.bool), t([1.0], gradc.float32), 0), gradc.float32),
    (lambda: gradc.where(t([True], gradc.bool), t([1], gradc.int64), 0.5), gradc.float32),
    (lambda: gradc.where(t([True], gradc.bool), t([1], gradc.int64), t([1.0], gradc.float64)), gradc.float64),
    (lambda: gradc.cat([t([1], gradc.int64), t([1.0], gradc.float32)]), gradc.float32),
    (lambda: t([[1, 2]], gradc.int64) @ t([[1], [2]], gradc.int64), gradc.int64),   # (mixed dtypes: refused, as torch)
    # 0-d tensors beside tensors with dims count only when their category is higher (PyTorch's rule).
    (lambda: t([1.0, 2.0], gradc.float32) + t(1.0, gradc.float64), gradc.float32),
    (lambda: t([1.0, 2.0], gradc.float16) * t(2.0, gradc.float64), gradc.float16),
    (lambda: t([1, 2], gradc.int64) + t(1.0, gradc.float64), gradc.float64),
    (lambda: t([1, 2], gradc.int64) + t(1.0, gradc.float32), gradc.float32),
    (lambda: t([True], gradc.bool) + t(3, gradc.int64), gradc.int64),
    (lambda: t(1.0, gradc.float32) + t(1.0, gradc.float64), gradc.float64),
    (lambda: t(1, gradc.int64) + t([1.0], gradc.float16), gradc.float16),
])
def test_result_dtype(make, expected):
    assert make().dtype is expected


def test_promoted_values():
    assert_close(t([7, -7], gradc.int64) / t([2, 2], gradc.int64), np.array([3.5, -3.5], np.float32))
    assert_close(t([1, 2], gradc.int64) + 0.5, np.array([1.5, 2.5], np.float32))
    assert_close(t([True, True, False], gradc.bool).sum(), np.array(2, np.int64))
    assert_close(t([1.0, 2.0], gradc.float32) * t(0.1, gradc.float64), np.array([0.1, 0.2], np.float32))


@pytest.mark.parametrize("make, error", [
    (lambda: t([1, 2], gradc.int64).mean(), gradc.DTypeError),
    (lambda: t([1, 2], gradc.int64) ** -1, RuntimeError),
    (lambda: t([True], gradc.bool) - t([False], gradc.bool), gradc.DTypeError),
    (lambda: -t([True], gradc.bool), gradc.DTypeError),
    (lambda: gradc.where(t([1], gradc.int64), 1.0, 0.0), gradc.DTypeError),
    (lambda: t([1.0, 2.0], gradc.float32) + t([1.0, 2.0, 3.0], gradc.float32), gradc.ShapeError),
    (lambda: t([[1.0, 2.0]], gradc.float32) @ t([[1.0, 2.0]], gradc.float32), gradc.ShapeError),
    (lambda: t([1.0, 2.0], gradc.float32)[t([0.0], gradc.float32)], IndexError),
    (lambda: t([1.0, 2.0], gradc.float32)[[2]], IndexError),
    (lambda: t([1.0, 2.0], gradc.float32)[0, 0], IndexError),
])
def test_errors(make, error):
    with pytest.raises(error):
        make()


# ---------------------------------------------------------------------------- broadcasting
@settings(max_examples=60, deadline=None)
@given(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
       st.sampled_from(["add", "mul", "maximum", "lt"]))
def test_broadcast_shapes_match_numpy(shapes, name):
    (sa, sb), result = shapes.input_shapes, shapes.result_shape
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    out = getattr(gradc, name)(gradc.tensor(a), gradc.tensor(b))
    assert out.shape == tuple(result)
    assert_close(out, getattr(np, {"add": "add", "mul": "multiply", "maximum": "maximum", "lt": "less"}[name])(
        a.astype(np.float32), b.astype(np.float32)), check_dtype=False)


@settings(max_examples=30, deadline=None)
@given(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
def test_broadcast_gradients_sum_back_to_operand_shapes(shapes):
    sa, sb = shapes.input_shapes
    rng = np.random.default_rng(1)
    a = gradc.tensor(rng.standard_normal(sa), dtype=gradc.float64, requires_grad=True)
    b = gradc.tensor(rng.standard_normal(sb), dtype=gradc.float64, requires_grad=True)
    (a * b).sum().backward()
    full = np.broadcast_shapes(sa, sb)

    def summed_back(other, shape):  # d sum(a * b) / da: other's broadcast values, added up per element of a
        owner = np.broadcast_to(np.arange(int(np.prod(shape))).reshape(shape), full).ravel()
        weights = np.broadcast_to(other.detach().numpy(), full).ravel()
        return np.bincount(owner, weights, minlength=int(np.prod(shape))).reshape(shape)

    assert_close(a.grad, summed_back(b, sa), check_dtype=False)
    assert_close(b.grad, summed_back(a, sb), check_dtype=False)


@pytest.mark.parametrize("sa, sb", [((2, 3), (3, 2)), ((4,), (5,)), ((2, 1, 3), (4, 2))])
def test_incompatible_shapes_raise_shape_error(sa, sb):
    with pytest.raises(gradc.ShapeError, match="cannot be broadcast"):
        gradc.zeros(sa) + gradc.zeros(sb)
