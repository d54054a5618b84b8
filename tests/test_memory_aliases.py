"""A value whose op returns its operand's own array (check_index) shares that operand's storage in
the memory plan: the operand's buffer must not go to a later value while the checked result is
still read (it did, and the one-hot counts below came back as zeros)."""
import numpy as np
import pytest

import gradc
from gradc.ops.index import check_index_p


def _f(t, x):
    tc = check_index_p.bind(t.clamp(min=0), high=5, ignore=-100)
    return (tc.unsqueeze(2) == gradc.arange(5)).float().sum(1), x.gather(1, tc)


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_a_checked_intermediate_keeps_its_buffer(backend):
    t = gradc.tensor([[1, 2, -1], [3, 4, 0], [0, 2, 2]])
    x = gradc.randn(3, 6)
    for eager, compiled in zip(_f(t, x), gradc.compile(_f, backend=backend)(t, x)):
        np.testing.assert_array_equal(compiled.numpy(), eager.numpy())
