"""The in-place forms of the math ops (x.atan_(), x.hypot_(y), ...) and ~ on integers, against
PyTorch."""
import numpy as np
import pytest

import gradc

UNARY = ["tan_", "asin_", "acos_", "atan_", "sinh_", "cosh_", "asinh_", "atanh_", "erfc_", "erfinv_", "exp2_",
         "lgamma_", "digamma_", "logit_", "frac_", "sgn_", "deg2rad_", "rad2deg_", "fix_", "negative_", "absolute_",
         "arcsin_", "arctan_"]
BINARY = ["atan2_", "hypot_", "xlogy_", "logical_xor_", "logical_and_", "nextafter_"]


@pytest.mark.parametrize("name", UNARY + BINARY)
def test_in_place_math_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    vals, other = [0.2, -0.5, 0.7], [0.3, 0.1, -0.9]
    a, b = gradc.tensor(vals), torch.tensor(vals)
    args = ((gradc.tensor(other),), (torch.tensor(other),)) if name in BINARY else ((), ())
    assert getattr(a, name)(*args[0]) is a
    getattr(b, name)(*args[1])
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, equal_nan=True)


def test_bitwise_in_place_and_invert_on_integers():
    torch = pytest.importorskip("torch")
    a, b = gradc.tensor([5, 6, -3]), torch.tensor([5, 6, -3])
    a.bitwise_xor_(gradc.tensor([3, 3, 3]))
    b.bitwise_xor_(torch.tensor([3, 3, 3]))
    a ^= gradc.tensor([1, 1, 1])
    b ^= torch.tensor([1, 1, 1])
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal((~a).numpy(), (~b).numpy())
    with pytest.raises(gradc.DTypeError, match="bool and integer"):
        ~gradc.ones(2)
