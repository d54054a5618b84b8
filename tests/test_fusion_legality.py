"""Fusion legality: a fused group runs over blocks of rows, which is correct only when every member
indexes each of its operands along the loop's rows. An operand broadcast across the rows (an (N, D)
operand of an (N, N, D) result, whose leading extent equals the rows by coincidence) must be read
whole, and a group member read that way splits the group. Checked against PyTorch at block sizes
small enough that every group runs in many blocks."""
import numpy as np
import pytest

import gradc
from gradc.passes.fusion import describe, fuse, reads_rows
from gradc.testing import assert_close

torch = pytest.importorskip("torch")

BLOCKS = ("4096", "65536", "1048576", None)


@pytest.fixture(params=BLOCKS, ids=lambda b: f"block={b or 'measured'}")
def block(request, monkeypatch, tmp_path):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    if request.param is None:
        monkeypatch.delenv("GRADC_BLOCK_BYTES", raising=False)
    else:
        monkeypatch.setenv("GRADC_BLOCK_BYTES", request.param)
    return request.param


def _both(fn, *arrays):
    """fn's value and input gradients (loss = weighted sum) in gradc compiled and in PyTorch."""
    rng = np.random.default_rng(7)
    xs = [gradc.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*[torch.tensor(a, requires_grad=True) for a in arrays])
    w = rng.uniform(-1, 1, tuple(out.shape)).astype(arrays[0].dtype)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    want = fn(*ts)
    (want * torch.tensor(w)).sum().backward()

    def step(*xs):
        y = fn(*xs)
        (y * gradc.tensor(w)).sum().backward()
        return y

    got = gradc.compile(step)(*xs)
    return got, [x.grad for x in xs], want.detach().numpy(), [t.grad.numpy() for t in ts]


def _pairwise(x):
    return ((x.unsqueeze(1) - x) ** 2).sum(-1)


def test_pairwise_squared_distances_match_torch(block):
    x = np.random.default_rng(0).standard_normal((64, 4096)).astype(np.float32)
    got, grads, want, want_grads = _both(_pairwise, x)
    assert_close(got, want, rtol=1e-4, atol=1e-2)
    assert_close(grads[0], want_grads[0], rtol=1e-4, atol=1e-2)


def test_broadcast_member_splits_the_group(block):
    # y is computed inside the loop one block at a time, but (y.unsqueeze(1) - y) reads all of it.
    def f(x):
        y = x.tanh() * 2.0
        return (y.unsqueeze(1) - y).sigmoid().sum(-1)

    x = np.random.default_rng(1).standard_normal((16, 40)).astype(np.float32)
    got, grads, want, want_grads = _both(f, x)
    assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert_close(grads[0], want_grads[0], rtol=1e-5, atol=1e-5)
    graph, _ = gradc.compile(f).trace(gradc.tensor(x))
    text = describe(graph)
    # y is read whole by the subtraction: it is expanded to the (16, 16, 40) rows the subtraction
    # runs over, so the tanh and the sigmoid never share a loop
    groups = [line for line in text.splitlines() if line.startswith("group")]
    assert any("sigmoid" in line for line in groups), text
    assert not any("tanh" in line and "sigmoid" in line for line in groups), text
    assert "expand" in text, text


@pytest.mark.parametrize("shapes", [((6, 1, 5, 8), (5, 8)), ((6, 1, 8), (6, 8)), ((6, 6, 1, 8), (6, 1, 6, 8)),
                                    ((6, 1, 6, 8), (6, 8)), ((1, 6, 8), (6, 6, 8))], ids=str)
def test_leading_axis_broadcasts_in_3d_and_4d(block, shapes):
    def f(a, b):
        c = (a * 1.5 + b).tanh()
        return (c * c.exp()).sum(-1)

    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    got, grads, want, want_grads = _both(f, *arrays)
    assert_close(got, want, rtol=1e-5, atol=1e-5)
    for g, w in zip(grads, want_grads):
        assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_reads_rows_follows_indexing_not_extents():
    x = gradc.randn(8, 16)
    graph, _ = gradc.compile(lambda x: x.unsqueeze(1) - x).trace(x)
    sub = next(n for n in graph.op_nodes() if graph.node(n)["op"] == "sub")
    rs, xin = graph.args(sub)
    assert graph.node(xin)["shape"] == (8, 16) and graph.node(sub)["shape"] == (8, 8, 16)
    assert reads_rows(graph, sub, rs)          # (8, 1, 16): axis 0 is the loop's rows
    assert not reads_rows(graph, sub, xin)     # (8, 16): its axis 0 is the result's axis 1
    fusion = fuse(graph)
    assert any(sub in g["members"] for g in fusion.groups.values())


def test_groups_stay_acyclic_when_a_broadcast_operand_is_refused(block):
    # The backward of (|a| + 0.5) ** tanh(b) with a (2, 1, 1) and b (2,): tanh(b) is broadcast
    # across the rows of a group that also feeds, through a reshape, later users of tanh(b). The
    # cycle check must follow paths through whole groups, not single nodes.
    rng = np.random.default_rng(3)
    a0, b0 = rng.uniform(-2, 2, (2, 1, 1)).astype(np.float32), rng.uniform(-2, 2, (2,)).astype(np.float32)
    w = rng.uniform(-1, 1, (2, 1, 2)).astype(np.float32)
    fn = lambda a, b: (a.abs() + 0.5) ** b.tanh()   # noqa: E731
    a, b = gradc.tensor(a0, requires_grad=True), gradc.tensor(b0, requires_grad=True)
    out = gradc.compile(fn, fullgraph=True)(a, b)
    (out * gradc.tensor(w)).sum().backward()
    ta, tb = torch.tensor(a0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    want = fn(ta, tb)
    (want * torch.tensor(w)).sum().backward()
    assert_close(out, want.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert_close(a.grad, ta.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert_close(b.grad, tb.grad.numpy(), rtol=1e-5, atol=1e-6)
