"""Float64 finite-difference gradient checks over every differentiable op-database sample, and
checks that gradc.testing.gradcheck itself catches wrong gradients."""
import numpy as np
import pytest

import gradc
from gradc.testing import assert_close, gradcheck

from opdb import case_id, cases

GRAD_CASES = cases(dtypes=("float64",), predicate=lambda row, s: s.grad and bool(row.diff_args(s)))


@pytest.mark.parametrize("case", GRAD_CASES, ids=case_id)
def test_gradcheck(case):
    row, _, sample, _ = case
    inputs = sample.tensors("float64", requires_grad=row.diff_args(sample))
    assert gradcheck(lambda *xs: row.fn(*xs, **sample.kwargs), inputs, **sample.gradcheck_kw)


# ---------------------------------------------------------------------------- the checker itself
def _x(*shape, seed=0):
    return gradc.tensor(np.random.default_rng(seed).uniform(0.5, 2.0, shape), dtype=gradc.float64,
                        requires_grad=True)


def test_gradcheck_catches_a_wrong_gradient():
    # d/dx (x * detach(x)) is x for autograd but 2x for finite differences.
    with pytest.raises(AssertionError, match=r"input 1 .*element"):
        gradcheck(lambda a, x: a + x * x.detach(), [_x(3, seed=1), _x(2, 3)])


def test_gradcheck_catches_a_missing_gradient_of_a_tuple_output():
    with pytest.raises(AssertionError, match="input 0"):
        gradcheck(lambda x: (x.exp(), (x * 2).detach()), [_x(4)])


def test_gradcheck_passes_for_nonscalar_and_tuple_outputs():
    assert gradcheck(lambda x, y: (x @ y, (x.sum(1) * 3).tanh()), [_x(2, 3), _x(3, 4, seed=1)])


def test_gradcheck_ignores_inputs_without_grad():
    c = gradc.tensor([1.0, 2.0], dtype=gradc.float64)
    assert gradcheck(lambda x, c: x * c, [_x(2), c])


def test_gradcheck_needs_float64():
    with pytest.raises(ValueError, match="float64"):
        gradcheck(lambda x: x * 2, [gradc.ones(3, requires_grad=True)])
    with pytest.raises(ValueError, match="requires grad"):
        gradcheck(lambda x: x * 2, [gradc.ones(3, dtype=gradc.float64)])


def test_assert_close_reports_the_worst_element():
    assert_close(gradc.tensor([1.0, 2.0]), np.array([1.0, 2.0 + 1e-7], np.float32))
    with pytest.raises(AssertionError, match=r"index \(1,\).*2\.5"):
        assert_close(gradc.tensor([1.0, 2.5]), np.array([1.0, 2.0], np.float32))
    with pytest.raises(AssertionError, match="shape"):
        assert_close(gradc.tensor([1.0]), np.array(1.0, np.float32))
    with pytest.raises(AssertionError, match="dtype"):
        assert_close(gradc.tensor([1.0]), np.array([1.0]))
    with pytest.raises(AssertionError, match="differ"):
        assert_close(gradc.tensor([1, 2]), np.array([1, 3]))
    with pytest.raises(AssertionError):
        assert_close(gradc.tensor([float("nan")]), np.array([1.0], np.float32))
