"""State of rank >= 3 (convolution weights, their momentum and Adam moments) is updated in place.

The rows pass works on such a state as (rows, last axis), so the program's new value of the state
is a reshape of what the update group writes; the memory plan matches it to the state by that
storage root and the group writes its rows over the state's own memory (no buffer, no copy back).
Every case is checked against eager over several steps, including a state whose strides admit no
reshaped view, and a state whose old value is read after the update (never done in place)."""
import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn, optim

BACKENDS = ["numpy", "c"]
# Backends that update such a state in place (the C backend's kernels would read the state through
# a reshape while writing it, and must first drop `restrict` for parameters sharing memory that way).
IN_PLACE = {"numpy", "c"}
OPTIMIZERS = [(optim.SGD, dict(lr=0.1, momentum=0.9)),
              (optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3)),
              (optim.Adam, dict(lr=0.01)), (optim.AdamW, dict(lr=0.01, weight_decay=0.1))]


class Net(nn.Module):
    """A rank-3 weight (Conv1d) and rank-4 weights (Conv2d) besides rank-1 and rank-2 ones."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(3, 4, 3)
        self.c2 = nn.Conv2d(3, 4, 3, padding=1)
        self.c3 = nn.Conv2d(4, 2, 3)
        self.fc = nn.Linear(4 * 6 + 2 * 4 * 4, 3)

    def forward(self, s, x):
        a = F.relu(self.c1(s)).flatten(1)
        b = self.c3(F.relu(self.c2(x))).flatten(1)
        return self.fc(gradc.cat([a, b], 1))


def _data():
    gradc.manual_seed(1)
    return gradc.randn(2, 3, 8), gradc.randn(2, 3, 6, 6), gradc.randint(0, 3, (2,))


def _run(cls, kw, backend, steps=4, prepare=None, read_old=False):
    gradc.manual_seed(0)
    model = Net()
    if prepare is not None:
        prepare(model)
    opt = cls(model.parameters(), **kw)

    def step(s, x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(s, x), y)
        loss.backward()
        old = model.c2.weight * 1.0   # the weight before the update, read after it
        opt.step()
        if read_old:
            return loss, (old * model.c2.weight).sum()
        return loss
    fn = step if backend is None else gradc.compile(step, backend=backend)
    s, x, y = _data()
    outs = [fn(s, x, y) for _ in range(steps)]
    values = [np.array([o.item() for o in (out if isinstance(out, tuple) else (out,))]) for out in outs]
    state = [p.detach().numpy().copy() for p in model.parameters()]
    for group in opt.state_dict()["state"].values():
        state += [v.numpy().copy() for k, v in sorted(group.items())]
    prog = None if backend is None else fn.lower(s, x, y)
    return values, state, prog, model


def _check_equal(got, ref):
    for a, b in zip(got[0], ref[0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert len(got[1]) == len(ref[1])
    for a, b in zip(got[1], ref[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _tensor_states(prog):
    """Data effects on states that are not 0-d (0-d step counters are written back as scalars)."""
    return [e for e in prog.effects if e.kind == "data" and prog.ir.node(prog.ir.inputs[e.slot])["shape"]]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls,kw", OPTIMIZERS, ids=lambda v: getattr(v, "__name__", ""))
def test_rank3_and_rank4_state_is_updated_in_place_and_equals_eager(cls, kw, backend):
    ref = _run(cls, kw, None)
    got = _run(cls, kw, backend)
    _check_equal(got, ref)
    prog = got[2]
    states = _tensor_states(prog)
    ranks = sorted(len(prog.ir.node(prog.ir.inputs[e.slot])["shape"]) for e in states)
    assert 3 in ranks and 4 in ranks
    low_rank = sum(1 for r in ranks if r < 3)
    assert prog.stats["inplace_state_updates"] == (len(states) if backend in IN_PLACE else low_rank)


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_without_a_reshaped_view_is_still_updated(backend):
    # c2's weight is a transposed array: a reshape of it is a copy, written back into the state
    def prepare(model):
        w = model.c2.weight.detach().numpy()
        model.c2.weight = nn.Parameter(gradc.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 1, 0)).transpose(3, 2, 1, 0)))
        assert not model.c2.weight.detach().numpy().flags.c_contiguous
    kw = dict(lr=0.1, momentum=0.9)
    ref = _run(optim.SGD, kw, None, prepare=prepare)
    got = _run(optim.SGD, kw, backend, prepare=prepare)
    _check_equal(got, ref)
    assert not got[3].c2.weight.detach().numpy().flags.c_contiguous   # still the user's array


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls,kw", OPTIMIZERS[::2], ids=lambda v: getattr(v, "__name__", ""))
def test_state_read_after_its_update_is_not_overwritten_early(cls, kw, backend):
    ref = _run(cls, kw, None, read_old=True)
    got = _run(cls, kw, backend, read_old=True)
    _check_equal(got, ref)
    prog = got[2]
    # the weight whose old value is read after the update keeps its own storage until then; every
    # other tensor state (its momentum or moments included) is updated in place
    if backend in IN_PLACE:
        assert prog.stats["inplace_state_updates"] == len(_tensor_states(prog)) - 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_update_reading_a_transpose_of_itself_in_small_blocks(backend, monkeypatch):
    # rows of the transpose are not rows of the state: writing the state block by block while
    # reading its transpose would read rows already overwritten
    monkeypatch.setenv("GRADC_BLOCK_BYTES", "64")
    gradc.manual_seed(0)
    w = nn.Parameter(gradc.randn(4, 8, 8))
    ref = w.detach().numpy().copy()

    def step():
        with gradc.no_grad():
            w.sub_(0.1 * w.transpose(1, 2))
            w.mul_(0.5)
        return w.sum()
    fn = gradc.compile(step, backend=backend)
    for _ in range(3):
        fn()
        ref = (ref - np.float32(0.1) * ref.transpose(0, 2, 1)) * np.float32(0.5)
    np.testing.assert_allclose(w.detach().numpy(), ref, rtol=1e-6, atol=1e-7)
