"""The README's tour runs as written: every ```python block, in order, in one namespace, in a
temporary directory (it writes dump/ and model.gradc). Sizes are the README's; the one scaling is
the training loop's iteration count, `range(100)` -> `range(ITERATIONS)` (the test checks that the
loop is still there, so the replacement cannot silently stop applying). Inline compile calls the
prose names (`gradc.compile(step, amp="fp16")`) run too, on the tour's objects."""
import re
from pathlib import Path

import numpy as np

import gradc

README = Path(__file__).resolve().parent.parent / "README.md"
ITERATIONS = 3


def _blocks():
    text = README.read_text()
    start = text.index("## A short tour")
    return text[start:], re.findall(r"```python\n(.*?)```", text[start:], re.S)


def test_readme_tour_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    text, blocks = _blocks()
    assert len(blocks) >= 5
    assert sum("range(100)" in b for b in blocks) == 1
    ns = {}
    for i, block in enumerate(blocks):
        code = block.replace("range(100)", f"range({ITERATIONS})")
        exec(compile(code, f"README.md tour block {i + 1}", "exec"), ns)
    assert ns["prog"].source and all((tmp_path / "dump" / n).exists() for n in ns["prog"].source)
    assert (tmp_path / "model.gradc").exists()
    assert "compiled matches eager" in capsys.readouterr().out
    # The prose's compile calls, on the tour's step: compiling a compiled step works.
    inline = sorted(set(re.findall(r"`(gradc\.compile\(step[^`]*\))`", text)))
    assert inline, "the tour no longer names gradc.compile(step, ...) calls"
    x, y = ns["x"], ns["y"]
    for call in inline:
        compiled = eval(call, ns)
        losses = [compiled(x, y).item() for _ in range(2)]
        assert np.all(np.isfinite(losses)), call
    assert isinstance(ns["step"], gradc.CompiledFunction)
