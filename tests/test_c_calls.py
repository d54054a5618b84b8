"""How a C program calls its kernels: consecutive kernels run as one call of an entry function,
planned buffers' addresses are taken once when the program is made, inputs' and state's on each
call (again whenever the array is another object). Each test replaces or reshuffles storage between
calls and compares every step with the same steps run eagerly, so an address kept too long shows."""
import sys

import numpy as np
import pytest

import gradc
from gradc import nn, optim
import gradc.nn.functional as F
from gradc.runtime import native

pytestmark = pytest.mark.skipif(not native.available(), reason=f"backend c: {native.c_status()}")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path / "cache"))


def _setup(seed=0, momentum=0.9):
    gradc.manual_seed(seed)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=momentum)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return model, opt, step


def _data(n=8):
    rng = np.random.default_rng(1)
    return (gradc.from_numpy(rng.standard_normal((n, 12), dtype=np.float32)),
            gradc.from_numpy(rng.integers(0, 3, size=n)))


def _params(model):
    return [p.detach().numpy().copy() for p in model.parameters()]


def _check(between, calls=5):
    """Train a compiled and an eager copy side by side, calling between(model, opt, i) on both
    after each step; losses and parameters must agree at every step."""
    m_e, o_e, s_e = _setup()
    m_c, o_c, s_c = _setup()
    s_c = gradc.compile(s_c, backend="c")
    x, y = _data()
    for i in range(calls):
        le, lc = s_e(x, y).item(), s_c(x, y).item()
        np.testing.assert_allclose(lc, le, rtol=1e-5, atol=1e-6, err_msg=f"loss, step {i}")
        for pe, pc in zip(_params(m_e), _params(m_c)):
            np.testing.assert_allclose(pc, pe, rtol=1e-5, atol=1e-6, err_msg=f"parameters, step {i}")
        between(m_e, o_e, i)
        between(m_c, o_c, i)
    return s_c


def test_optimizer_updates_run_as_one_call_of_several_kernels():
    s_c = _check(lambda m, o, i: None)
    prog = s_c.lower(*_data())
    c_src, host = prog.source["program.c"], prog.source["host.py"]
    entries = [blk for blk in c_src.split("void r")[1:] if "(void* const* a)" in blk]
    assert any(blk.split("}")[0].count("(a[") >= 2 for blk in entries), c_src[-2000:]
    # one ctypes call per run: fewer calls on the fast path than kernels
    assert host.count("(Pr") < len(prog.stats["c_kernels"])


def test_eager_steps_between_compiled_ones_swap_the_parameter_arrays():
    """An eager optimizer step lays the parameters out as views of one flat buffer (new arrays in
    the same Parameters): the compiled step after it must update those, not the old arrays."""
    x, y = _data()

    def between(model, opt, i):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()   # eager
    _check(between)


def _replace_arrays(model, i, strided):
    """Give each weight a new array (what the optimizer's flat buffers do to parameters); a strided
    one is a transposed array of the same shape (not C-contiguous)."""
    for k, lin in enumerate((model[0], model[2])):
        rng = np.random.default_rng(100 + 10 * i + k)
        shape = lin.weight.shape
        fresh = rng.standard_normal(shape[::-1] if strided else shape).astype(np.float32) * 0.3
        lin.weight._data = fresh.T if strided else fresh
        assert lin.weight._data.flags.c_contiguous is not strided


def test_parameter_arrays_replaced_between_calls():
    _check(lambda model, opt, i: _replace_arrays(model, i, strided=False))


def test_parameter_arrays_replaced_by_strided_views():
    """Read through a contiguous copy, updated in place through a stand-in written back."""
    _check(lambda model, opt, i: _replace_arrays(model, i, strided=True))


def test_load_state_dict_between_calls():
    def between(model, opt, i):
        model.load_state_dict({k: gradc.from_numpy(v.numpy() * 0.5 + 0.01) for k, v in model.state_dict().items()})
    _check(between)


def test_two_programs_with_the_same_kernels_keep_their_own_buffers():
    """Identical models compile to one shared object; each program's addresses are its own."""
    (ma, _, sa), (mb, _, sb) = _setup(0), _setup(3)
    (me, _, se), (mf, _, sf) = _setup(0), _setup(3)
    sa, sb = gradc.compile(sa, backend="c"), gradc.compile(sb, backend="c")
    x, y = _data()
    for i in range(4):
        for comp, eag in ((sa, se), (sb, sf)):
            np.testing.assert_allclose(comp(x, y).item(), eag(x, y).item(), rtol=1e-5, atol=1e-6)
    for pa, pe in zip(_params(ma) + _params(mb), _params(me) + _params(mf)):
        np.testing.assert_allclose(pa, pe, rtol=1e-5, atol=1e-6)


def test_program_remade_and_run_under_a_tracer():
    """Program.replace makes its buffers again; under sys.settrace (the profiler) kernels run one
    call each: every way gives the eager values."""
    m_e, _, s_e = _setup(momentum=0)
    m_c, _, s_c = _setup(momentum=0)
    x, y = _data()
    prog = gradc.compile(s_c, backend="c").lower(x, y)
    want = s_e(x, y).item()
    s_c_again = prog.replace()
    m_c_params = list(m_c.parameters())
    got = s_c_again(x, y)
    np.testing.assert_allclose(got.item(), want, rtol=1e-5, atol=1e-6)
    old = sys.gettrace()
    sys.settrace(lambda *a: None)
    try:
        want2 = s_e(x, y).item()
        got2 = prog(x, y).item()
    finally:
        sys.settrace(old)
    np.testing.assert_allclose(got2, want2, rtol=1e-5, atol=1e-6)
    for pc, pe in zip(m_c_params, m_e.parameters()):
        np.testing.assert_allclose(pc.detach().numpy(), pe.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_single_row_ops_run_in_c_and_results_are_never_reused_buffers():
    """Batch-one elementwise ops (outside every group) become C kernels writing buffers made with
    the program; values that leave the call (returned, or returned through a view) keep their own
    arrays, so a later call never changes an earlier call's results."""
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)).eval()

    def infer(x):
        with gradc.no_grad():
            h = model[1](model[0](x))
            return model(x).relu() * 2.0, h.reshape(4, 4)
    step = gradc.compile(infer, backend="c")
    xs = [gradc.from_numpy(np.random.default_rng(i).standard_normal((1, 12), dtype=np.float32)) for i in range(3)]
    got = [step(x) for x in xs]
    prog = step.lower(xs[0])
    assert len(prog.stats["c_kernels"]) >= 3, prog.stats.get("c_kernels")
    for x, (a, b) in zip(xs, got):   # checked after all calls: none was overwritten by a later one
        want_a, want_b = infer(x)
        np.testing.assert_allclose(a.numpy(), want_a.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.numpy(), want_b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows", [1, 5])
def test_host_matmul_takes_strided_and_transposed_matrices(rows):
    """The C host's matmul copies operands whose rows and columns are both strided first."""
    rng = np.random.default_rng(9)
    w = gradc.from_numpy(rng.standard_normal((16, 24), dtype=np.float32))
    x = gradc.from_numpy(rng.standard_normal((rows, 24), dtype=np.float32))

    def f(x):
        a = x @ w.t()                   # columns contiguous
        b = x[:, ::2] @ w[::2, ::2].t()   # both strided: copied
        return a, b, (x.t() @ x)[::3, ::3]
    comp = gradc.compile(f, backend="c")
    for got, want in zip(comp(x), f(x)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    assert "_mm(" in comp.lower(x).source["host.py"]


def test_profiler_times_each_c_kernel_of_a_run():
    """Under the profiler's tracer a run's kernels are called one by one: each is found and timed."""
    from gradc.runtime import profile
    m_c, _, s_c = _setup(momentum=0)
    step = gradc.compile(s_c, backend="c")
    x, y = _data()
    step(x, y)
    with profile.Profiler() as p:
        for _ in range(3):
            step(x, y)
    rows = [r for (h, backend), rs in p.results().items() if backend == "c" for r in rs]
    kernels = [r for r in rows if r["kind"] == "c kernel"]
    assert len(kernels) >= 2 and all(r["calls"] == 3 and r["seconds"] > 0 for r in kernels), kernels
