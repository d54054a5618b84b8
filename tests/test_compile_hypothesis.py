"""Random well-typed op graphs, compiled vs eager.

A strategy builds a small program: 1-3 inputs of mutually broadcastable random shapes (up to
4-D), then a few steps, each applying a unary, binary (broadcasting), where, reduction, softmax,
reshape, permute, unsqueeze or pairwise (`x.unsqueeze(1) - x`: a broadcast across the leading
axis) op to values made so far. The program is interpreted twice on equal inputs, eagerly and
under `gradc.compile`; the forward values and the gradients of every input (whole-step:
backward inside the compiled function; and compiled forward + eager backward) must agree with
eager execution. Ops are chosen so values stay bounded (no overflow), so any difference is the
compiler's. Each test runs at the block size measured on this machine and at a tiny one (every
fused group then runs in many blocks of rows); together they check 500 graphs per run."""
import gc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import gradc
from gradc.testing import assert_close

TOL = {"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-12)}


@pytest.fixture(params=[None, "64"], ids=["measured-blocks", "tiny-blocks"])
def blocks(request, monkeypatch):
    if request.param is None:
        monkeypatch.delenv("GRADC_BLOCK_BYTES", raising=False)
    else:
        monkeypatch.setenv("GRADC_BLOCK_BYTES", request.param)
    return request.param


@pytest.fixture(autouse=True, scope="module")
def _env(tmp_path_factory):
    gc.collect()
    gc.freeze()  # keep the gc.collect() each trace runs small
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADC_CACHE_DIR", str(tmp_path_factory.mktemp("gradc_cache")))
        yield
    gc.unfreeze()


UNARY = {
    "neg": lambda x: -x,
    "tanh": gradc.tanh,
    "sigmoid": gradc.sigmoid,
    "sin": gradc.sin,
    "cos": gradc.cos,
    "abs": gradc.abs,
    "relu": gradc.relu,
    "exp_tanh": lambda x: x.tanh().exp(),
    "log1abs": lambda x: (x.abs() + 1.0).log(),
    "sqrt": lambda x: (x.abs() + 0.5).sqrt(),
    "gelu": lambda x: gradc.nn.functional.gelu(x, approximate="tanh"),
    "scale": lambda x: x * 0.5 - 1.0,
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b.tanh(),          # bounded: never grows |a|
    "div": lambda a, b: a / (b.abs() + 1.0),
    "maximum": gradc.maximum,
    "minimum": gradc.minimum,
    "pow": lambda a, b: (a.abs() + 0.5) ** b.tanh(),
    "rsub_scalar": lambda a, b: 2.0 - a * b.sigmoid(),
}


def _broadcast(*shapes):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        return None


@st.composite
def programs(draw):
    """(dtype, input shapes, steps, outputs, seed). A step is (kind, name, operand indices, params);
    value i < n_inputs is input i, later values are step results in order."""
    n_in = draw(st.integers(1, 3))
    shapes = draw(mutually_broadcastable_shapes(num_shapes=n_in, min_dims=0, max_dims=4, min_side=1, max_side=4))
    shapes = list(shapes.input_shapes)
    dtype = draw(st.sampled_from(["float32", "float64"]))
    steps = []
    n_steps = draw(st.integers(1, 6))
    for _ in range(n_steps):
        k = len(shapes)
        kind = draw(st.sampled_from(["unary", "binary", "binary", "where", "reduce", "softmax", "reshape",
                                     "permute", "unsqueeze", "pairwise", "pairwise"]))
        i = draw(st.integers(0, k - 1))
        s = shapes[i]
        if kind in ("binary", "where"):
            partners = [j for j in range(k) if _broadcast(s, shapes[j]) is not None]
            j = draw(st.sampled_from(partners))
            out = _broadcast(s, shapes[j])
            if kind == "binary":
                steps.append(("binary", draw(st.sampled_from(sorted(BINARY))), (i, j), {}))
            else:
                third = [m for m in range(k) if _broadcast(out, shapes[m]) is not None]
                m = draw(st.sampled_from(third))
                out = _broadcast(out, shapes[m])
                steps.append(("where", "where", (i, j, m), {}))
        elif kind == "reduce" and len(s) > 0:
            dims = draw(st.lists(st.integers(0, len(s) - 1), min_size=1, max_size=len(s), unique=True))
            keep = draw(st.booleans())
            name = draw(st.sampled_from(["sum", "mean", "amax"]))
            steps.append(("reduce", name, (i,), {"dim": tuple(dims), "keepdim": keep}))
            out = tuple(1 if d in dims else n for d, n in enumerate(s)) if keep else \
                tuple(n for d, n in enumerate(s) if d not in dims)
        elif kind == "softmax" and len(s) > 0:
            steps.append(("softmax", "softmax", (i,), {"dim": draw(st.integers(-len(s), len(s) - 1))}))
            out = s
        elif kind == "reshape":
            target = draw(st.sampled_from([tuple(reversed(s)), (-1,), (1,) + tuple(s)]))
            steps.append(("reshape", "reshape", (i,), {"shape": target}))
            out = (int(np.prod(s)),) if target == (-1,) else target
        elif kind == "unsqueeze" and len(s) < 4:
            d = draw(st.integers(0, len(s)))
            steps.append(("unsqueeze", "unsqueeze", (i,), {"dim": d}))
            out = tuple(s[:d]) + (1,) + tuple(s[d:])
        elif kind == "pairwise" and 1 <= len(s) <= 3:
            steps.append(("pairwise", draw(st.sampled_from(["sub", "mul"])), (i,), {}))
            out = (s[0],) + tuple(s)
        elif kind == "permute" and len(s) > 1:
            perm = tuple(draw(st.permutations(range(len(s)))))
            steps.append(("permute", "permute", (i,), {"dims": perm}))
            out = tuple(s[p] for p in perm)
        else:
            steps.append(("unary", draw(st.sampled_from(sorted(UNARY))), (i,), {}))
            out = s
        shapes.append(tuple(out))
    n_values = len(shapes)
    extra = draw(st.lists(st.integers(n_in, n_values - 1), max_size=2, unique=True))
    outputs = sorted(set(extra) | {n_values - 1})
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return dtype, shapes[:n_in], steps, outputs, seed


def run_program(steps, outputs, xs):
    values = list(xs)
    for kind, name, idx, params in steps:
        args = [values[i] for i in idx]
        if kind == "unary":
            v = UNARY[name](args[0])
        elif kind == "binary":
            v = BINARY[name](*args)
        elif kind == "where":
            v = gradc.where(args[0] > 0.1, args[1], args[2])
        elif kind == "reduce":
            v = getattr(args[0], name)(params["dim"], keepdim=params["keepdim"])
        elif kind == "softmax":
            v = args[0].softmax(params["dim"])
        elif kind == "reshape":
            v = args[0].reshape(params["shape"])
        elif kind == "unsqueeze":
            v = args[0].unsqueeze(params["dim"])
        elif kind == "pairwise":   # (N, 1, ...) with (N, ...): an operand broadcast across the rows
            a = args[0]
            v = (a.unsqueeze(1) - a) if name == "sub" else (a.unsqueeze(1) * a.tanh())
        else:
            v = args[0].permute(params["dims"])
        values.append(v)
    return tuple(values[i] for i in outputs)


def _inputs(shapes, dtype, seed, requires_grad):
    rng = np.random.default_rng(seed)
    return [gradc.tensor(rng.uniform(-2.0, 2.0, s).astype(dtype), requires_grad=requires_grad) for s in shapes]


def _weights(outs, seed):
    rng = np.random.default_rng(seed + 1)
    return [gradc.tensor(rng.uniform(-1.0, 1.0, o.shape).astype(o.dtype.np)) for o in outs]


def _loss(outs, ws):
    loss = (outs[0] * ws[0]).sum()
    for o, w in zip(outs[1:], ws[1:]):
        loss = loss + (o * w).sum()
    return loss


_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
# 150 forward and 100 gradient programs (two compiled programs each) per block size: 500 graphs.
FORWARD = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=_HEALTH)
GRADIENTS = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=_HEALTH)


@FORWARD
@given(prog=programs())
def test_random_program_forward(blocks, prog):
    dtype, shapes, steps, outputs, seed = prog
    rtol, atol = TOL[dtype]
    eager = run_program(steps, outputs, _inputs(shapes, dtype, seed, False))
    fn = gradc.compile(lambda *xs: run_program(steps, outputs, xs), fullgraph=True)
    got = fn(*_inputs(shapes, dtype, seed, False))
    assert len(got) == len(eager)
    for k, (g, e) in enumerate(zip(got, eager)):
        assert g.shape == e.shape and g.dtype is e.dtype, f"output {k}: {g.dtype}{g.shape} vs {e.dtype}{e.shape}"
        assert_close(g, e, rtol=rtol, atol=atol, msg=f"output {k} of {steps}")


@GRADIENTS
@given(prog=programs())
def test_random_program_gradients(blocks, prog):
    dtype, shapes, steps, outputs, seed = prog
    rtol, atol = TOL[dtype]
    xs = _inputs(shapes, dtype, seed, True)
    eager = run_program(steps, outputs, xs)
    ws = _weights(eager, seed)
    _loss(eager, ws).backward()
    want = [x.grad for x in xs]
    n = len(shapes)

    # Whole step: backward inside the compiled function.
    def step(*args):
        ins, weights = args[:n], args[n:]
        outs = run_program(steps, outputs, ins)
        _loss(outs, weights).backward()
        return [x.grad for x in ins]

    xs1 = _inputs(shapes, dtype, seed, True)
    got = gradc.compile(step, fullgraph=True)(*xs1, *ws)
    # Compiled forward, eager backward.
    xs2 = _inputs(shapes, dtype, seed, True)
    outs2 = gradc.compile(lambda *a: run_program(steps, outputs, a), fullgraph=True)(*xs2)
    for k, (o, e) in enumerate(zip(outs2, eager)):
        assert_close(o, e.detach(), rtol=rtol, atol=atol, msg=f"AOT output {k}")
    _loss(outs2, ws).backward()
    for k, w in enumerate(want):
        # Every input reaches the loss only if some output depends on it.
        if w is None:
            assert got[k] is None and xs2[k].grad is None, f"input {k}: eager has no gradient"
            continue
        assert_close(got[k], w, rtol=rtol, atol=atol, msg=f"whole-step grad of input {k} for {steps}")
        assert_close(xs1[k].grad, w, rtol=rtol, atol=atol, msg=f"whole-step .grad of input {k}")
        assert_close(xs2[k].grad, w, rtol=rtol, atol=atol, msg=f"AOT .grad of input {k} for {steps}")


DYNAMIC = settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=_HEALTH)


@DYNAMIC
@given(prog=programs())
def test_random_program_with_dynamic_sizes(prog):
    """dynamic=True: every size of 2 or more is symbolic. The program then runs at its sizes, at all
    of them one larger (still mutually broadcastable), and at its sizes again; each run must equal
    eager, whether the trace's guards let it reuse the program or made it trace again."""
    dtype, shapes, steps, outputs, seed = prog
    rtol, atol = TOL[dtype]
    grown = [tuple(d + 1 if d >= 2 else d for d in s) for s in shapes]
    fn = gradc.compile(lambda *xs: run_program(steps, outputs, xs), dynamic=True, fullgraph=True)
    for sizes in (shapes, grown, shapes):
        try:
            eager = run_program(steps, outputs, _inputs(sizes, dtype, seed, False))
        except gradc.GradcError:
            continue   # (a reshape to the first sizes' shape does not fit the grown ones)
        got = fn(*_inputs(sizes, dtype, seed, False))
        for k, (g, e) in enumerate(zip(got, eager)):
            assert g.shape == e.shape, f"output {k} at {sizes}: {g.shape} vs {e.shape}"
            assert_close(g, e, rtol=rtol, atol=atol, msg=f"output {k} of {steps} at {sizes}")


def test_strategy_builds_varied_programs():
    """The generator reaches every kind of step and broadcasting between inputs."""
    seen, broadcast, deep = set(), False, False

    @settings(max_examples=300, deadline=None, derandomize=True, database=None)
    @given(programs())
    def collect(prog):
        nonlocal broadcast, deep
        _, shapes, steps, _, _ = prog
        seen.update(kind for kind, *_ in steps)
        broadcast |= len({tuple(s) for s in shapes}) > 1
        deep |= any(len(s) == 4 for s in shapes)

    collect()
    assert seen >= {"unary", "binary", "where", "reduce", "softmax", "reshape", "permute", "unsqueeze",
                    "pairwise"}, seen
    assert broadcast and deep
