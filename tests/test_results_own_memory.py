"""Functions that copy in PyTorch return tensors of their own even in their identity cases
(cat of one tensor, repeat by ones, a zero pad, a roll by 0, ...): writing into the result never
reaches the argument, eagerly or compiled, and the argument's gradient is unchanged."""
import numpy as np
import pytest

import gradc
import gradc.nn.functional as F

CASES = {
    "cat of one": lambda x: gradc.cat([x]),
    "stack of one": lambda x: gradc.stack([x])[0],
    "hstack of one": lambda x: gradc.hstack([x]),
    "vstack of one": lambda x: gradc.vstack([x]),
    "repeat by ones": lambda x: x.repeat(1, 1),
    "repeat along a size-1 dim": lambda x: x[:1].repeat(2, 1),
    "tile by one": lambda x: x.tile((1,)),
    "repeat_interleave by one": lambda x: x.repeat_interleave(1, dim=0),
    "zero pad": lambda x: F.pad(x, (0, 0)),
    "interpolate at scale 1": lambda x: F.interpolate(x[None], scale_factor=1)[0],
    "roll by 0": lambda x: x.roll(0, 0),
    "prod over a size-1 dim": lambda x: x[:, :1].prod(1, keepdim=True),
    "cumsum over a size-1 dim": lambda x: x[:, :1].cumsum(1),
    "cumprod over a size-1 dim": lambda x: x[:, :1].cumprod(1),
    "pixel_shuffle by 1": lambda x: F.pixel_shuffle(x[None], 1)[0],
    "flip of no dims": lambda x: x.flip([]),
    "flip of a size-1 dim": lambda x: x[:1].flip(0),
    "rot90 by 4": lambda x: x.rot90(4),
    "block_diag of one": lambda x: gradc.block_diag(x),
}


@pytest.mark.parametrize("name", CASES)
def test_writing_into_the_result_leaves_the_argument(name):
    fn = CASES[name]
    x = gradc.arange(6.0).reshape(2, 3)
    y = fn(x)
    y += 100.0
    assert x.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], name
    w = gradc.arange(6.0).reshape(2, 3).requires_grad_()
    h = w * 1.0
    out = fn(h)
    out.mul_(0.0)                      # the result's own memory: h and its gradient are untouched
    (h * h).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * np.arange(6.0).reshape(2, 3))


def test_cat_and_stack_refuse_a_single_tensor():
    with pytest.raises(TypeError, match="sequence of tensors"):
        gradc.cat(gradc.ones(2, 3))
    with pytest.raises(TypeError, match="sequence of tensors"):
        gradc.stack(gradc.ones(2, 3))


def test_compiled_identity_cases_write_their_own_result():
    def f(x):
        y = gradc.cat([x])
        y += 1.0
        return x * 2, y
    x = gradc.ones(3)
    a, b = gradc.compile(f)(x)
    assert a.tolist() == [2.0, 2.0, 2.0] and b.tolist() == [2.0, 2.0, 2.0] and x.tolist() == [1.0, 1.0, 1.0]
