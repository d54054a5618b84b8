"""gradc.compile's program cache and guards (when it traces again and when not), its errors and
fallbacks for untraceable code, the ways to call it, dumps and source locations in generated
code, the divergence finder, and the on-disk module cache."""
import gc
import json
import os
import re
import warnings

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn, optim
from gradc.codegen.templates import macros
from gradc.ir import Graph
from gradc.runtime import cache
from gradc.testing import assert_close

THIS_FILE = os.path.basename(__file__)


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GRADC_DUMP", raising=False)
    monkeypatch.delenv("GRADC_DEBUG", raising=False)


@pytest.fixture(autouse=True, scope="module")
def _small_gc():
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def _x(*shape, seed=0, requires_grad=False):
    rng = np.random.default_rng(seed)
    return gradc.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=requires_grad)


def _line_of(fn, marker):
    """Line number of the line containing `marker` inside fn's source (in this file)."""
    import inspect
    lines, start = inspect.getsourcelines(fn)
    hits = [start + i for i, text in enumerate(lines) if marker in text]
    assert len(hits) == 1, hits
    return hits[0]


# ---------------------------------------------------------------------------- retracing
def test_no_retrace_on_repeated_calls():
    calls = []

    def f(x, y):
        calls.append(1)  # Python side effects run only while tracing
        return (x * y).tanh().sum(1)

    cf = gradc.compile(f)
    x, y = _x(4, 3), _x(4, 3, seed=1)
    for _ in range(5):
        out = cf(x, y)
    assert cf.trace_count == 1 and len(calls) == 1
    assert_close(out, f(x, y))
    # Fresh tensors with the same signature reuse the program too.
    cf(_x(4, 3, seed=2), _x(4, 3, seed=3))
    assert cf.trace_count == 1


def test_exactly_one_retrace_on_a_new_batch_size():
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    cf = gradc.compile(model)
    with gradc.no_grad():
        for _ in range(3):
            cf(_x(4, 3))
        assert cf.trace_count == 1
        for _ in range(3):
            out = cf(_x(7, 3, seed=1))
        assert cf.trace_count == 2
        assert_close(out, model(_x(7, 3, seed=1)))
        cf(_x(4, 3))  # the first signature's program is still cached
        assert cf.trace_count == 2


def test_a_changed_python_float_is_an_input_and_a_changed_int_retraces():
    def f(x, scale, reps):
        return x * scale + float(reps)

    cf = gradc.compile(f)
    x = _x(3)
    assert_close(cf(x, 2.0, 1), f(x, 2.0, 1))
    assert_close(cf(x, 3.0, 1), f(x, 3.0, 1))  # not the stale 2.0 of the first call: a float is a program input
    assert cf.trace_count == 1
    assert_close(cf(x, 3.0, 2), f(x, 3.0, 2))  # an int is specialised: it may shape the graph
    assert cf.trace_count == 2
    assert_close(cf(x, 0.5, 1), f(x, 0.5, 1))
    assert cf.trace_count == 2


def test_retrace_on_train_eval_switch():
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    cf = gradc.compile(model)
    x = _x(6, 4)
    with gradc.no_grad():
        cf(x)
        assert cf.trace_count == 1
        model.eval()
        out = cf(x)
        assert cf.trace_count == 2
        assert_close(out, model(x))  # dropout is the identity in eval mode
        assert_close(cf(x), out)
        assert cf.trace_count == 2
        model.train()
        train_out = cf(x)
        assert cf.trace_count == 2  # back to the first program
        assert not np.allclose(train_out.numpy(), out.numpy())


def _sgd_step(model, opt):
    def step(x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def test_changed_optimizer_lr_is_read_without_retracing():
    x, y = _x(5, 3), _x(5, 2, seed=1)
    models = []
    for _ in range(2):
        gradc.manual_seed(0)
        models.append(nn.Linear(3, 2))
    opts = [optim.SGD(m.parameters(), lr=0.1) for m in models]
    eager = _sgd_step(models[0], opts[0])
    cf = gradc.compile(_sgd_step(models[1], opts[1]))
    for _ in range(2):  # the first call sees no .grad yet, the second does: two programs
        eager(x, y)
        cf(x, y)
    settled = cf.trace_count
    for _ in range(2):
        eager(x, y)
        cf(x, y)
    assert cf.trace_count == settled <= 2
    for o in opts:
        o.param_groups[0]["lr"] = 0.5
    eager(x, y)
    cf(x, y)
    assert cf.trace_count == settled, "lr is a program input: changing it must not retrace"
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        assert_close(q, p, rtol=1e-6, atol=1e-7)  # the new lr was used
    cf(x, y)
    assert cf.trace_count == settled


def test_retrace_when_a_module_parameter_is_replaced():
    """Assigning a new Parameter object (not an in-place update) must not leave the compiled
    module reading the old one."""
    gradc.manual_seed(0)
    model = nn.Linear(2, 1, bias=False)
    cf = gradc.compile(model)
    x = gradc.ones(1, 2)
    with gradc.no_grad():
        assert_close(cf(x), model(x))
        model.weight = nn.Parameter(gradc.full((1, 2), 5.0))
        assert_close(cf(x), gradc.tensor([[10.0]]))
        assert cf.trace_count == 2
        model.load_state_dict({"weight": gradc.full((1, 2), 7.0)})  # in place: same program, new values
        assert_close(cf(x), gradc.tensor([[14.0]]))
        assert cf.trace_count == 2


def test_step_function_sees_a_replaced_parameter_of_a_closed_over_model():
    gradc.manual_seed(0)
    model = nn.Linear(2, 1, bias=False)
    cf = gradc.compile(lambda x: model(x))
    x = gradc.ones(1, 2)
    with gradc.no_grad():
        cf(x)
        model.weight = nn.Parameter(gradc.full((1, 2), 5.0))
        assert_close(cf(x), gradc.tensor([[10.0]]))


def test_compiled_dropout_draws_a_new_mask_per_call():
    gradc.manual_seed(0)
    drop = nn.Dropout(0.5)
    cf = gradc.compile(drop)
    x = gradc.ones(8, 16)
    eager = [drop(x).numpy() for _ in range(2)]
    assert not np.array_equal(*eager)  # the reference: eager draws a new mask each call
    compiled = [cf(x).numpy() for _ in range(2)]
    assert not np.array_equal(*compiled), "the compiled program reuses the traced dropout mask"
    # Random inputs are drawn from the same generator in the same order: equal seeds, equal masks.
    gradc.manual_seed(7)
    eager = [drop(x).numpy() for _ in range(2)]
    gradc.manual_seed(7)
    compiled = [cf(x).numpy() for _ in range(2)]
    for e, c in zip(eager, compiled):
        np.testing.assert_array_equal(c, e)
    assert cf.trace_count == 1


# ---------------------------------------------------------------------------- data-dependent control flow
def branchy(x):
    if x.sum() > 0:  # data-dependent branch
        return x * 2.0
    return x - 1.0


def test_data_dependent_branch_fullgraph_raises_with_location():
    cf = gradc.compile(branchy, fullgraph=True)
    with pytest.raises(gradc.TraceError) as info:
        cf(_x(3))
    msg = str(info.value)
    line = _line_of(branchy, "if x.sum() > 0:")
    assert f"{THIS_FILE}:{line}" in msg, msg
    assert "gradc.where" in msg


def test_data_dependent_branch_falls_back_to_eager_and_warns_once():
    cf = gradc.compile(branchy)
    pos = gradc.tensor([1.0, 2.0, 3.0])
    neg = gradc.tensor([-1.0, -2.0, -3.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = [cf(pos), cf(neg), cf(pos)]
    msgs = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(msgs) == 1, msgs
    assert "eagerly" in msgs[0] and f"{THIS_FILE}:" in msgs[0]
    # Each call took its own branch: eager semantics, not a trace of the first call's branch.
    assert_close(outs[0], gradc.tensor([2.0, 4.0, 6.0]))
    assert_close(outs[1], gradc.tensor([-2.0, -3.0, -4.0]))
    assert_close(outs[2], gradc.tensor([2.0, 4.0, 6.0]))


def test_where_instead_of_a_branch_compiles():
    def f(x):
        return gradc.where(x.sum() > 0, x * 2.0, x - 1.0)

    cf = gradc.compile(f, fullgraph=True)
    assert_close(cf(gradc.tensor([1.0, 2.0])), gradc.tensor([2.0, 4.0]))
    assert_close(cf(gradc.tensor([-1.0, -2.0])), gradc.tensor([-2.0, -3.0]))
    assert cf.trace_count == 1


def test_cache_limit_warns_and_falls_back_to_eager():
    def f(x):
        return x.exp().sum()

    cf = gradc.compile(f, cache_limit=2, dynamic=False)   # (each size traces)
    cf(_x(2))
    cf(_x(3))
    assert cf.trace_count == 2
    with pytest.warns(UserWarning, match="limit"):
        out = cf(_x(4))
    assert cf.trace_count == 2
    assert_close(out, f(_x(4)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = cf(_x(5))
    assert not [w for w in caught if "limit" in str(w.message)], "the limit warning repeats"
    assert_close(out, f(_x(5)))
    assert cf.trace_count == 2
    cf(_x(2))  # signatures compiled before the limit still run compiled
    assert cf.trace_count == 2


# ---------------------------------------------------------------------------- call forms
@gradc.compile
def decorated(x):
    return x * x + 1.0


@gradc.compile(fullgraph=True)
def decorated_with_options(x):
    return (x * 3.0).relu()


def test_call_forms():
    x = _x(4)
    assert isinstance(decorated, gradc.CompiledFunction)
    assert_close(decorated(x), x * x + 1.0)
    assert decorated.__name__ == "decorated"
    assert isinstance(decorated_with_options, gradc.CompiledFunction) and decorated_with_options.fullgraph
    assert_close(decorated_with_options(x), (x * 3.0).relu())

    def plain(x):
        return x.tanh()

    cf = gradc.compile(plain, backend="numpy", fullgraph=True)
    assert cf.fullgraph and cf.backend == "numpy"
    assert_close(cf(x), x.tanh())
    with pytest.raises(gradc.GradcError, match="backend"):
        gradc.compile(plain, backend="tpu")


# ---------------------------------------------------------------------------- module forward + eager backward
def test_compiled_module_forward_then_eager_backward():
    grads = []
    for compiled in (False, True):
        gradc.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3))
        x = _x(5, 4, requires_grad=True)
        fwd = gradc.compile(model) if compiled else model
        out = fwd(x)
        assert out.requires_grad
        F.cross_entropy(out, gradc.tensor([0, 2, 1, 1, 0])).backward()
        grads.append({**{n: p.grad for n, p in model.named_parameters()}, "x": x.grad})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        assert_close(grads[1][k], grads[0][k], rtol=1e-5, atol=1e-6, msg=k)


def _backward_nodes(graph):
    return [n for n, d in graph.nodes(data=True) if d.get("phase") == "backward" or "grad of" in (d["where"] or "")]


def test_no_grad_program_has_no_backward():
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    cf = gradc.compile(model)
    x = _x(3, 4)
    with gradc.no_grad():
        prog = cf.lower(x)
        out = cf(x)
    assert not out.requires_grad and out.grad_fn is None
    assert prog.backward is None and "backward" not in prog.stats
    assert not _backward_nodes(prog.graph)
    assert_close(out, model(x).detach())
    # The reference point: with grad on, the same call builds a backward program.
    graded = cf.lower(x)
    assert graded.backward is not None and "backward" in graded.stats
    assert _backward_nodes(graded.backward[0].graph)
    assert cf(x).requires_grad


# ---------------------------------------------------------------------------- dumps and locations
def test_gradc_dump_env_writes_graph_source_and_stats(tmp_path, monkeypatch):
    target = tmp_path / "dump"
    monkeypatch.setenv("GRADC_DUMP", str(target))

    def dumped(x):
        return (x.exp() + 1.0).log().sum()

    gradc.compile(dumped)(_x(3, 2))
    dirs = list(target.iterdir())
    assert len(dirs) == 1, dirs
    files = {p.name for p in dirs[0].iterdir()}
    assert {"graph.txt", "graph.dot", "graph.json", "stats.json"} <= files and _module_name(files), files
    d = dirs[0]
    g = Graph.from_json((d / "graph.json").read_text())
    assert g.to_json() == Graph.from_json(g.to_json()).to_json()
    assert {g.node(n)["op"] for n in g.op_nodes()} >= {"exp", "log", "sum"}
    stats = json.loads((d / "stats.json").read_text())
    assert stats["nodes"] == len(g)
    assert (d / "graph.dot").read_text().startswith("digraph")
    assert "exp" in (d / "graph.txt").read_text()
    compile((d / _module_name(files)).read_text(), _module_name(files), "exec")  # valid Python


_OP_CALL = re.compile(r"\b(np\.[a-z_]+|K_[a-z_]+)\(")
_NOT_OPS = ("np.empty(", "np.zeros(", "np.full(")


def _op_statements(source):
    """Lines of the entry function and group bodies that compute an op (allocations, row views,
    accumulator starts, del and return are bookkeeping, not model statements)."""
    out = []
    for line in source.splitlines():
        if not line.startswith(" " * 8) or line.strip().startswith("#"):
            continue
        code = line.split("  #", 1)[0]
        if _OP_CALL.search(code) and not any(code.strip().startswith(f"{lhs}") for lhs in ("del ", "return")) \
                and not any(a in code for a in _NOT_OPS):
            out.append(line)
    return out


def located_step(model, x, y):
    out = model(x)                       # forward
    loss = F.cross_entropy(out, y)       # loss
    loss.backward()                      # backward
    return loss.detach()


def test_every_generated_statement_names_the_users_line():
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(approximate="tanh"), nn.LayerNorm(8), nn.Linear(8, 3))
    # the NumPy module: one statement per op (C kernels carry their locations as comments instead)
    prog = gradc.compile(lambda x, y: located_step(model, x, y), backend="numpy").lower(
        _x(6, 4), gradc.tensor([0, 1, 2, 0, 1, 2]))
    source = prog.source["program.py"]
    statements = _op_statements(source)
    assert len(statements) > 10, source
    first, last = _line_of(located_step, "# forward"), _line_of(located_step, "# backward")
    seen = set()
    for line in statements:
        m = re.search(r"#\s*(\S+):(\d+)", line)
        assert m, f"statement without a location: {line.strip()}"
        assert os.path.basename(m.group(1)) == THIS_FILE, line
        assert first <= int(m.group(2)) <= last, line
        seen.add(int(m.group(2)))
    assert seen >= {first, first + 1}, seen  # both the model and the loss lines show up


# ---------------------------------------------------------------------------- divergence finder
def compare_model(x):
    h = x.tanh()                         # corrupted below
    return (h * 2.0 + 1.0).sum(1)


def test_debug_compare_reports_no_divergence_on_a_model():
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3))
    report = gradc.debug.compare(model, _x(5, 4, requires_grad=True))
    assert report.ok and not report, str(report)
    assert report.checked > 10
    assert gradc.debug.compare(compare_model, _x(5, 4)).ok


def test_debug_compare_finds_a_corrupted_template(monkeypatch):
    # One table renders the op both alone and inside a fused group (its `out=` form).
    mod = macros("numpy/ops.j2")
    real = mod.tanh
    monkeypatch.setattr(mod, "tanh", lambda *a, **k: real(*a, **k).replace("np.tanh(", "np.sin("))
    report = gradc.debug.compare(compare_model, _x(5, 4))
    assert not report.ok, str(report)
    first = report.first
    assert first["op"] == "tanh", str(report)
    assert first["where"] and f"{THIS_FILE}:{_line_of(compare_model, 'x.tanh()')}" in first["where"], str(report)
    assert "tanh" in str(report)
    monkeypatch.undo()
    assert gradc.debug.compare(compare_model, _x(5, 4)).ok


# ---------------------------------------------------------------------------- on-disk cache
def _module_name(names):
    """The generated Python module among a program's files (program.py; a C program's host.py)."""
    return next((n for n in sorted(names) if n in ("program.py", "host.py")), None)


def _entry_files(root):
    return sorted(p for p in root.rglob("*.py") if p.is_file())


def test_generated_modules_land_in_the_cache_dir(tmp_path, monkeypatch):
    root = tmp_path / "elsewhere"
    monkeypatch.setenv("GRADC_CACHE_DIR", str(root))
    assert cache.cache_dir() == root

    def cached_fn(x):
        return x.sin() * 3.25 + x.cos()

    prog = gradc.compile(cached_fn).lower(_x(2, 3))
    assert_close(gradc.compile(cached_fn)(_x(2, 3)), cached_fn(_x(2, 3)))
    files = _entry_files(root)
    sources = {p.read_text() for p in files}
    module = prog.source[_module_name(prog.source)]
    assert module in sources
    path, key = cache.entry_path(module)
    assert path in files and path.name.startswith(key)


def test_corrupted_cache_entry_is_rewritten_not_imported(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "_loaded", {})  # as in a new process: nothing loaded yet

    def corrupt_me(x):
        return x * 1.5 - 0.25

    x = _x(4)
    prog = gradc.compile(corrupt_me).lower(x)
    source = prog.source[_module_name(prog.source)]
    path, _ = cache.entry_path(source)
    cache.store(source)
    assert path.read_text() == source
    evil = "raise RuntimeError('corrupted cache entry was imported')\n"
    path.write_bytes(evil.encode() + b"\x00" * max(0, len(source) - len(evil)))
    monkeypatch.setattr(cache, "_loaded", {})
    out = gradc.compile(corrupt_me)(x)          # loads through the cache again
    assert_close(out, corrupt_me(x))
    assert path.read_text() == source, "the corrupt entry was not rewritten"
    # A truncated entry (a crash mid-write by some other tool) is repaired the same way.
    path.write_bytes(source.encode()[: len(source) // 2])
    monkeypatch.setattr(cache, "_loaded", {})
    assert_close(gradc.compile(corrupt_me)(x), corrupt_me(x))
    assert path.read_text() == source


def test_compiled_code_is_read_back_and_a_damaged_code_entry_is_compiled_again(monkeypatch):
    import builtins
    source = "def make(consts):\n    return lambda x: x * 2.0\n"
    compiled = []
    real_compile = builtins.compile
    monkeypatch.setattr(builtins, "compile", lambda *a, **k: compiled.append(a[1]) or real_compile(*a, **k))
    monkeypatch.setattr(cache, "_loaded", {})
    assert cache.load_module(source).make({})(3.0) == 6.0
    assert len(compiled) == 1
    entries = list((cache.cache_dir() / "code").rglob("*.code"))
    assert len(entries) == 1
    monkeypatch.setattr(cache, "_loaded", {})   # a new process: the code is read back, not compiled
    assert cache.load_module(source).make({})(3.0) == 6.0
    assert len(compiled) == 1
    data = entries[0].read_bytes()
    for damaged in (data[:len(data) // 2], data[:40] + bytes([data[40] ^ 1]) + data[41:]):
        entries[0].write_bytes(damaged)
        monkeypatch.setattr(cache, "_loaded", {})
        assert cache.load_module(source).make({})(3.0) == 6.0   # compiled again, never unmarshalled
        assert entries[0].read_bytes() == data
    assert len(compiled) == 3
