"""The layout pass before fusion: elementwise ops and reductions over a permuted view work in the
memory order of the value it views (a convolution's bias, ReLU and their gradients over its
channels-last memory), with the same values and gradients as eager on every backend."""
import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc.passes.fusion import fuse
from gradc.passes.layout import pads_to_concat, row_friendly, sink_permutes
from gradc.passes.simplify import simplify
from gradc.testing import assert_close


def _c_works():
    try:
        gradc.compile(lambda x: x * 2.0, backend="c")(gradc.ones(2, 2))
        return True
    except gradc.GradcError:
        return False


@pytest.fixture(params=("numpy", "c"))
def backend(request, monkeypatch, tmp_path):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    if request.param == "c" and not _c_works():
        pytest.skip("no working C compiler for backend='c'")
    return request.param


def _check(fn, arrays, backend, tol=1e-5):
    rng = np.random.default_rng(3)
    w = None

    def run(f):
        nonlocal w
        xs = [gradc.tensor(a, requires_grad=True) for a in arrays]
        y = f(*xs)
        if w is None:
            w = rng.uniform(-1, 1, y.shape).astype(np.float32)
        (y * gradc.tensor(w)).sum().backward()
        return y.detach().numpy(), [x.grad.numpy() for x in xs]

    want, want_g = run(fn)
    got, got_g = run(gradc.compile(fn, backend=backend))
    assert_close(got, want, rtol=tol, atol=tol)
    for g, e in zip(got_g, want_g):
        assert_close(g, e, rtol=tol, atol=tol)


def _graph(fn, *arrays):
    graph, _ = gradc.compile(fn).trace(*[gradc.tensor(a) for a in arrays])
    simplify(graph)
    return graph


def _f32(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_bias_and_relu_after_a_permute_run_in_memory_order():
    x, b = _f32(2, 5, 6, 3), _f32(3, 1, 1, seed=1)
    graph = _graph(lambda x, b: F.relu(x.permute(0, 3, 1, 2) + b) * 2.0, x, b)
    assert sink_permutes(graph) == 3   # add, le, where (the output, mul, keeps its node)
    ew = [n for n in graph.op_nodes() if graph.node(n)["op"] in ("add", "le", "where")]
    assert len(ew) == 3 and all(graph.node(n)["shape"] == (2, 5, 6, 3) for n in ew)
    (add,) = [n for n in ew if graph.node(n)["op"] == "add"]
    assert [graph.node(a)["shape"] for a in graph.args(add)] == [(2, 5, 6, 3), (3,)]   # the bias as a row
    (out,) = graph.outputs
    assert graph.node(graph.args(out)[0])["op"] == "permute"


def test_permute_back_folds_away():
    x = _f32(2, 4, 5, 3)
    graph = _graph(lambda x: (F.relu(x.permute(0, 3, 1, 2)) * 2.0).permute(0, 2, 3, 1).sum(), x)
    sink_permutes(graph)
    assert not any(graph.node(n)["op"] == "permute" for n in graph.op_nodes())


def test_a_full_size_operand_in_another_order_keeps_the_op():
    x, y = _f32(2, 3, 4, 5), _f32(2, 5, 3, 4, seed=1)
    graph = _graph(lambda x, y: x.permute(0, 3, 1, 2) + y, x, y)
    assert sink_permutes(graph) == 0


def test_bias_gradient_over_channels_last_memory_is_a_row_reduction():
    x = _f32(4, 5, 6, 3)
    graph = _graph(lambda x: x.permute(0, 3, 1, 2).sum((0, 2, 3)) * 2.0, x)
    assert sink_permutes(graph) == 1
    (s,) = [n for n in graph.op_nodes() if graph.node(n)["op"] == "sum"]
    assert graph.node(s)["attrs"]["axes"] == (0, 1, 2)
    assert row_friendly(4, (0, 1, 2)) and not row_friendly(4, (0, 2, 3)) and row_friendly(4, (2, 3))


def test_a_row_friendly_reduction_is_not_made_unfriendly():
    x = _f32(2, 3, 4, 5)
    graph = _graph(lambda x: x.permute(0, 2, 3, 1).sum(-1), x)   # over the last axis: rows as it is
    assert sink_permutes(graph) == 0


def test_fusion_still_groups_the_moved_ops():
    x, b = _f32(2, 5, 6, 3), _f32(3, 1, 1, seed=1)
    graph = _graph(lambda x, b: F.relu(x.permute(0, 3, 1, 2) + b) * 3.0, x, b)
    fusion = fuse(graph)
    assert any(len(g["members"]) >= 3 for g in fusion.groups.values())


@pytest.mark.parametrize("case", ["relu", "sum_keep", "sum_drop", "max", "two_inputs", "chain_back"])
def test_values_and_gradients_equal_eager(backend, case):
    x, y, b = _f32(3, 4, 5, 6), _f32(3, 4, 5, 6, seed=1), _f32(6, 1, 1, seed=2)
    fns = {
        "relu": (lambda x, b: F.relu(x.permute(0, 3, 1, 2) + b), (x, b)),
        "sum_keep": (lambda x: (x.permute(0, 3, 1, 2) * 2.0).sum((0, 2, 3), keepdim=True) + 1.0, (x,)),
        "sum_drop": (lambda x: x.permute(0, 3, 1, 2).exp().sum((0, 2)) * 0.5, (x,)),
        "max": (lambda x: x.permute(0, 3, 1, 2).amax((0, 2, 3)), (x,)),
        "two_inputs": (lambda x, y: x.permute(0, 3, 1, 2) * y.permute(0, 3, 1, 2) - 1.0, (x, y)),
        "chain_back": (lambda x, b: (F.relu(x.permute(0, 3, 1, 2) + b) * 2.0).permute(0, 2, 3, 1) + 1.0, (x, b)),
    }
    fn, arrays = fns[case]
    _check(fn, arrays, backend)


def test_conv_relu_conv_step_equals_eager(backend):
    gradc.manual_seed(0)
    conv1, conv2 = gradc.nn.Conv2d(2, 4, 3), gradc.nn.Conv2d(4, 3, 3)
    x = _f32(2, 2, 9, 9)

    def fn(x):
        h = F.relu(conv1(x))
        return F.max_pool2d(F.relu(conv2(h)), 2)

    want = fn(gradc.tensor(x))
    want.sum().backward()
    params = list(conv1.parameters()) + list(conv2.parameters())
    want_g = [p.grad.numpy().copy() for p in params]
    for p in params:
        p.grad = None
    got = gradc.compile(fn, backend=backend)(gradc.tensor(x))
    got.sum().backward()
    assert_close(got.detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-5)
    for g, e in zip([p.grad.numpy() for p in params], want_g):
        assert_close(g, e, rtol=1e-4, atol=1e-5)


def _split_qkv(x):
    qkv = x.reshape(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)   # (3, B, H, T, hd), as an attention block splits it
    q, k, v = qkv[0], qkv[1], qkv[2]
    return (q * 2.0 + k.exp()) * v


def _grad_graph(fn, shape):
    """The traced graph of a step that returns the gradient of fn at a parameter of `shape`."""
    p = gradc.nn.Parameter(gradc.tensor(_f32(*shape)))

    def step(w):
        (fn(p) * w).sum().backward()
        return p.grad * 1.0

    return _graph(step, _f32(*tuple(fn(p).shape)))


def test_gradient_of_split_parts_is_one_concatenation():
    graph = _grad_graph(_split_qkv, (2, 5, 24))
    assert sum(graph.node(n)["op"] == "pad" for n in graph.op_nodes()) == 3
    assert pads_to_concat(graph) == 1
    assert not any(graph.node(n)["op"] == "pad" for n in graph.op_nodes())
    (cat,) = [n for n in graph.op_nodes() if graph.node(n)["op"] == "concat"]
    assert graph.node(cat)["shape"] == (2, 5, 3, 2, 4)   # written in the order the reshape back reads


def test_pads_that_leave_a_gap_stay_pads():
    graph = _grad_graph(lambda x: x[0:2].exp() + x[3:5] * 2.0, (6, 4))   # rows 2 and 5 get no gradient
    assert sum(graph.node(n)["op"] == "pad" for n in graph.op_nodes()) == 2
    assert pads_to_concat(graph) == 0


def test_split_gradient_equals_eager(backend):
    _check(_split_qkv, (_f32(2, 5, 24),), backend)


def test_gradient_widened_over_trailing_lead_axes_fuses_with_its_user():
    # a max pool's gradient widens g over the window axes, (N, OH, OW, 1, 1, C) -> (N, OH, OW, KH, KW, C):
    # rows of (N, OH, OW) read g inside each row, in the kernel that masks it, with no copy of the widened g
    graph = _grad_graph(lambda x: F.max_pool2d(x, 2), (2, 3, 4, 6))
    fusion = fuse(graph)
    widened = [n for n in graph.op_nodes() if graph.node(n)["op"] == "expand" and graph.node(n)["shape"] == (12, 2, 2, 3)]
    assert widened
    for n in widened:
        gid = graph.node(n).get("group")
        assert gid is not None and any(graph.node(m)["op"] == "where" for m in fusion.groups[gid]["members"])


def test_max_pool_gradient_equals_eager(backend):
    _check(lambda x: F.max_pool2d(x, 2) * 1.5, (_f32(2, 3, 4, 6),), backend)
