"""The cache of lowered programs: a graph traced again with the same settings skips the passes
and code generation and gives the very program lowering gave (source, statistics, results, the
backward program of a training step); a damaged entry is ignored and rewritten; any setting that
changes lowering changes the key; GRADC_LOWERED_CACHE=0 turns it off."""
import json

import numpy as np
import pytest

import gradc
import gradc.nn as nn
from gradc import lower as lowering
from gradc.runtime import cache, lowered


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GRADC_LOWERED_CACHE", raising=False)
    return tmp_path / "cache"


def _entries(folder):
    return sorted((folder / "lowered").rglob("*.json"))


def _f(x, w):
    return (gradc.relu(x @ w) * 2.0).sum(dim=1).exp()


def _cached(prog):
    return any(s.info.get("cached") for s in prog.stages)


def _stats(prog):
    return {k: v for k, v in prog.stats.items() if k not in ("trace_seconds", "compile_seconds")}


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_a_second_trace_reads_the_lowered_program_back(folder, backend):
    x, w = gradc.randn(8, 4), gradc.randn(4, 4)
    first = gradc.compile(_f, backend=backend).lower(x, w)
    assert len(_entries(folder)) == 1 and not any(s.info.get("cached") for s in first.stages)
    again = gradc.compile(_f, backend=backend).lower(x, w)
    assert [s.name for s in again.stages] == [s.name for s in first.stages]
    assert all(s.info.get("cached") and s.seconds == 0 for s in again.stages)
    assert again.source == first.source and again.ir.to_json() == first.ir.to_json()
    assert json.dumps(_stats(again), sort_keys=True, default=str) == json.dumps(_stats(first), sort_keys=True,
                                                                               default=str)
    np.testing.assert_array_equal(again(x, w).numpy(), first(x, w).numpy())
    np.testing.assert_allclose(again(x, w).numpy(), _f(x, w).numpy(), rtol=1e-6)


def test_a_training_step_from_the_cache_trains_as_eagerly(folder):
    def run(compiled):
        gradc.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
        opt = gradc.optim.Adam(model.parameters(), lr=0.01)
        x, y = gradc.randn(5, 6), gradc.randint(0, 3, (5,))

        def step(x, y):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        fn = gradc.compile(step) if compiled else step
        return [float(fn(x, y)) for _ in range(4)], [p.detach().numpy() for p in model.parameters()]
    eager = run(False)
    run(True)
    n = len(_entries(folder))
    assert n >= 1
    losses, params = run(True)            # every trace of this run reads its program back
    assert len(_entries(folder)) == n
    np.testing.assert_allclose(losses, eager[0], rtol=1e-5)
    for a, b in zip(params, eager[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_compiled_forward_keeps_its_backward_program(folder):
    lin = nn.Linear(4, 3)
    x = gradc.randn(2, 4, requires_grad=True)
    for _ in range(2):
        x.grad = None
        prog = gradc.compile(lin).lower(x)
        assert prog.backward is not None
        out = gradc.compile(lin)(x)
        out.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), np.tile(lin.weight.detach().numpy().sum(0), (2, 1)), rtol=1e-6)


def test_a_damaged_entry_is_ignored_and_rewritten(folder):
    x, w = gradc.randn(8, 4), gradc.randn(4, 4)
    first = gradc.compile(_f, backend="numpy").lower(x, w)
    entry, = _entries(folder)
    text = entry.read_text()
    entry.write_text(text.replace('format', 'formax', 1))   # the body no longer matches its hash
    again = gradc.compile(_f, backend="numpy").lower(x, w)
    assert not _cached(again) and again.source == first.source
    assert lowered.read(entry.stem) is not None                     # written anew, whole
    entry.write_text(text[: len(text) // 2])                       # truncated
    assert not _cached(gradc.compile(_f, backend="numpy").lower(x, w))


def test_every_lowering_setting_is_in_the_key(folder, monkeypatch):
    x, w = gradc.randn(8, 4), gradc.randn(4, 4)
    gradc.compile(_f, backend="numpy").lower(x, w)
    gradc.compile(_f, backend="numpy", fuse=False).lower(x, w)
    gradc.compile(_f, backend="c").lower(x, w)
    gradc.compile(_f, backend="numpy").lower(x, gradc.randn(4, 5))          # another shape
    monkeypatch.setenv("GRADC_BLOCK_BYTES", "4096")
    gradc.compile(_f, backend="numpy").lower(x, w)
    assert len(_entries(folder)) == 5
    monkeypatch.setattr(lowered, "fingerprint", lambda: "another gradc")     # an edited or upgraded gradc
    prog = gradc.compile(_f, backend="numpy").lower(x, w)
    assert not _cached(prog) and len(_entries(folder)) == 6


def test_the_cache_can_be_turned_off_and_cleared(folder, monkeypatch):
    x, w = gradc.randn(8, 4), gradc.randn(4, 4)
    monkeypatch.setenv("GRADC_LOWERED_CACHE", "0")
    gradc.compile(_f, backend="numpy").lower(x, w)
    assert not _entries(folder)
    monkeypatch.setenv("GRADC_LOWERED_CACHE", "maybe")
    with pytest.raises(gradc.errors.ConfigError, match="GRADC_LOWERED_CACHE"):
        gradc.compile(_f, backend="numpy").lower(x, w)
    monkeypatch.setenv("GRADC_LOWERED_CACHE", "1")
    gradc.compile(_f, backend="numpy").lower(x, w)
    assert _entries(folder)
    (folder / "lowered" / "mine.txt").write_text("not gradc's")
    cache.clear()
    assert not _entries(folder) and (folder / "lowered" / "mine.txt").exists()


def test_the_key_is_the_graph_with_its_settings():
    graph, spec = gradc.compile(_f, backend="numpy").trace(gradc.randn(8, 4), gradc.randn(4, 4))
    assert lowering._cache_key(graph, spec) == lowering._cache_key(graph.copy(), spec)
