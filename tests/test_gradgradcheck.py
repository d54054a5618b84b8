"""Second-order gradients: gradgradcheck (create_graph, then finite differences of the VJP) over
every differentiable op-database sample, so a VJP that steps outside autograd (an eager kernel
called directly, a saved value without history) is caught instead of giving a silently wrong
Hessian-vector product."""
import pytest

import gradc
from gradc.testing import gradgradcheck

from opdb import case_id, cases

# Their VJP is a primitive of its own without a derivative: a second-order gradient through them
# must say so, not come out as zero.
FIRST_ORDER_ONLY = {"sdpa"}
# The first two samples of each row: the VJP's own VJP is what is checked, and the gradcheck of
# every sample already covers the shapes.
GRAD_CASES = [c for c in cases(dtypes=("float64",), predicate=lambda row, s: s.grad and bool(row.diff_args(s)))
              if c[1] < 2]


@pytest.mark.parametrize("case", GRAD_CASES, ids=case_id)
def test_gradgradcheck(case):
    row, _, sample, _ = case
    inputs = sample.tensors("float64", requires_grad=row.diff_args(sample))
    check = lambda: gradgradcheck(lambda *xs: row.fn(*xs, **sample.kwargs), inputs, **sample.gradcheck_kw)  # noqa: E731
    if row.name in FIRST_ORDER_ONLY:
        with pytest.raises(gradc.AutogradError, match="has no derivative"):
            check()
    else:
        assert check()
