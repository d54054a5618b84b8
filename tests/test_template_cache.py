"""Compiled templates kept in the cache folder: a new process loads them instead of compiling, and
an entry that is not exactly what was written (truncated, damaged, foreign) is ignored and rebuilt."""
import hashlib
import marshal
import warnings

import jinja2
import numpy as np
import pytest

import gradc
from gradc.codegen import templates
from gradc.runtime import cache, template_cache
from gradc.runtime.template_cache import TemplateBytecodeCache

NAME = "numpy/ops.j2"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


class Counting(TemplateBytecodeCache):
    """Counts what the environment had to compile itself (a bucket that came back empty)."""

    def __init__(self):
        self.misses = 0

    def load_bytecode(self, bucket):
        super().load_bytecode(bucket)
        self.misses += bucket.code is None


def _render(bcc):
    """A fresh environment (nothing in memory), as a new process has; the text of a few macros of
    the NumPy op table, so a difference in the compiled code shows."""
    module = templates.new_environment(bcc).get_template(NAME).module
    return "\n".join(str(m) for m in (module.exp("a"), module.add("a", "b", out="o"), module.sigmoid("a", out="o"),
                                       module.sign("a", out="o")))


def _entries(folder):
    return sorted((folder / template_cache.KIND).rglob("*.jinja"))


def test_a_new_environment_loads_what_an_earlier_one_compiled(folder):
    first = Counting()
    text = _render(first)
    assert "np.exp(a)" in text and "K_sign" in text
    assert first.misses == len(_entries(folder)) == 2   # the table and the statements it imports
    second = Counting()
    assert _render(second) == text
    assert second.misses == 0


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "empty", "foreign header", "not code"])
def test_a_damaged_entry_is_ignored_and_rebuilt(folder, damage):
    text = _render(Counting())
    entry = max(_entries(folder), key=lambda p: p.stat().st_size)   # the op table's
    data = entry.read_bytes()
    if damage == "truncated":
        bad = data[:len(data) // 2]
    elif damage == "flipped byte":
        i = len(data) - 100
        bad = data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1:]
    elif damage == "empty":
        bad = b""
    elif damage == "foreign header":
        bad = b"j2" + data[2:]
    else:   # whole and consistent, but what it holds is no code object
        payload = marshal.dumps(42)
        bad = template_cache.MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    entry.write_bytes(bad)
    again = Counting()
    assert _render(again) == text
    assert again.misses == 1
    assert entry.read_bytes() == data   # rewritten whole
    assert template_cache.decode(bad) is None


def test_entries_depend_on_the_source_and_the_options(folder, tmp_path):
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "t.j2").write_text("{% macro m(x) %}\n  [{{ x }}]\n{% endmacro %}\n")

    def render(**options):
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tpl)), bytecode_cache=TemplateBytecodeCache(),
                                 **options)
        return env.get_template("t.j2").module.m(1)
    assert render() == "\n  [1]\n"
    assert render(trim_blocks=True) == "  [1]\n"   # not the code compiled without the option
    (tpl / "t.j2").write_text("{% macro m(x) %}<{{ x }}>{% endmacro %}")
    assert render() == "<1>"
    assert len(_entries(folder)) == 3


def test_compiled_programs_are_the_same_with_a_damaged_template_cache(folder, monkeypatch):
    monkeypatch.setenv("GRADC_LOWERED_CACHE", "0")   # so the second compile renders its templates again

    def f(x, w):
        return (gradc.relu(x @ w) * 2.0).sum(dim=1).exp()

    def new_process():   # what a new process starts with: nothing compiled in memory
        templates.environment().cache.clear()
        templates.macros.cache_clear()

    x, w = gradc.randn(8, 4), gradc.randn(4, 4)
    new_process()   # (earlier tests in this process compiled the templates already)
    first = gradc.compile(f, backend="numpy").lower(x, w).source
    assert _entries(folder)
    for entry in _entries(folder):
        entry.write_bytes(entry.read_bytes()[:-7])
    new_process()
    prog = gradc.compile(f, backend="numpy").lower(x, w)
    assert prog.source == first
    assert all(template_cache.decode(e.read_bytes()) is not None for e in _entries(folder))
    np.testing.assert_array_equal(prog(x, w).numpy(), f(x, w).numpy())


def test_clear_removes_template_entries_and_an_unusable_folder_only_warns(folder, tmp_path, monkeypatch):
    _render(Counting())
    assert _entries(folder)
    files, _ = cache.clear()
    assert files >= 1 and not _entries(folder)
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("GRADC_CACHE_DIR", str(blocker))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = _render(Counting())
    assert text == _render(None)
    assert any("cannot be used" in str(w.message) for w in caught)


def test_entries_are_written_whole_without_waiting_for_the_disk(folder, monkeypatch):
    synced = []
    monkeypatch.setattr(cache.os, "fsync", lambda fd: synced.append(fd))
    _render(Counting())
    assert not synced                      # a torn entry fails its hash check: no sync needed
    assert all(template_cache.decode(e.read_bytes()) is not None for e in _entries(folder))
    assert not [p for p in (folder / template_cache.KIND).rglob("*") if p.name.endswith(".tmp")]
    cache.atomic_write(folder / "x.bin", b"data")
    assert synced                          # everything else still is synced
