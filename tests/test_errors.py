"""Named errors: each failure a user can cause raises a gradc error class (all under GradcError)
whose message says what went wrong, with the shapes/dtypes/devices involved, and what to do."""
import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import (ArtifactError, AutogradError, DeviceError, DTypeError, GradcError, ShapeError, TraceError,
                   nn)


def test_error_hierarchy():
    for cls in (ShapeError, DTypeError, AutogradError, TraceError, DeviceError, ArtifactError):
        assert issubclass(cls, GradcError), cls
    # the builtin bases let `except ValueError` etc. keep working for code written against torch/numpy
    assert issubclass(ShapeError, ValueError)
    assert issubclass(DTypeError, TypeError)
    assert issubclass(AutogradError, RuntimeError)
    assert issubclass(GradcError, Exception)
    # and RuntimeError where PyTorch raises one for the same mistake
    for cls in (ShapeError, DTypeError, gradc.errors.OutOfRangeError):
        assert issubclass(cls, RuntimeError), cls
    with pytest.raises(RuntimeError, match="add"):
        gradc.ones(2) + gradc.ones(3)


# ---------------------------------------------------------------------- shapes
@pytest.mark.parametrize("op,name", [(lambda a, b: a + b, "add"), (lambda a, b: a - b, "sub"),
                                     (lambda a, b: a * b, "mul"), (lambda a, b: a / b, "div"),
                                     (lambda a, b: gradc.maximum(a, b), "maximum"), (lambda a, b: a < b, "lt")])
def test_binary_shape_mismatch(op, name):
    a, b = gradc.ones(2, 3), gradc.ones(4)
    with pytest.raises(ShapeError) as e:
        op(a, b)
    msg = str(e.value)
    assert msg.startswith(f"{name}:") and "(2, 3)" in msg and "(4,)" in msg and "broadcast" in msg
    with pytest.raises(ValueError):  # also catchable as the builtin
        op(a, b)


def test_mm_with_a_1d_operand():
    x, w = gradc.ones(3), gradc.ones(4, 3)
    with pytest.raises(ShapeError) as e:
        x.mm(w.t())
    msg = str(e.value)
    assert "mm" in msg and "2-D" in msg and "(3,)" in msg and "(3, 4)" in msg
    assert "matmul" in msg  # the alternative that accepts 1-D operands
    np.testing.assert_array_equal(x.matmul(w.t()).numpy(), np.full(4, 3.0))


def test_matmul_inner_dimension_mismatch():
    with pytest.raises(ShapeError) as e:
        gradc.ones(2, 3) @ gradc.ones(4, 5)
    msg = str(e.value)
    assert "matmul" in msg and "(2, 3)" in msg and "(4, 5)" in msg and "3 != 4" in msg


def test_reshape_and_dim_errors():
    with pytest.raises(ShapeError, match=r"reshape.*\(2, 3\).*\(4, -1\)"):
        gradc.ones(2, 3).reshape(4, -1)
    with pytest.raises(ShapeError, match=r"sum: dim 2 is out of range.*2 dimension"):
        gradc.ones(2, 3).sum(2)
    with pytest.raises(ShapeError, match="item"):
        gradc.ones(2).item()
    with pytest.raises(ShapeError, match="ambiguous"):
        bool(gradc.ones(2))


def test_linear_feature_mismatch_names_both_shapes():
    with pytest.raises(ShapeError) as e:
        nn.Linear(3, 2)(gradc.ones(5, 4))
    msg = str(e.value)
    assert "linear" in msg and "(5, 4)" in msg and "(2, 3)" in msg


# ---------------------------------------------------------------------- autograd misuse
def test_non_scalar_backward():
    y = gradc.ones(2, 2, requires_grad=True) * 3.0
    with pytest.raises(AutogradError) as e:
        y.backward()
    msg = str(e.value)
    assert "scalar" in msg and "(2, 2)" in msg and ("sum()" in msg or "gradient=" in msg)


def test_backward_twice():
    x = gradc.ones(2, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(AutogradError) as e:
        y.backward()
    msg = str(e.value)
    assert "second time" in msg and "retain_graph=True" in msg


def test_in_place_change_of_a_saved_tensor():
    x = gradc.ones(3, requires_grad=True)
    h = x * 2.0
    y = (h * h).sum()
    h.add_(1.0)
    with pytest.raises(AutogradError) as e:
        y.backward()
    msg = str(e.value)
    assert "in-place" in msg and "mul" in msg and "(3,)" in msg
    assert "version 1" in msg and "expected version 0" in msg and ".clone()" in msg


def test_in_place_on_a_leaf_and_numpy_of_a_grad_tensor():
    p = gradc.ones(2, requires_grad=True)
    with pytest.raises(AutogradError, match="mul_ on a leaf tensor that requires grad.*no_grad"):
        p.mul_(2.0)
    with pytest.raises(AutogradError, match=r"detach\(\)\.numpy\(\)"):
        p.numpy()


# ---------------------------------------------------------------------- state dicts
def test_load_state_dict_wrong_shape():
    m = nn.Sequential(nn.Linear(3, 2))
    sd = m.state_dict()
    sd["0.bias"] = gradc.zeros(3)
    with pytest.raises(ShapeError) as e:
        m.load_state_dict(sd)
    msg = str(e.value)
    assert "0.bias" in msg and "(3,)" in msg and "(2,)" in msg and "checkpoint" in msg


def test_load_state_dict_wrong_name():
    m = nn.Sequential(nn.Linear(3, 2))
    sd = m.state_dict()
    sd["0.b"] = sd.pop("0.bias")
    with pytest.raises(GradcError) as e:
        m.load_state_dict(sd)
    msg = str(e.value)
    assert "missing keys: 0.bias" in msg and "unexpected keys: 0.b" in msg and "strict=False" in msg


def test_optimizer_load_state_dict_mismatch():
    p = nn.Parameter(gradc.ones(2))
    opt = gradc.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = gradc.ones(2)
    opt.step()
    other = gradc.optim.SGD([nn.Parameter(gradc.ones(3))], lr=0.1, momentum=0.9)
    with pytest.raises(ShapeError, match=r"momentum_buffer.*\(2,\).*\(3,\)"):
        other.load_state_dict(opt.state_dict())


# ---------------------------------------------------------------------- devices
@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "gpu:0", ""])
def test_unknown_device_string(spec):
    with pytest.raises(DeviceError) as e:
        gradc.ones(2).to(spec)
    msg = str(e.value)
    assert repr(spec) in msg and "'cpu'" in msg and "'cuda'" in msg
    with pytest.raises(DeviceError):
        gradc.zeros(2, device=spec)


def test_device_of_wrong_type():
    with pytest.raises(DeviceError, match="expected a device"):
        gradc.device(3.5)


def test_cuda_unavailable_says_why_and_how_to_fix():
    if gradc.cuda.is_available():
        pytest.skip("a CUDA GPU is available on this machine")
    assert gradc.cuda.device_count() == 0
    for attempt in (lambda: gradc.ones(2).to("cuda"), lambda: gradc.ones(2).cuda(),
                    lambda: gradc.tensor([1.0], device="cuda:0"), lambda: nn.Linear(2, 2).to("cuda")):
        with pytest.raises(DeviceError) as e:
            attempt()
        msg = str(e.value)
        assert "CUDA" in msg and ("CuPy" in msg or "GPU" in msg)
        assert "pip install" in msg or "device='cpu'" in msg  # how to fix it


# ---------------------------------------------------------------------- dtypes
def test_where_with_a_non_bool_condition():
    x = gradc.tensor([1.0, -1.0])
    with pytest.raises(DTypeError) as e:
        gradc.where(gradc.tensor([1, 0]), x, 0.0)
    msg = str(e.value)
    assert "where" in msg and "bool" in msg and "int64" in msg and "x > 0" in msg
    with pytest.raises(TypeError):  # DTypeError is a TypeError too
        gradc.where(x, x, 0.0)
    np.testing.assert_array_equal(gradc.where(x > 0, x, 0.0).numpy(), [1.0, 0.0])


def test_other_dtype_errors():
    with pytest.raises(DTypeError, match="floating"):
        gradc.tensor([1, 2], requires_grad=True)
    with pytest.raises(DTypeError, match=r"mean\(\).*\.float\(\)"):
        gradc.tensor([1, 2]).mean()
    with pytest.raises(DTypeError, match="~.*bool"):
        ~gradc.tensor([1.0])
    with pytest.raises(DTypeError, match="unknown dtype"):
        gradc.zeros(2, dtype="float8")
    with pytest.raises(DTypeError, match="int64"):
        F.embedding(gradc.tensor([0.0]), gradc.ones(2, 2))
    with pytest.raises(DTypeError, match="cannot be written"):
        gradc.tensor([1, 2]).mul_(1.5)
    with pytest.raises(DTypeError, match="bool"):
        gradc.tensor([True]) - gradc.tensor([False])


def test_every_error_raised_here_is_a_gradc_error():
    attempts = [lambda: gradc.ones(2) + gradc.ones(3), lambda: gradc.ones(3).mm(gradc.ones(3, 3)),
                lambda: gradc.ones(2).to("tpu"), lambda: gradc.where(gradc.ones(2), 1.0, 0.0),
                lambda: (gradc.ones(2, requires_grad=True) * 2.0).backward()]
    for attempt in attempts:
        with pytest.raises(GradcError):
            attempt()


def test_operands_torch_refuses_are_refused():
    with pytest.raises(DTypeError, match="same dtype"):
        gradc.ones(2, 3) @ gradc.ones(3, dtype=gradc.float64)
    with pytest.raises(DTypeError, match="same dtype"):
        nn.Linear(3, 2)(gradc.ones(1, 3, dtype=gradc.int64))   # a float64/int input to a float32 layer
    for bad in (lambda: gradc.tensor([1, 2]) - gradc.tensor([True, False]), lambda: gradc.tensor([True]) - 2,
                lambda: gradc.tensor([1]) - True, lambda: 1 - gradc.tensor([True])):
        with pytest.raises(DTypeError, match="subtraction with a bool"):
            bad()
    with pytest.raises(TypeError):
        gradc.ones(3) * [1, 2, 3]
    assert (gradc.ones(3) == [1, 1, 1]) is False and (gradc.ones(3) != (1, 1, 1)) is True   # Python's identity rule
    assert (gradc.ones(3) + np.ones(3)).dtype is gradc.float64                              # NumPy arrays convert


@pytest.mark.parametrize("bad", [
    lambda: gradc.normal(0.0, -1.0, (2,)), lambda: gradc.empty(2).normal_(0, -1),
    lambda: gradc.bernoulli(gradc.tensor([1.5])), lambda: gradc.empty(2).bernoulli_(2.0),
    lambda: gradc.empty(2).uniform_(1, 0), lambda: gradc.empty(2).exponential_(-1)])
def test_random_parameters_out_of_range_are_refused(bad):
    with pytest.raises(RuntimeError, match="must"):
        bad()


@pytest.mark.parametrize("bad", [
    lambda: gradc.zeros(2.5), lambda: gradc.ones(2, 3).view(2, 3.0), lambda: gradc.ones(2, 3).sum(1.0),
    lambda: gradc.ones(2, 3).sum("1"), lambda: gradc.multinomial(gradc.tensor([1, 2]), 1)])
def test_float_sizes_and_dims_are_refused(bad):
    with pytest.raises(TypeError):
        bad()
    assert gradc.zeros(np.int64(2), gradc.tensor(3)).shape == (2, 3)   # int-likes are sizes


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "silu", "gelu", "elu", "leaky_relu"])
def test_float_only_activations_refuse_integers(name):
    fn = getattr(F, name)
    call = (lambda x: fn(x, 0)) if "softmax" in name else fn
    with pytest.raises(RuntimeError, match="not implemented for"):
        call(gradc.arange(3))
    assert call(gradc.arange(3.0)).dtype is gradc.float32


@pytest.mark.parametrize("equation,shapes,match", [
    ("ij->k", [(2, 2)], "no operand has"), ("ijk->", [(2, 2)], "one letter per dimension"),
    ("i1->i", [(2, 2)], "subscripts are letters"), ("ii->i", [(2, 3)], "repeats 'i'")])
def test_einsum_names_a_bad_equation(equation, shapes, match):
    with pytest.raises(ShapeError, match=match):
        gradc.einsum(equation, *[gradc.ones(*s) for s in shapes])


def test_compile_refuses_what_cannot_be_called():
    with pytest.raises(TypeError, match="expects a function or an nn.Module"):
        gradc.compile(3)
