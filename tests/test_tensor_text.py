"""Tensors print as PyTorch prints them (gradc.tensor_text), compared with PyTorch's own text after
its module name: widths, whole numbers, scientific notation, nan/inf, bools, float16, wrapping,
summaries, suffixes on their own line, and the print options."""
import numpy as np
import pytest

import gradc

torch = pytest.importorskip("torch")
_R = np.random.default_rng(0)
_A, _B, _C = (_R.standard_normal(s).astype(np.float32) for s in ((4, 5), (3, 4, 5), (50, 60)))

CASES = [
    lambda T: T.tensor([[-1.2345] * 8]), lambda T: T.arange(18, dtype=T.int32) * 1000,
    lambda T: T.tensor([[1.5] * 8, [-2.5] * 8], requires_grad=True), lambda T: T.arange(2000),
    lambda T: T.arange(2000) * 100000, lambda T: T.tensor([1.0, 5000.0]), lambda T: T.arange(2000).float(),
    lambda T: T.tensor(1e10), lambda T: T.tensor([1e8]), lambda T: T.tensor([1.5e8, 2.0]),
    lambda T: T.triu(T.full((2, 2), float("-inf")), 1), lambda T: T.tensor([float("inf"), 1.0]),
    lambda T: T.tensor([-0.0, 1.5]), lambda T: T.ones(2) > 0, lambda T: T.tensor([True, False]),
    lambda T: T.tensor([2048.0, 3.0], dtype=T.float16), lambda T: T.tensor([65504.0], dtype=T.float16),
    lambda T: T.tensor([1e-300, 1.0], dtype=T.float64), lambda T: T.tensor(_A), lambda T: T.tensor(_B),
    lambda T: T.tensor(_C), lambda T: T.zeros(0, 3), lambda T: T.zeros(0, dtype=T.int32), lambda T: T.tensor(3.5),
    lambda T: T.tensor(float("nan")), lambda T: T.tensor([1e-5, 1e5]), lambda T: T.tensor([[1, 2], [300000, 4]]),
    lambda T: T.tensor([0.0, 0.0]), lambda T: T.arange(40).reshape(2, 20), lambda T: T.ones(3, requires_grad=True) * 1,
]
OPTIONS = [dict(sci_mode=False), dict(sci_mode=True), dict(precision=0), dict(precision=2), dict(linewidth=40),
           dict(threshold=5, edgeitems=2), dict(profile="short"), dict(profile="full")]


def _text(lib, make):
    return repr(make(lib)).replace("gradc", "torch").replace("grad_fn=<MulBackward0>", "grad_fn=<...>")


@pytest.mark.parametrize("i", range(len(CASES)))
def test_tensor_text_matches_pytorch(i):
    assert _text(gradc, CASES[i]) == _text(torch, CASES[i])


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_print_options_match_pytorch(options):
    try:
        for lib in (torch, gradc):
            lib.set_printoptions(**options)
        for make in (CASES[0], CASES[3], CASES[5], CASES[18], CASES[20], CASES[25]):
            assert _text(gradc, make) == _text(torch, make)
    finally:
        for lib in (torch, gradc):
            lib.set_printoptions(profile="default")
