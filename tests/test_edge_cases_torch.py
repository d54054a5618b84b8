"""Edge cases where gradc once answered differently from PyTorch (each checked against it, eagerly,
and compiled where a compiled program could differ): infinities, NaN, empty dims and rows, float16
ranges, 0-d tensors, bool indices, index checks, second backwards."""
import math

import numpy as np
import pytest

import gradc

torch = pytest.importorskip("torch")
NAN, INF = math.nan, math.inf

CASES = {
    "isclose of infinities": lambda L: L.isclose(L.tensor([INF, 1e30, INF, 2.0]), L.tensor([-INF, INF, INF, 2.0])),
    "cummax after a NaN": lambda L: tuple(L.tensor([1, NAN, 3, INF, NAN, 2]).cummax(0)),
    "cummin after a NaN": lambda L: tuple(L.tensor([1, NAN, 3, -INF, NAN]).cummin(0)),
    "sum over no dims": lambda L: L.arange(6.0).reshape(2, 3).sum(dim=()),
    "mean and amax over an empty list": lambda L: (L.arange(6.0).reshape(2, 3).mean([]),
                                                   L.arange(6.0).reshape(2, 3).amax(dim=[])),
    "float16 bce at 0 and 1": lambda L: L.nn.functional.binary_cross_entropy(
        L.tensor([0.0, 1.0, 0.5], dtype=L.float16), L.tensor([0.0, 1.0, 1.0], dtype=L.float16), reduction="none"),
    "float16 layer_norm of a wide row": lambda L: L.nn.functional.layer_norm(
        L.tensor([[1e4, -1e4, 0.0]], dtype=L.float16), (3,)),
    "searchsorted of NaN": lambda L: L.searchsorted(L.tensor([1.0, 2.0, 3.0]), L.tensor([NAN, 2.5])),
    "pow of a number": lambda L: L.pow(2.0, L.tensor([1.0, 3.0])),
    "0-d transpose, flip, gather, index_select": lambda L: (
        L.tensor(3.0).transpose(0, -1), L.tensor(3.0).flip(0), L.tensor(3.0).gather(0, L.tensor(0)),
        L.tensor(3.0).index_select(0, L.tensor([0])), L.tensor([[1, 2], [3, 4]]).index_select(0, L.tensor(1))),
    "bool indices": lambda L: (L.tensor([1.0, 2.0])[True], L.tensor([1.0, 2.0])[False],
                               L.tensor([1.0, 2.0])[L.tensor(True)]),
    "contiguous of an empty expand": lambda L: L.ones(1, 0).expand(2, 0).contiguous().add_(1),
    "split of an empty tensor": lambda L: L.zeros(0).split(2),
    "flatten of an empty batch": lambda L: (L.zeros(0, 3, 4).flatten(1), L.nn.Flatten()(L.zeros(0, 2, 2))),
    "square of bools": lambda L: L.square(L.tensor([True, False])),
    "unbatched unfold and fold": lambda L: (L.nn.functional.unfold(L.arange(32.0).reshape(2, 4, 4), 2),
                                            L.nn.functional.fold(L.arange(32.0).reshape(8, 4), (3, 3), 2)),
    "an empty list index": lambda L: L.zeros(3, 4)[[]],
    "shifts of bools and by tensors": lambda L: (L.tensor([True]) << 1, 1 << L.tensor([1, 2]), 64 >> L.tensor([1, 3])),
    "one-element tensors in a list are numbers": lambda L: (L.tensor([L.tensor([1.0]), L.tensor([2.0])]),
                                                           L.tensor([[L.tensor(1.0), 2.0], [3, L.tensor([4])]])),
    "max and min over a dim of bools": lambda L: (*L.tensor([[True, False], [False, False]]).max(1),
                                                  *L.tensor([[True, False], [True, True]]).min(0, keepdim=True)),
    "0-d argmax and prod with keepdim": lambda L: (L.tensor(3.0).argmax(0, keepdim=True), L.tensor(3.0).prod(-1, keepdim=True)),
    "fmod far from and at infinity": lambda L: (L.fmod(L.tensor([-1.0, -3.0, 7.5]), 1e8), L.fmod(
        L.tensor([-8.0, 5.0, -7.5]), L.tensor([INF, -INF, 2.0])), L.fmod(L.tensor([-7, 7]), 3)),
}


def _values(r):
    return [np.asarray(t.tolist()) for t in (r if isinstance(r, tuple) else (r,))]


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_pytorch(case):
    for ours, theirs in zip(_values(CASES[case](gradc)), _values(CASES[case](torch))):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours.astype(float), theirs.astype(float), rtol=1e-3, equal_nan=True)


@pytest.mark.parametrize("backend", ["numpy", "c"])
@pytest.mark.parametrize("shape", [(3, 0), (0, 3)])
def test_compiled_reductions_over_empty_rows_equal_eager(backend, shape):
    for f in (lambda x: x.sum(0), lambda x: x.mean(1), lambda x: x.logsumexp(0), lambda x: gradc.softmax(x, 0)):
        x = gradc.zeros(*shape)
        eager, compiled = f(x), gradc.compile(f, backend=backend)(x)
        assert compiled.shape == eager.shape
        np.testing.assert_array_equal(compiled.numpy(), eager.numpy())


def test_index_checks_second_backward_and_in_place_on_a_compiled_result():
    with pytest.raises(IndexError):
        gradc.tensor([[1, 2], [3, 4]]).index_select(0, gradc.tensor([-1]))
    with pytest.raises(gradc.ShapeError, match="larger than src"):
        gradc.zeros(2, 3).scatter(1, gradc.tensor([[0, 2]]), gradc.tensor([[1.0]]))
    x = gradc.ones(2, requires_grad=True)
    y = (x + 1).sum()
    y.backward()
    y.backward()   # nothing was saved: PyTorch allows it
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    z = gradc.compile(lambda t: t * 1.0)(x)
    z.add_(1.0)
    x.grad = None
    z.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_as_tensor_shares_an_arrays_memory_and_take_checks_its_index():
    a = np.arange(3.0)
    for lib in (torch, gradc):
        t = lib.as_tensor(a)
        a[0] = 99.0
        assert t[0].item() == 99.0
        a[0] = 0.0
        with pytest.raises(IndexError):
            lib.take(lib.arange(12.0), lib.tensor([-13]))


def test_gradient_of_a_zero_power_is_zero_at_any_base():
    grads = []
    for lib in (torch, gradc):
        a = lib.tensor([NAN, INF, 2.0, 0.0], dtype=lib.float64, requires_grad=True)
        (a ** 0).sum().backward()
        grads.append(a.grad.tolist())
    assert grads[0] == grads[1] == [0.0] * 4


def test_fmod_gradients_match_pytorch_at_zero_and_negative_operands():
    grads = []
    for lib in (torch, gradc):
        x = lib.tensor([0.0, 1.5, -2.0, -7.5, 7.5], dtype=lib.float64, requires_grad=True)
        y = lib.tensor([1.0, 1.0, 1.0, -2.0, -2.0], dtype=lib.float64, requires_grad=True)
        lib.fmod(x, y).sum().backward()
        grads.append((x.grad.tolist(), y.grad.tolist()))
    assert grads[0] == grads[1]
