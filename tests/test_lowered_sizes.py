"""One lowering of a trace with symbolic sizes serves every size (gradc.dynamic, gradc.lowered_sizes):
the passes and the code generators see size expressions, and what they assume about a size is a
guard of the lowered program. Results are checked against eager runs of the same code."""
import copy
import logging

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn, optim
from gradc.lowered_sizes import hint, rebound, size_key
from gradc.runtime import native
from gradc.symint import Sizes, SymInt
from gradc.workloads import Block

BACKENDS = ["numpy", pytest.param("c", marks=pytest.mark.skipif(not native.available(), reason="no C compiler"))]
SYMBOLIC = "lowering the dynamic trace for symbolic sizes"
PER_SIZE = "lowering the dynamic trace for "


def _lowerings(caplog):
    """(lowerings for symbolic sizes, lowerings for one set of sizes) the log reports."""
    messages = [r.getMessage() for r in caplog.records if r.name == "gradc"]
    symbolic = sum(SYMBOLIC in m for m in messages)
    return symbolic, sum(PER_SIZE in m for m in messages) - symbolic


def _step(model, opt, loss_fn):
    def step(*batch):
        opt.zero_grad()
        loss = loss_fn(model(batch[0]), *batch[1:])
        loss.backward()
        opt.step()
        return loss
    return step


def _train_both(make_model, loss_fn, batches, backend, opt_cls=optim.Adam, dump=None):
    gradc.manual_seed(0)
    model = make_model()
    twin = copy.deepcopy(model)
    opt, topt = opt_cls(model.parameters(), lr=1e-2), opt_cls(twin.parameters(), lr=1e-2)
    compiled = gradc.compile(_step(model, opt, loss_fn), dynamic=True, backend=backend, dump=dump)
    eager = _step(twin, topt, loss_fn)
    for batch in batches:
        np.testing.assert_allclose(compiled(*batch).item(), eager(*batch).item(), rtol=1e-5, atol=1e-6)
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4, atol=1e-6)
    return compiled


def _data(*shape, seed):
    return gradc.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_lowering_serves_every_batch_size_of_a_training_step(backend, caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="gradc")
    sizes = (8, 16, 5, 3, 33, 2, 200)
    batches = [(_data(b, 12, seed=b), gradc.tensor(np.random.default_rng(b).integers(0, 4, b))) for b in sizes]

    def loss(out, y):   # the batch size reaches values: a mean, and a sum divided by it
        return F.cross_entropy(out, y) + (out ** 2).sum() / out.shape[0] * 0.01

    compiled = _train_both(lambda: nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 4)), loss, batches,
                           backend, dump=tmp_path)
    assert compiled.trace_count == 1, compiled.recompile_reasons
    assert _lowerings(caplog) == (1, 0)
    source = next(tmp_path.glob("*_1")).joinpath("program.py" if backend == "numpy" else "host.py").read_text()
    assert 'sizes["s0"]' in source and "(s0)" in source   # buffers and row loops sized at run time


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_lowering_serves_every_batch_size_of_a_transformer_block(backend, caplog):
    caplog.set_level(logging.INFO, logger="gradc")
    batches = [(_data(b, 8, 16, seed=b),) for b in (4, 6, 3, 2, 5)]
    compiled = _train_both(lambda: Block(16, 2, 32, 8), lambda out: (out ** 2).mean(), batches, backend, optim.SGD)
    assert compiled.trace_count == 1, compiled.recompile_reasons
    assert _lowerings(caplog) == (1, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inference_in_row_blocks_and_a_tail_at_sizes_around_a_block(backend, monkeypatch, caplog):
    # A small block makes the row loop run 0, 1 and several full blocks, with and without a tail.
    monkeypatch.setenv("GRADC_BLOCK_BYTES", "256")
    caplog.set_level(logging.INFO, logger="gradc")
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 3), nn.Softmax(-1))
    compiled = gradc.compile(model, dynamic=True, backend=backend)
    with gradc.no_grad():
        for b in (3, 4, 5, 8, 9, 40, 2):
            x = _data(b, 16, seed=b)
            np.testing.assert_allclose(compiled(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    assert _lowerings(caplog) == (1, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_arange_of_a_size_is_made_for_each_size(backend, caplog):
    # (nanoGPT's positions: torch.arange(0, t) over a dynamic sequence length)
    caplog.set_level(logging.INFO, logger="gradc")
    gradc.manual_seed(0)
    wpe = nn.Embedding(40, 4)

    def f(x):
        pos = gradc.arange(0, x.shape[1], dtype=gradc.long)
        return (x + wpe(pos)) * gradc.arange(x.shape[1], dtype=gradc.float32)[:, None]
    compiled = gradc.compile(f, dynamic=True, backend=backend)
    with gradc.no_grad():
        for t in (3, 5, 4, 9):
            x = _data(2, t, 4, seed=t)
            np.testing.assert_allclose(compiled(x).numpy(), f(x).numpy(), rtol=1e-6)
    assert compiled.trace_count == 1 and _lowerings(caplog) == (1, 0)


def test_a_size_that_breaks_a_guard_of_the_lowering_is_lowered_again(monkeypatch, caplog):
    # Rows of a dynamic width go in blocks of 256 bytes: up to 64 elements a block holds whole
    # rows, beyond that one row (a guard of the lowering), so 100 is lowered again and 120 is not.
    monkeypatch.setenv("GRADC_BLOCK_BYTES", "256")
    caplog.set_level(logging.INFO, logger="gradc")

    def f(x):
        return F.softmax(x * 2, -1) + 1
    compiled = gradc.compile(f, backend="numpy")
    for n in (5, 7, 100, 120, 6):
        x = _data(4, n, seed=n)
        gradc.mark_dynamic(x, 1)
        np.testing.assert_allclose(compiled(x).numpy(), f(x).numpy(), rtol=1e-6)
    assert compiled.trace_count == 1 and _lowerings(caplog) == (2, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_convolution_training_over_batch_sizes(backend, caplog):
    # (C convolution kernels may be written for their batch size: a guard of the lowering then)
    caplog.set_level(logging.INFO, logger="gradc")
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    twin = copy.deepcopy(model)
    step = _step(model, optim.SGD(model.parameters(), lr=0.1), F.cross_entropy)
    eager = _step(twin, optim.SGD(twin.parameters(), lr=0.1), F.cross_entropy)
    compiled = gradc.compile(step, dynamic=True, backend=backend)
    for b in (4, 3, 4, 5):
        x, y = _data(b, 1, 6, 6, seed=b), gradc.tensor(np.arange(b) % 3)
        np.testing.assert_allclose(compiled(x, y).item(), eager(x, y).item(), rtol=1e-5, atol=1e-6)
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)
    symbolic, per_size = _lowerings(caplog)
    assert compiled.trace_count == 1 and per_size == 0 and 1 <= symbolic <= 3   # (4 was seen: no lowering)


def _lowering_size(n, hint_value=8):
    sizes = Sizes(lambda: None)
    sizes.structural = True
    return sizes, sizes.symbol(0, 0, "x.shape[0]", hint_value) * n


def test_size_keys_and_hints_record_no_guard_and_comparisons_do():
    sizes, n = _lowering_size(4)
    assert size_key(n) == size_key(n + 0) != size_key(32) and hint(n) == 32
    assert {n: 1}.get(n * 1) == 1 and {n: 1}.get(32) is None   # dicts key a lowering's sizes by expression
    assert not sizes.guards
    assert n == 32 and n > 16
    assert len(sizes.guards) == 2 and sizes.hold({"s0": 8}) and not sizes.hold({"s0": 5})


def test_rebound_makes_a_traces_sizes_the_lowerings():
    trace = Sizes(lambda: None)
    n = trace.symbol(0, 0, "x.shape[0]", 3)
    lowering = Sizes(lambda: None)
    lowering.symbols, lowering.hints = dict(trace.symbols), {"s0": 7}
    out = rebound({"shape": (n * 2, 5), "k": [n + 1]}, trace, {"s0": 7}, lowering)
    assert all(isinstance(v, SymInt) and v.sizes is lowering for v in (out["shape"][0], out["k"][0]))
    assert (hint(out["shape"][0]), out["shape"][1], hint(out["k"][0])) == (14, 5, 8)


class _CausalSelfAttention(nn.Module):   # nanoGPT's, with its mask buffer sliced to the sequence
    def __init__(self, d=8, heads=2, block=16):
        super().__init__()
        self.c_attn, self.c_proj, self.n_head = nn.Linear(d, 3 * d), nn.Linear(d, d), heads
        self.register_buffer("bias", gradc.tril(gradc.ones(block, block)).view(1, 1, block, block))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / k.size(-1) ** 0.5)
        att = F.softmax(att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf")), dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_sequence_length_slicing_a_buffer_stays_symbolic(backend, caplog):
    # bias[:, :, :T, :T] of a 16-long buffer holds for every T up to 16: one trace and one lowering,
    # the C kernels taking their row width (T, in the softmax) at run time as they take their rows.
    caplog.set_level(logging.INFO, logger="gradc")
    batches = [(_data(2, t, 8, seed=t),) for t in (5, 8, 11, 6, 3)]
    compiled = _train_both(_CausalSelfAttention, lambda out: (out ** 2).mean(), batches, backend, optim.SGD)
    assert compiled.trace_count == 1, compiled.recompile_reasons
    assert _lowerings(caplog) == (1, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_number_computed_from_a_size_inside_a_fused_kernel(backend, caplog):
    # 1 / n and n * 0.5 are constants of a fused group: the module computes them for each n.
    caplog.set_level(logging.INFO, logger="gradc")

    def f(x):
        return (F.relu(x) * (1.0 / x.shape[0]) + x.shape[0] * 0.5).sum(1)
    compiled = gradc.compile(f, backend=backend)
    for n in (4, 6, 9, 4, 30):
        x = _data(n, 64, seed=n)
        gradc.mark_dynamic(x, 0)
        np.testing.assert_allclose(compiled(x).numpy(), f(x).numpy(), rtol=1e-6)
    assert compiled.trace_count == 1 and _lowerings(caplog) == (1, 0)


@pytest.mark.skipif(not native.available(), reason="no C compiler")
def test_one_c_build_serves_every_row_width(monkeypatch, caplog):
    # A dynamic last dimension is a C kernel's row width: its loops read it at run time.
    builds = set()   # (what each shared object is built from: its source, compiler and flags)
    load = native.cache.load_shared_object
    monkeypatch.setattr(native.cache, "load_shared_object", lambda key, *a: builds.add(key) or load(key, *a))
    caplog.set_level(logging.INFO, logger="gradc")

    def f(x):
        return F.softmax(x * 2, -1) + F.layer_norm(x, x.shape[-1:]) * x.sum(-1, keepdim=True)
    compiled = gradc.compile(f, backend="c")
    for n in (6, 9, 4, 17, 6, 2):
        x = _data(3, n, seed=n)
        gradc.mark_dynamic(x, 1)
        np.testing.assert_allclose(compiled(x).numpy(), f(x).numpy(), rtol=1e-5, atol=1e-6)
    assert compiled.trace_count == 1 and _lowerings(caplog) == (1, 0) and len(builds) == 1


def test_einsum_over_a_dynamic_size_traces_once():
    def f(q, k):
        return gradc.einsum("bhqd,bhkd->bhqk", q, k).softmax(-1)
    compiled = gradc.compile(f, dynamic=True, backend="numpy")
    for t in (3, 5, 8):
        q, k = _data(2, 2, t, 4, seed=t), _data(2, 2, t, 4, seed=t + 1)
        np.testing.assert_allclose(compiled(q, k).numpy(), f(q, k).numpy(), rtol=1e-5, atol=1e-6)
    assert compiled.trace_count == 1, compiled.recompile_reasons
