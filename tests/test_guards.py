"""Sound guards: every Python value that shaped a trace is guarded, so a change traces again instead
of running a stale program; compiled results are compared with eager results after each change.
Also: wrong arguments to a loaded Program, and compiling what is already compiled."""
import dataclasses
import functools
import warnings

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn, optim
from gradc.errors import DTypeError, GradcError, ShapeError

SCALE = 1.0
FACTOR = gradc.ones(4)
CONFIG = {"k": 2.0}
LOG = []


def _x(*shape, seed=0):
    return gradc.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def scaled(x):
    return x * SCALE


def with_factor(x):
    return x * FACTOR


def with_config(x):
    return x * CONFIG["k"]


def logging_step(x):
    LOG.append(1)  # written by the function: an output, not an input that shapes the graph
    return x * 2.0


def test_global_float_is_guarded():
    global SCALE
    cf, x = gradc.compile(scaled), _x(4)
    np.testing.assert_allclose(cf(x).numpy(), x.numpy())
    SCALE = 0.25
    try:
        np.testing.assert_allclose(cf(x).numpy(), x.numpy() * 0.25)  # eager: the new value
        assert cf.trace_count == 2
        cf(x)
        assert cf.trace_count == 2   # unchanged since: the second program is reused
    finally:
        SCALE = 1.0


def test_rebound_global_tensor_is_guarded():
    global FACTOR
    cf, x = gradc.compile(with_factor), _x(4)
    cf(x)
    old, FACTOR = FACTOR, gradc.full((4,), 3.0)
    try:
        np.testing.assert_allclose(cf(x).numpy(), x.numpy() * 3.0)
        assert "global FACTOR" in cf.recompile_reasons[-1]
    finally:
        FACTOR = old


def test_dict_value_is_guarded():
    cf, x = gradc.compile(with_config), _x(4)
    cf(x)
    CONFIG["k"] = 5.0
    try:
        np.testing.assert_allclose(cf(x).numpy(), x.numpy() * 5.0)
        assert "global CONFIG" in cf.recompile_reasons[-1]
    finally:
        CONFIG["k"] = 2.0


def test_closure_cell_is_guarded():
    factor = 2.0

    def f(x):
        return x * factor

    cf, x = gradc.compile(f), _x(3)
    np.testing.assert_allclose(cf(x).numpy(), x.numpy() * 2.0)
    factor = 7.0  # rebinds the cell f reads
    np.testing.assert_allclose(cf(x).numpy(), x.numpy() * 7.0)
    assert cf.recompile_reasons == ["closure variable factor: 2.0 -> 7.0"]


def test_container_the_function_writes_does_not_retrace():
    cf, x = gradc.compile(logging_step), _x(3)
    for _ in range(3):
        cf(x)
        logging_step(x)  # eager calls append too
    assert cf.trace_count == 1


data = gradc.ones(3)   # a global named like the attribute read below (w.data)


def test_an_attribute_named_like_a_global_is_no_read_of_it():
    global data
    w = gradc.ones(3, requires_grad=True)

    @gradc.compile
    def step(x):
        loss = (w * x).sum()
        loss.backward()
        w.data.sub_(0.1 * w.grad)
        w.grad.zero_()
        return loss

    for i in range(4):
        data = gradc.ones(3) * i   # rebinding the global `data` is no reason to trace again
        step(gradc.full((3,), 2.0))
    assert w.tolist() == pytest.approx([1 - 0.8] * 3)   # hand-computed: four steps of 0.1 * 2
    assert step.trace_count == 2   # the first .grad was None, then it is zeroed: one retrace, named
    assert len(step.recompile_reasons) == 1
    assert ".grad: None when traced, a tensor now" in step.recompile_reasons[0]


def test_a_module_attribute_written_by_an_abandoned_trace_is_taken_back():
    class Masked(nn.Module):   # caches a mask in forward, as attention code does
        def __init__(self):
            super().__init__()
            self.lin, self.mask = nn.Linear(4, 4), None

        def forward(self, x):
            if self.mask is None or self.mask.size(0) != x.size(0):
                self.mask = gradc.tril(gradc.ones(x.size(0), x.size(0)))
            return self.lin(self.mask @ x)

    gradc.manual_seed(0)
    m, x = Masked(), gradc.randn(3, 4)
    # `scale != 1` uses the float as a number: the first trace is abandoned and traced again
    f = gradc.compile(lambda x, scale: m(x).sum() * (2 if scale != 1 else 1))
    for scale in (1.0, 0.5, 0.5):
        expected = m(x).sum().item() * (2 if scale != 1 else 1)
        assert f(x, scale).item() == pytest.approx(expected, rel=1e-6)


def test_dropout_p_is_guarded():
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5))
    cf, x = gradc.compile(model), _x(16, 8)
    cf(x)
    model[1].p = 0.0  # no dropout: compiled must equal the deterministic eager result
    np.testing.assert_allclose(cf(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-6)
    assert "self.1.p: 0.5 -> 0.0" in cf.recompile_reasons[-1]


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.factor = 1.5

    def forward(self, x):
        return self.lin(x) * self.factor


def test_float_module_attribute_and_eps_are_guarded():
    model, x = Scaled(), _x(2, 4)
    cf = gradc.compile(model)
    cf(x)
    model.factor = -2.0
    np.testing.assert_allclose(cf(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-6)
    assert "self.factor: 1.5 -> -2.0" in cf.recompile_reasons[-1]
    ln = nn.LayerNorm(4)
    cl = gradc.compile(ln)
    cl(x)
    ln.eps = 0.5
    np.testing.assert_allclose(cl(x).detach().numpy(), ln(x).detach().numpy(), rtol=1e-6)
    assert cl.trace_count == 2


def test_guard_cost_is_small():
    """The per-call cost of the guards of a program that reads globals and module attributes."""
    import time
    model, x = Scaled(), _x(2, 4)
    cf = gradc.compile(lambda x: model(x) * SCALE * CONFIG["k"])
    cf(x)
    prog = next(iter(cf._programs.values()))[0]
    flat = [x]
    best = min(_timed(prog.guards_hold, flat) for _ in range(5))
    assert best < 20e-6, f"guards take {best * 1e6:.1f} us per call"


def _timed(fn, arg, n=200):
    import time
    t = time.perf_counter()
    for _ in range(n):
        assert fn(arg)
    return (time.perf_counter() - t) / n


# ---------------------------------------------------------------------------- compiled of compiled
def _step_parts():
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return model, step


def test_a_module_list_attribute_changed_in_place_is_guarded():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scales = [2.0]

        def forward(self, x):
            return x * self.scales[0]
    m = Scaled()
    cm = gradc.compile(m)
    x = _x(2)
    cm(x)
    cm(x)
    m.scales[0] = 3.0   # no assignment to the module: only the list's contents change
    np.testing.assert_allclose(cm(x).numpy(), x.numpy() * 3.0)
    assert cm.trace_count == 2


GC_TICKS = 0


def _gc_ticker(phase, info):
    global GC_TICKS
    GC_TICKS += 1   # a library's gc callback: runs mid-trace, but is not the traced program


def test_reads_of_a_gc_callback_are_not_guarded():
    import gc
    def churn(x):
        for _ in range(3):
            gc.collect()
        return x * 2.0
    gc.callbacks.insert(0, _gc_ticker)
    try:
        fn = gradc.compile(churn)
        x = _x(4)
        for _ in range(3):
            np.testing.assert_allclose(fn(x).numpy(), x.numpy() * 2.0)
        assert GC_TICKS > 0 and fn.trace_count == 1, fn.recompile_reasons
    finally:
        gc.callbacks.remove(_gc_ticker)
    assert _gc_ticker not in gc.callbacks and len([c for c in gc.callbacks if "Reads" in repr(c)]) == 0


def test_compile_of_compiled_equals_eager():
    x, y = _x(5, 8), gradc.tensor(np.array([0, 1, 2, 3, 0]))
    m_e, step_e = _step_parts()
    m_c, step_c = _step_parts()
    twice = gradc.compile(gradc.compile(step_c))
    for _ in range(3):
        np.testing.assert_allclose(twice(x, y).item(), step_e(x, y).item(), rtol=1e-5)
    for a, b in zip(m_e.parameters(), m_c.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert twice.trace_count <= 2


def test_amp_compile_of_compiled_step_runs():
    x, y = _x(5, 8), gradc.tensor(np.array([0, 1, 2, 3, 0]))
    _, step = _step_parts()
    compiled = gradc.compile(step)
    compiled(x, y)
    amp = gradc.compile(compiled, amp="fp16")
    assert amp.amp == "fp16" and amp.fn is step
    losses = [amp(x, y).item() for _ in range(3)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_compiled_function_called_inside_a_trace_is_inlined():
    inner = gradc.compile(lambda t: t.tanh() * 2.0)
    outer = gradc.compile(lambda t: inner(t) + 1.0)
    x = _x(3)
    np.testing.assert_allclose(outer(x).numpy(), np.tanh(x.numpy()) * 2 + 1, rtol=1e-6)
    assert inner.trace_count == 0  # traced as part of outer, never on its own


# ---------------------------------------------------------------------------- loaded programs
def test_wrong_arguments_to_a_loaded_program(tmp_path):
    model = nn.Linear(4, 2)
    x = _x(3, 4)
    path = tmp_path / "m.gradc"
    gradc.export(model, x).save(path)
    prog = gradc.load(path)
    np.testing.assert_allclose(prog(x).numpy(), model(x).detach().numpy(), rtol=1e-5)
    with pytest.raises(GradcError, match=r"takes 1 tensor argument.*got 2"):
        prog(x, x)
    with pytest.raises(ShapeError, match=r"argument .*compiled for float32\[3, 4\], got float32\[5, 4\]"):
        prog(_x(5, 4))
    with pytest.raises(DTypeError, match=r"float32\[3, 4\].*got float64"):
        prog(x.double())
    with pytest.raises(GradcError, match=r"numpy.ndarray, not a gradc Tensor"):
        prog(x.numpy())


def test_read_only_numpy_parameter_in_a_compiled_update():
    from gradc.runtime.program import ReadOnlyTensorError
    frozen = np.ones((2, 3), dtype=np.float32)
    frozen.setflags(write=False)
    model = nn.Linear(3, 2)
    model.weight = nn.Parameter(gradc.from_numpy(frozen))
    opt = optim.SGD(model.parameters(), lr=0.1)

    def step(x):
        opt.zero_grad()
        loss = model(x).sum()
        loss.backward()
        opt.step()
        return loss
    cf = gradc.compile(step)
    with pytest.raises(ReadOnlyTensorError, match="read-only.*writable copy"):
        for _ in range(2):
            cf(gradc.ones(1, 3))
    np.testing.assert_array_equal(frozen, 1.0)  # nothing was written


def test_python_and_numpy_random_draws_are_never_frozen_into_a_program():
    import random

    def step(x):   # mixup's lambda and a teacher-forcing coin, as training scripts draw them
        lam = np.random.beta(1.0, 1.0)
        return x * lam if random.random() < 0.5 else x * -lam

    np.random.seed(0)
    random.seed(0)
    eager = [step(gradc.ones(1)).item() for _ in range(5)]
    np.random.seed(0)
    random.seed(0)
    compiled = gradc.compile(step)
    with pytest.warns(UserWarning, match=r"numpy.random.beta\(\) was called while gradc.compile traced"):
        got = [compiled(gradc.ones(1)).item() for _ in range(5)]
    assert got == eager and len(set(got)) == 5
    assert "RandomState" in repr(np.random.beta)   # the real functions are back after the trace
    with pytest.raises(gradc.TraceError, match="frozen into the program"):
        gradc.compile(lambda x: x * random.random(), fullgraph=True)(gradc.ones(1))


# ------------------------------------------------------------------ what a compiled call reaches indirectly
class _Cfg:
    pass


def test_modules_reached_through_arguments_and_containers_are_guarded():
    net = gradc.nn.Sequential(gradc.nn.Linear(4, 4), gradc.nn.Dropout(0.5))
    f = gradc.compile(lambda model, x: model(x))
    x = gradc.ones(2, 4)
    f(net, x)
    net.eval()   # dropout off: two calls agree
    assert (f(net, x) == f(net, x)).all()
    net[0].weight = gradc.nn.Parameter(gradc.zeros(4, 4))
    assert f(net, x).tolist() == [net[0].bias.tolist()] * 2
    assert any("weight replaced" in r for r in f.recompile_reasons)
    m = gradc.nn.Sequential(gradc.nn.Identity(), gradc.nn.ReLU())
    cm = gradc.compile(m)
    v = gradc.tensor([-1.0, 1.0])
    assert cm(v).tolist() == [0.0, 1.0]
    m[1] = gradc.nn.Tanh()   # a submodule without parameters swapped in
    np.testing.assert_allclose(cm(v).numpy(), np.tanh([-1.0, 1.0]), rtol=1e-6)


def test_python_state_read_through_objects_defaults_and_helpers_is_guarded():
    x = gradc.ones(2)
    c = _Cfg()
    c.w, c.k, c.opt = gradc.tensor([2.0, 2.0]), 1, _Cfg()
    c.opt.s = 1.0
    f = gradc.compile(lambda x, c: x * c.w + c.k * c.opt.s)
    assert f(x, c).tolist() == [3.0, 3.0]
    c.w = gradc.tensor([5.0, 5.0])
    assert f(x, c).tolist() == [6.0, 6.0]
    c.opt.s = 100.0
    assert f(x, c).tolist() == [105.0, 105.0]

    class Trainer:
        def __init__(self):
            self.k, self.calls = 1.0, 0

        def step(self, x):
            return x * self.k
    t = Trainer()
    step = gradc.compile(t.step)
    assert step(x).tolist() == [1.0, 1.0]
    t.calls += 1   # an attribute the method does not read: no retrace
    t.k = 3.0
    assert step(x).tolist() == [3.0, 3.0] and step.trace_count == 2

    def outer():
        scale = 1.0

        def helper(v):
            return v * scale

        g = gradc.compile(lambda v: helper(v) + 1)
        first = g(x).tolist()
        scale = 5.0
        return first, g(x).tolist()
    assert outer() == ([2.0, 2.0], [6.0, 6.0])

    def with_default(v, w=[2.0]):
        return v * w[0]
    d = gradc.compile(with_default)
    assert d(x).tolist() == [2.0, 2.0]
    with_default.__defaults__[0][0] = 7.0
    assert d(x).tolist() == [7.0, 7.0]
    p = functools.partial(lambda v, k: v + k, k=1)
    cp = gradc.compile(p)
    assert cp(x).tolist() == [2.0, 2.0]
    p.keywords["k"] = 5
    assert cp(x).tolist() == [6.0, 6.0]
    mask = np.array([1.0, 2.0], dtype=np.float32)
    h = gradc.compile(lambda v: v * gradc.tensor(mask))
    assert h(x).tolist() == [1.0, 2.0]
    mask[0] = 100.0
    assert h(x).tolist() == [100.0, 2.0]

    class Scaled(gradc.nn.Module):
        SCALE = 1.0

        def forward(self, v):
            return v * self.SCALE
    s = gradc.compile(Scaled())
    assert s(x).tolist() == [1.0, 1.0]
    Scaled.SCALE = 3.0
    assert s(x).tolist() == [3.0, 3.0]


def test_dataclasses_are_pytrees_and_a_size_can_be_returned():
    @dataclasses.dataclass
    class Batch:
        x: object
        y: object

    @dataclasses.dataclass(frozen=True)
    class Out:
        loss: object
        shape: object
    f = gradc.compile(lambda b: Out((b.x * b.y).sum(), b.x.shape))
    outs = [f(Batch(gradc.ones(2) * i, gradc.ones(2))) for i in range(3)]
    assert [o.loss.item() for o in outs] == [0.0, 2.0, 4.0] and f.trace_count == 1
    assert outs[0].shape == gradc.Size([2]) and isinstance(outs[0].shape, gradc.Size)


def test_state_the_traced_call_changes_is_guarded_as_it_was_before_the_call():
    # a counter the function increments: each call must see (and make) its own change, as eagerly
    class Counter:
        t = 0
    box, table = Counter(), {"step": 0}

    def f(x):
        box.t += 1
        table["step"] += 1
        return x * box.t + table["step"]

    class Stepper(nn.Module):
        def __init__(self):
            super().__init__()
            self.t, self.lin = 0, nn.Linear(1, 1)

        def forward(self, x):
            self.t += 1
            return x * self.t
    cf, m = gradc.compile(f), Stepper()
    cm = gradc.compile(m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # (each call traces again, up to the cache limit)
        assert [cf(gradc.ones(1)).item() for _ in range(3)] == [2.0, 4.0, 6.0]
        assert [cm(gradc.ones(1)).item() for _ in range(3)] == [1.0, 2.0, 3.0]
    assert (box.t, table["step"], m.t) == (3, 3, 3)


def test_augmented_data_update_inside_a_compiled_step():
    # the yunjey/pytorch-tutorial habit: W.data += -lr * W.grad, traced with the rest of the step
    def run(compiled):
        gradc.manual_seed(0)
        w = gradc.randn(3, 2, requires_grad=True)

        def step(x):
            loss = (x @ w).pow(2).sum()
            loss.backward()
            w.data += -0.1 * w.grad
            w.grad.zero_()
            return loss
        fn = gradc.compile(step) if compiled else step
        return [fn(gradc.ones(1, 3)).item() for _ in range(3)], w.detach().numpy()
    (eager, w_eager), (compiled, w_compiled) = run(False), run(True)
    np.testing.assert_allclose(compiled, eager, rtol=1e-6)
    np.testing.assert_allclose(w_compiled, w_eager, rtol=1e-6)


def test_draws_from_a_random_generator_object_are_fresh_each_call():
    import random
    for make, draw in ((lambda: np.random.default_rng(0), lambda g: float(g.random())),
                       (lambda: np.random.RandomState(0), lambda g: float(g.rand())),
                       (lambda: random.Random(0), lambda g: g.random())):
        g, ref = make(), make()
        fn = gradc.compile(lambda x: x * draw(g))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # (each call traces again, up to the cache limit)
            got = [fn(gradc.ones(1)).item() for _ in range(3)]
        np.testing.assert_allclose(got, [draw(ref) for _ in range(3)], rtol=1e-6)


def test_lists_a_module_keeps_for_the_training_loop_do_not_retrace():
    # pytorch/examples' reinforce: policy.rewards and saved_log_probs grow between calls, unread by forward
    class Policy(nn.Module):
        def __init__(self):
            super().__init__()
            self.affine, self.rewards, self.saved, self.scale = nn.Linear(4, 2), [], [], 1.0

        def forward(self, x):
            return gradc.softmax(self.affine(x) * self.scale, -1)
    policy = Policy()
    compiled = gradc.compile(policy)
    for _ in range(5):
        compiled(gradc.ones(1, 4))
        policy.rewards.append(1.0)
        policy.saved.append(gradc.ones(1))
    assert compiled.trace_count == 1
    policy.scale = 2.0   # what forward reads is still guarded
    np.testing.assert_allclose(compiled(gradc.ones(1, 4)).detach().numpy(), policy(gradc.ones(1, 4)).detach().numpy())
    assert compiled.trace_count == 2
