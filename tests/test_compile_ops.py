"""Every op-database row through the compiler: compiled results and gradients equal eager ones.

Three paths per sample (float32, the dtype models run in):
- forward: `gradc.compile(fn, fullgraph=True)` on inputs that need no grad, against eager;
- whole step: a compiled function runs fn, reduces sum(out * w) with fixed random weights `w`,
  calls `.backward()` inside and returns the gradients (the autodiff pass builds them);
- AOT: a compiled forward on inputs that require grad, then an eager `.backward()` through the
  returned tensors (the backward program built by the AOT split runs).
The reference is always the eager run of the same row on equal fresh inputs. Tolerances are the
row's own; today compiled and eager share kernels and agree bit for bit, the tolerance leaves room
for fusion to reorder float operations."""
import gc

import numpy as np
import pytest

import gradc
from gradc.testing import assert_close

from opdb import case_id, cases

DTYPE = "float32"


@pytest.fixture(autouse=True, scope="module")
def _cache_dir(tmp_path_factory):
    # Each trace ends with gc.collect(); freezing the objects that exist now (the collected test
    # items) keeps those collections small without changing what they find.
    gc.collect()
    gc.freeze()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADC_CACHE_DIR", str(tmp_path_factory.mktemp("gradc_cache")))
        yield
    gc.unfreeze()


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _data_dependent(sample):
    """Samples whose output shape depends on tensor values (boolean-mask indexing): they cannot be
    traced; gradc.compile must say so (fullgraph=True) or run them eagerly (fullgraph=False)."""
    key = sample.kwargs.get("key")
    keys = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, np.ndarray) and k.dtype == np.bool_ for k in keys)


ALL = cases(dtypes=(DTYPE,))
TRACEABLE = [c for c in ALL if not _data_dependent(c[2])]
DATA_DEPENDENT = [c for c in ALL if _data_dependent(c[2])]
GRAD = [c for c in TRACEABLE if c[0].diff_args(c[2])]


def _bound(row, sample):
    return lambda *xs: row.fn(*xs, **sample.kwargs)


def _check_same(compiled, eager, row, what):
    compiled, eager = _as_tuple(compiled), _as_tuple(eager)
    assert len(compiled) == len(eager), f"{what}: {len(compiled)} outputs, eager gives {len(eager)}"
    rtol, atol = row.tolerance(DTYPE)
    for k, (c, e) in enumerate(zip(compiled, eager)):
        assert isinstance(c, gradc.Tensor), f"{what} {k}: {type(c).__name__}, not a Tensor"
        assert c.dtype is e.dtype, f"{what} {k}: dtype {c.dtype!r}, eager {e.dtype!r}"
        assert c.shape == e.shape, f"{what} {k}: shape {c.shape}, eager {e.shape}"
        assert_close(c, e.detach(), rtol=rtol, atol=atol, msg=f"{what} {k}")


@pytest.mark.parametrize("case", TRACEABLE, ids=case_id)
def test_forward_compiled_equals_eager(case):
    row, _, sample, dtype = case
    fn = _bound(row, sample)
    eager = fn(*sample.tensors(dtype))
    compiled_fn = gradc.compile(fn, fullgraph=True)
    out = compiled_fn(*sample.tensors(dtype))
    _check_same(out, eager, row, "output")
    for o in _as_tuple(out):
        assert not o.requires_grad
    # A second call reuses the program and still agrees.
    _check_same(compiled_fn(*sample.tensors(dtype)), eager, row, "output (second call)")
    assert compiled_fn.trace_count == 1


@pytest.mark.parametrize("case", DATA_DEPENDENT, ids=case_id)
def test_data_dependent_shape_is_refused_or_run_eagerly(case):
    row, _, sample, dtype = case
    fn = _bound(row, sample)
    with pytest.raises(gradc.TraceError, match="test_compile_ops.py|opdb.py"):
        gradc.compile(fn, fullgraph=True)(*sample.tensors(dtype))
    eager = fn(*sample.tensors(dtype))
    with pytest.warns(UserWarning, match="eagerly"):
        out = gradc.compile(fn)(*sample.tensors(dtype))
    _check_same(out, eager, row, "eager fallback")


def _weights(outs):
    """Fixed random cotangent weights, one per floating output (None for the others)."""
    rng = np.random.default_rng(1234)
    return [gradc.tensor(rng.uniform(-1.0, 1.0, o.shape).astype(o.dtype.np)) if o.dtype.is_floating_point else None
            for o in outs]


def _weighted_loss(outs, ws):
    loss = None
    for o, w in zip(outs, ws):
        if w is not None and o.requires_grad:
            term = (o * w).sum()
            loss = term if loss is None else loss + term
    return loss


def _eager_grads(row, sample, dtype):
    diff = row.diff_args(sample)
    xs = sample.tensors(dtype, requires_grad=diff)
    outs = _as_tuple(row.fn(*xs, **sample.kwargs))
    ws = _weights(outs)
    loss = _weighted_loss(outs, ws)
    if loss is None:
        return diff, outs, ws, None
    loss.backward()
    return diff, outs, ws, [xs[i].grad for i in diff]


def _check_grads(got, want, row, what):
    rtol, atol = row.tolerance(DTYPE)
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        if w is None:
            assert g is None, f"{what} {k}: eager has no gradient, compiled has one"
            continue
        assert g is not None, f"{what} {k}: compiled produced no gradient"
        assert g.dtype is w.dtype and g.shape == w.shape, f"{what} {k}: {g.dtype}{g.shape} vs {w.dtype}{w.shape}"
        assert_close(g, w, rtol=rtol, atol=atol, msg=f"{what} {k}")


@pytest.mark.parametrize("case", GRAD, ids=case_id)
def test_whole_step_gradients_equal_eager(case):
    row, _, sample, dtype = case
    diff, eager_outs, ws, eager_grads = _eager_grads(row, sample, dtype)
    if eager_grads is None:
        pytest.skip("no floating output depends on a differentiable input")
    n = len(sample.args)

    def step(*args):
        xs, weights = args[:n], args[n:]
        outs = _as_tuple(row.fn(*xs, **sample.kwargs))
        _weighted_loss(outs, weights).backward()
        return tuple(o.detach() for o in outs), tuple(xs[i].grad for i in diff)

    ws_args = tuple(w if w is not None else gradc.zeros(()) for w in ws)
    xs = sample.tensors(dtype, requires_grad=diff)
    compiled = gradc.compile(step, fullgraph=True)
    outs, grads = compiled(*xs, *ws_args)
    _check_same(outs, eager_outs, row, "output")
    _check_grads(grads, eager_grads, row, "returned grad")
    # The gradients were also written to .grad of the (concrete) inputs.
    _check_grads([xs[i].grad for i in diff], eager_grads, row, ".grad")
    prog = compiled.lower(*sample.tensors(dtype, requires_grad=diff), *ws_args)
    assert prog.backward is None  # backward ran inside: one joint program, no eager backward needed


@pytest.mark.parametrize("case", GRAD, ids=case_id)
def test_compiled_forward_eager_backward_equals_eager(case):
    row, _, sample, dtype = case
    diff, eager_outs, ws, eager_grads = _eager_grads(row, sample, dtype)
    if eager_grads is None:
        pytest.skip("no floating output depends on a differentiable input")
    xs = sample.tensors(dtype, requires_grad=diff)
    compiled = gradc.compile(_bound(row, sample), fullgraph=True)
    outs = _as_tuple(compiled(*xs))
    _check_same(outs, eager_outs, row, "output")
    for k, (o, e) in enumerate(zip(outs, eager_outs)):
        assert o.requires_grad == e.requires_grad, f"output {k}: requires_grad differs from eager"
    _weighted_loss(outs, ws).backward()
    _check_grads([xs[i].grad for i in diff], eager_grads, row, "AOT .grad")
