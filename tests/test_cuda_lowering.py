"""An elementwise primitive without a CUDA device expression is refused when its program is
lowered, naming the file to add it to, whether or not its value has rows that fuse into a kernel
(a one-row or 0-d value runs op by op on the host, but must not lower where a larger one fails)."""
import pytest

import gradc
from gradc.ops import OPS, primitive
from gradc.ops.rules import elementwise_shape, floating

NAME = "toy_without_device_expression"


@pytest.fixture
def toy():
    def kernel(xp, x):
        return x * 3
    prim = primitive(NAME, "unary", 1, elementwise_shape(NAME), floating(NAME), kernel, diff=False)
    try:
        yield prim
    finally:
        OPS.pop(NAME, None)


@pytest.mark.parametrize("shape", [(4, 6), (1, 6), (6,), ()], ids=str)
def test_a_missing_device_expression_is_refused_at_lowering_for_any_shape(toy, shape):
    x = gradc.randn(*shape)
    with pytest.raises(gradc.GradcError, match=rf"'{NAME}'.*add a macro named '{NAME}' to templates/cuda/ops.j2"):
        gradc.compile(lambda x: toy.bind(x * 2.0) + 1.0, backend="cuda").lower(x)
