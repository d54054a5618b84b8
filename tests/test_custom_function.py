"""Custom autograd functions (gradc.autograd.Function), anomaly detection and activation
checkpointing (gradc.utils.checkpoint), with hand-computed values, float64 gradcheck and PyTorch
as the oracle where installed."""
import warnings

import numpy as np
import pytest

import gradc
from gradc.errors import AutogradError
from gradc.utils.checkpoint import checkpoint, checkpoint_sequential


def _functions(T):
    """The same custom functions written against a torch-like module T."""
    class Exp(T.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale=2.0):
            y = x.exp() * scale
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            y, = ctx.saved_tensors
            return g * y, None

    class GradReverse(T.autograd.Function):   # domain adaptation's gradient reversal layer
        @staticmethod
        def forward(ctx, x, alpha):
            ctx.alpha = alpha
            return x.view_as(x)

        @staticmethod
        def backward(ctx, g):
            return g.neg() * ctx.alpha, None

    class RoundSTE(T.autograd.Function):   # a straight-through estimator
        @staticmethod
        def forward(ctx, x):
            return x.round()

        @staticmethod
        def backward(ctx, g):
            return g

    class Split(T.autograd.Function):   # two results
        @staticmethod
        def forward(ctx, x):
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, a, b):
            return a * 2 + b * 3

    class Mul(T.autograd.Function):   # forward without ctx, setup_context, needs_input_grad
        @staticmethod
        def forward(x, w):
            return x * w

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            return (g * w if ctx.needs_input_grad[0] else None), (g * x if ctx.needs_input_grad[1] else None)
    return Exp, GradReverse, RoundSTE, Split, Mul


def _run(T):
    Exp, GradReverse, RoundSTE, Split, Mul = _functions(T)
    x = T.tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    w = T.tensor(np.arange(3.0), requires_grad=True)
    y = Exp.apply(x) + GradReverse.apply(x, 0.5) * 3 + RoundSTE.apply(x * 4)
    a, b = Split.apply(x)
    loss = (y * y).sum() + (a * b).sum() + Mul.apply(x, w).sum()
    loss.backward()
    return loss.item(), x.grad.numpy(), w.grad.numpy()


def test_custom_functions_hand_computed():
    Exp, GradReverse, RoundSTE, Split, Mul = _functions(gradc)
    x = gradc.tensor([0.0, 1.0], requires_grad=True)
    GradReverse.apply(x, 0.5).sum().backward()
    assert x.grad.tolist() == [-0.5, -0.5]
    x.grad = None
    RoundSTE.apply(x * 3.3).sum().backward()   # d/dx of round(3.3 x), straight through: 3.3
    assert x.grad.tolist() == pytest.approx([3.3, 3.3])
    x.grad = None
    a, b = Split.apply(x)
    (a * 1 + b * 10).sum().backward()   # 2 * 1 + 3 * 10
    assert x.grad.tolist() == [32.0, 32.0]
    assert Exp.apply(x).grad_fn.name() == "ExpBackward"
    with gradc.no_grad():
        assert not Exp.apply(x).requires_grad


def test_custom_functions_match_torch():
    torch = pytest.importorskip("torch")
    for got, want in zip(_run(gradc), _run(torch)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_custom_function_gradcheck_float64():
    Exp, _, _, _, Mul = _functions(gradc)
    x = gradc.tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    w = gradc.tensor(np.arange(1.0, 4.0), requires_grad=True)
    assert gradc.autograd.gradcheck(lambda a: Exp.apply(a, 1.5), (x,))
    assert gradc.autograd.gradcheck(Mul.apply, (x, w))


def test_custom_function_mistakes_are_named():
    class Wrong(gradc.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g   # one gradient for two arguments is fine (k gets None) only as a trailing None
    x = gradc.ones(2, requires_grad=True)
    with pytest.raises(AutogradError, match="returned 1 gradient"):
        Wrong.apply(x, 2.0).sum().backward()

    class Saved(gradc.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * ctx.saved_tensors[0]
    y = x * 1
    out = Saved.apply(y)
    y.add_(1)
    with pytest.raises(AutogradError, match="modified in place"):
        out.sum().backward()


def test_compiled_training_step_with_a_custom_function_runs_eagerly():
    _, GradReverse, _, _, _ = _functions(gradc)
    lin = gradc.nn.Linear(3, 1)

    def step(x):
        loss = GradReverse.apply(lin(x), 1.0).sum()
        loss.backward()
        return loss
    f = gradc.compile(step)
    with pytest.warns(UserWarning, match="GradReverse.apply"):
        f(gradc.ones(2, 3))
    assert lin.bias.grad.tolist() == [-2.0]   # reversed, as eagerly
    infer = gradc.compile(lambda x: GradReverse.apply(lin(x), 1.0))
    with gradc.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")   # needing no gradient, it traces
        np.testing.assert_allclose(infer(gradc.ones(2, 3)).numpy(), lin(gradc.ones(2, 3)).detach().numpy())
    assert infer.trace_count == 1


def test_detect_anomaly_names_the_op():
    z = gradc.zeros(2, requires_grad=True)
    with np.errstate(all="ignore"):
        with gradc.autograd.detect_anomaly():
            assert gradc.is_anomaly_enabled()
            with pytest.raises(AutogradError, match="DivBackward.*nan"):
                (z / z).sum().backward()
        assert not gradc.is_anomaly_enabled()
        (z / z).sum().backward()   # off again: NaN gradients, as PyTorch gives
    assert np.isnan(z.grad.numpy()).all()
    gradc.autograd.set_detect_anomaly(True)
    try:
        assert gradc.is_anomaly_check_nan_enabled()
    finally:
        gradc.autograd.set_detect_anomaly(False)


def _checkpointed(T, ck, ck_seq):
    T.manual_seed(0)
    blocks = T.nn.Sequential(*[T.nn.Sequential(T.nn.Linear(4, 4), T.nn.Tanh()) for _ in range(4)])
    for i, p in enumerate(blocks.parameters()):
        with T.no_grad():
            p.copy_(T.tensor(np.cos(np.arange(p.numel()) + i).reshape(tuple(p.shape)), dtype=T.float32))
    x = T.tensor(np.linspace(-1, 1, 8).reshape(2, 4).astype(np.float32), requires_grad=True)
    h = x
    for i, b in enumerate(blocks):
        h = ck(b, h, use_reentrant=False) if i % 2 == 0 else b(h)
    loss = (ck_seq(blocks, 2, h, use_reentrant=False) ** 2).sum()
    loss.backward()
    x2 = T.ones(1, 4, requires_grad=True)
    (gz,) = T.autograd.grad(ck(lambda a: (blocks[1](a) * a).sum(), x2, use_reentrant=False), x2)
    return [loss.item(), x.grad.numpy(), gz.numpy()] + [p.grad.numpy() for p in blocks.parameters()]


def test_checkpoint_gives_the_gradients_of_the_plain_run():
    plain = _checkpointed(gradc, lambda f, *a, **k: f(*a), lambda fs, s, x, **k: fs(x))
    for got, want in zip(_checkpointed(gradc, checkpoint, checkpoint_sequential), plain):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    torch = pytest.importorskip("torch")
    from torch.utils import checkpoint as tck
    for got, want in zip(_checkpointed(gradc, checkpoint, checkpoint_sequential),
                         _checkpointed(torch, tck.checkpoint, tck.checkpoint_sequential)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_checkpoint_recomputes_with_the_same_random_draws():
    gradc.manual_seed(3)
    x = gradc.ones(1, 64, requires_grad=True)
    out = checkpoint(gradc.nn.Dropout(0.5), x, use_reentrant=False)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), out.detach().numpy())   # the gradient is the mask * 2
    assert 0 < (x.grad.numpy() == 0).sum() < 64


def test_a_second_backward_through_a_function_that_saved_tensors_is_refused_as_in_pytorch():
    class Square(gradc.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 2 * x * g
    x = gradc.tensor([2.0], requires_grad=True)
    y = Square.apply(x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    x = gradc.tensor([2.0], requires_grad=True)
    y = Square.apply(x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [8.0]
