"""CUDA graphs of compiled programs (gradc/runtime/cuda_graphs.py), on the CuPy stand-in's model of
streams and graphs: nothing runs while a stream captures, a replay runs what was captured, a
program that reads a device value cannot be captured."""
import numpy as np
import pytest

import strict_cupy as sc
import gradc
from gradc.runtime import cuda, cuda_graphs
from gradc.testing import assert_close

cp = sc.MODULE


def _program():
    """A host function shaped like a generated one: a fresh result, a state updated in place,
    every kernel enqueued on the current stream."""
    ran = []

    def k_step(x, state, out):
        ran.append("step")
        state._a[...] = state._a + x._a       # in place, as an optimizer's update
        out._a[...] = state._a * 2.0

    def run(x, state):
        out = sc.StrictArray(np.empty(x.shape, dtype=np.float32))   # allocated inside the call
        sc.launch(k_step, x, state, out)
        return out, state
    return run, ran


def _arrays():
    return (sc.StrictArray(np.arange(4, dtype=np.float32)), sc.StrictArray(np.zeros(4, dtype=np.float32)))


def test_steady_state_call_is_captured_and_replayed():
    run, ran = _program()
    g = cuda_graphs.GraphRunner(run, cp)
    x, state = _arrays()
    results = [g(x, state) for _ in range(4)]
    # call 1 warms up; call 2 is captured (nothing runs during the capture) and launched once;
    # calls 3 and 4 replay it: one step per call, as without graphs
    assert ran == ["step"] * 4 and g.replays == 3 and g.graph.launches == 3
    np.testing.assert_array_equal(state._a, 4 * np.arange(4))
    outs = [r[0]._a for r in results]
    for k, o in enumerate(outs, 1):   # each call's result is its own array, not overwritten later
        np.testing.assert_array_equal(o, 2 * k * np.arange(4))
    assert results[3][1] is state   # a result that is an argument (in-place state) is that argument


def test_other_addresses_run_uncaptured_and_repeated_misses_stop_capturing():
    run, ran = _program()
    g = cuda_graphs.GraphRunner(run, cp)
    x, state = _arrays()
    g(x, state)
    g(x, state)
    assert g.graph is not None and g.replays == 1
    for n in range(cuda_graphs.MAX_MISSES):
        x2 = sc.StrictArray(np.arange(4, dtype=np.float32))
        g(x2, state)
    assert g.replays == 1 and g.disabled and "address" in g.disabled
    assert len(ran) == 2 + cuda_graphs.MAX_MISSES


def test_a_program_that_reads_a_device_value_runs_uncaptured():
    def run(x):
        if float(x.sum()) > 0:   # host code reading the device: not capturable
            out = x * 2.0
        else:
            out = x
        return (out,)
    g = cuda_graphs.GraphRunner(run, cp)
    x = sc.StrictArray(np.ones(3, dtype=np.float32))
    outs = [g(x)[0]._a for _ in range(3)]
    assert g.graph is None and "capture failed" in g.disabled and not sc.capturing()
    for o in outs:
        np.testing.assert_array_equal(o, 2 * np.ones(3))


def test_graphs_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("GRADC_CUDA_GRAPHS", "0")
    assert not cuda_graphs.enabled()
    monkeypatch.setenv("GRADC_CUDA_GRAPHS", "1")
    assert cuda_graphs.enabled()
    monkeypatch.delenv("GRADC_CUDA_GRAPHS")
    assert cuda_graphs.enabled()


def test_loading_a_program_wraps_its_entry_unless_turned_off(monkeypatch):
    class _Host:
        @staticmethod
        def make(consts, module, sizes=None):
            return lambda *a: a
    monkeypatch.setattr(cuda, "compile_module", lambda src: None)
    monkeypatch.setattr(cuda.cache, "load_module", lambda src: _Host)
    monkeypatch.setattr(cuda, "cupy_module", lambda: cp)
    assert isinstance(cuda.load("", "", {}), cuda_graphs.GraphRunner)
    _Host.K_add = object()   # an ordinary host op: still captured
    assert isinstance(cuda.load("", "", {}), cuda_graphs.GraphRunner)
    _Host.K_all_reduce = object()   # a collective talks to the other ranks on every call: never captured
    assert not isinstance(cuda.load("", "", {}), cuda_graphs.GraphRunner)
    del _Host.K_all_reduce
    with cuda_graphs.preferred(False):   # gradc.compile(..., mode="max-autotune-no-cudagraphs")
        assert not isinstance(cuda.load("", "", {}), cuda_graphs.GraphRunner)
    monkeypatch.setenv("GRADC_CUDA_GRAPHS", "0")
    assert not isinstance(cuda.load("", "", {}), cuda_graphs.GraphRunner)
    with cuda_graphs.preferred(True):    # mode="reduce-overhead"
        assert isinstance(cuda.load("", "", {}), cuda_graphs.GraphRunner)


@pytest.mark.parametrize("mode, graphs", [("reduce-overhead", True), ("max-autotune-no-cudagraphs", False),
                                          ("default", None), ("max-autotune", None)])
def test_torch_compile_modes_choose_graph_capture_for_the_programs_a_call_loads(mode, graphs):
    seen = []
    f = gradc.compile(lambda x: seen.append(cuda_graphs.preference()) or x * 2, mode=mode)
    assert f(gradc.ones(2)).tolist() == [2.0, 2.0] and seen == [graphs]
    assert cuda_graphs.preference() is None   # only for that call
    with pytest.raises(gradc.GradcError, match="unknown mode"):
        gradc.compile(lambda x: x, mode="fastest")


def test_torch_compile_backends_and_disable_are_understood():
    m = gradc.nn.Linear(3, 2)
    assert gradc.compile(m, disable=True) is m
    for name, ours in (("inductor", "auto"), ("eager", "numpy"), ("aot_eager", "numpy")):
        c = gradc.compile(m, backend=name)
        assert c._compiled.backend == ours
        assert_close(c(gradc.ones(1, 3)), m(gradc.ones(1, 3)))


@pytest.mark.parametrize("what", ["synchronize", "item"])
def test_the_stand_in_refuses_what_a_capture_refuses(what):
    s = cp.cuda.Stream(non_blocking=True)
    a = sc.StrictArray(np.ones(2, dtype=np.float32))
    with s:
        s.begin_capture()
        with pytest.raises(sc.StreamCaptureError):
            s.synchronize() if what == "synchronize" else a.sum().item()
        s.end_capture()


def test_float_arguments_and_random_draws_keep_their_addresses():
    """A CUDA program's float arguments and random draws are copied into buffers it keeps, so that
    the arguments of every call have the same addresses and a captured graph replays."""
    from gradc import dtypes as D
    from gradc.runtime import wiring
    from gradc.tensor import Tensor

    class Dev:   # a device whose array module is the CuPy stand-in
        type, xp = "cuda", cp
    x = Tensor._wrap(sc.StrictArray(np.ones(3, dtype=np.float32)), D.float32, Dev())
    bindings = [wiring.Binding("arg", 0), wiring.Binding("number", 1), wiring.Binding("number", 2),
                wiring.Binding("random", ("randn", (4,), "float32", 0.0, 1.0))]
    staged, keys, values = {}, [], []
    for lr in (0.1, 0.2, 0.3):
        tensors = wiring.resolve(bindings, [x, lr, 2 * lr], staged)
        arrays = [t._data for t in tensors]
        keys.append(cuda_graphs._key(arrays))
        values.append([float(a.get()) for a in arrays[1:3]] + [arrays[3].get().copy()])
    assert keys[0] == keys[1] == keys[2]
    assert [v[:2] for v in values] == [[0.1, 0.2], [0.2, 0.4], [0.3, 0.6]]
    assert not np.array_equal(values[0][2], values[1][2])   # a fresh draw each call, in the same buffer
    # both float arguments live in one block: one host-to-device copy per call
    assert arrays[2].data.ptr - arrays[1].data.ptr == 8
