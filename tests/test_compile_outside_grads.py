"""Compiled functions that read gradients an eager backward() made: compiling only the optimizer
step, or a gradient-accumulation loop whose clip-and-step is compiled. Each call must read the
`.grad` the parameter holds then, not the tensor it held when the function was traced (backward()
and zero_grad() replace it)."""
import numpy as np
import pytest

import gradc
from gradc import nn, optim
from gradc.testing import assert_close


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADC_CACHE_DIR", str(tmp_path_factory.mktemp("gradc_cache")))
        yield


def test_a_compiled_read_of_grad_sees_each_backward():
    w = gradc.ones(2, requires_grad=True)
    read = gradc.compile(lambda: w.grad * 1)
    for k in (1.0, 2.0, 3.0):   # hand-computed: d(sum(k w))/dw = k
        w.grad = None
        (w * k).sum().backward()
        assert read().tolist() == [k, k]
    assert read.trace_count == 1


@pytest.mark.parametrize("set_to_none", [True, False])
def test_compiled_sgd_step_after_eager_backward(set_to_none):
    m = nn.Linear(1, 1, bias=False)
    opt = optim.SGD(m.parameters(), lr=0.1)
    step = gradc.compile(lambda: opt.step())
    for i in range(1, 4):   # the gradient of sum(w * i) is i: the step moves w by 0.1 * i
        opt.zero_grad(set_to_none=set_to_none)
        m(gradc.full((1, 1), float(i))).sum().backward()
        before = m.weight.item()
        step()
        assert before - m.weight.item() == pytest.approx(0.1 * i, rel=1e-5)


def _accumulating(compiled):
    """nanoGPT's loop: eager micro-steps accumulate gradients, then one clip + AdamW step +
    zero_grad(set_to_none=True), compiled or not. Returns the losses and clip norms of 4 iterations."""
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = optim.AdamW(model.parameters(), lr=0.05)

    def finish():
        norm = nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return norm
    finish = gradc.compile(finish) if compiled else finish
    rng = np.random.default_rng(0)
    out = []
    for _ in range(4):
        for _ in range(2):
            x = gradc.tensor(rng.standard_normal((5, 4)).astype(np.float32))
            loss = (model(x) ** 2).mean() / 2
            loss.backward()
        out.append((loss.item(), finish().item()))
    return np.array(out), finish


def test_compiled_clip_and_step_after_accumulated_backward():
    eager, _ = _accumulating(False)
    compiled, finish = _accumulating(True)
    assert len(set(eager[:, 1].tolist())) == 4   # the norms differ per iteration: a stale read shows
    assert_close(compiled, eager, rtol=1e-5, atol=1e-6)
    assert finish.trace_count <= 2


def test_a_leaf_made_inside_the_compiled_call_gets_its_gradient_every_call():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)

    def f(x):
        w = gradc.tensor(a, requires_grad=True)   # a fresh leaf per call, as eagerly
        (x @ w.T).sum().backward()
        return w.grad

    cf = gradc.compile(f)
    for k in (1.0, 2.0, 3.0):   # hand-computed: d(sum(x w^T))/dw = column sums of x, broadcast over rows
        x = gradc.full((2, 4), k)
        assert cf(x).tolist() == [[2 * k] * 4] * 3
    assert cf.trace_count == 1


def test_a_leaf_renormalised_under_no_grad_runs_eagerly_with_its_gradient():
    gradc.manual_seed(0)
    emb = gradc.nn.Embedding(10, 4, max_norm=1.0)
    ids = gradc.tensor([1, 2, 1])
    with pytest.warns(UserWarning, match="changed in place under no_grad"):
        out = gradc.compile(emb)(ids)
    out.sum().backward()
    want = np.zeros((10, 4), np.float32)
    want[1], want[2] = 2.0, 1.0
    np.testing.assert_allclose(emb.weight.grad.numpy(), want)


def test_enable_grad_inside_a_compiled_call_made_under_no_grad():
    lin = nn.Linear(2, 2)

    def f(x):
        with gradc.enable_grad():
            return lin(x)
    with gradc.no_grad():
        y = gradc.compile(f)(gradc.ones(1, 2))
    assert y.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), np.ones((2, 2)))


def test_a_compiled_forward_frees_its_activations_after_one_backward():
    f = gradc.compile(nn.Linear(3, 1))
    y = f(gradc.ones(1, 3, requires_grad=True))
    y.sum().backward()
    with pytest.raises(gradc.AutogradError, match="second time"):
        y.sum().backward()
    y = f(gradc.ones(1, 3, requires_grad=True))
    y.sum().backward(retain_graph=True)
    y.sum().backward()
