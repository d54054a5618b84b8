"""What gradc says while compiling: GRADC_DEBUG's sections and its accepted values, trace-error
advice that fits where it appears, and no NumPy overflow warnings from mixed precision."""
import subprocess
import sys
import warnings

import numpy as np
import pytest

import gradc
from gradc import nn, optim
from gradc.errors import ConfigError, TraceError


def _step():
    # the NumPy backend: one generated file (program.py), so one source section per level
    return gradc.compile(lambda x: (x * 2).relu().sum(), backend="numpy")


def test_debug_sections_have_headers_per_level(monkeypatch, capsys):
    monkeypatch.setenv("GRADC_DEBUG", "3")
    _step()(gradc.randn(4, 4))
    err = capsys.readouterr().err
    heads = [line for line in err.splitlines() if line.startswith("==== gradc debug")]
    assert heads[0] == "==== gradc debug [level 1] compiled <lambda> ===="
    assert "==== gradc debug [level 2] optimised graph of <lambda> ====" in heads
    assert "==== gradc debug [level 3] generated source of <lambda>: program.py ====" in heads
    assert not any("[level 4]" in h for h in heads)   # the traced graph only at 4
    src = err.split("generated source of <lambda>: program.py ====\n", 1)[1]
    assert "def make(consts, sizes=None)" in src


def test_debug_level_four_adds_the_traced_graph_first(monkeypatch, capsys):
    monkeypatch.setenv("GRADC_DEBUG", "4")
    _step()(gradc.randn(4, 4))
    heads = [h for h in capsys.readouterr().err.splitlines() if h.startswith("==== gradc debug")]
    assert [h.split("]")[0][-1] for h in heads] == ["1", "4", "2", "3"]


@pytest.mark.parametrize("value", ["yes", "5", "-1", "debug"])
def test_unknown_debug_value_says_what_it_accepts(monkeypatch, value):
    monkeypatch.setenv("GRADC_DEBUG", value)
    with pytest.raises(ConfigError) as e:
        _step()(gradc.randn(4, 4))
    msg = str(e.value)
    assert f"GRADC_DEBUG={value!r}" in msg and "0: nothing" in msg and "4: 3, and the traced graph" in msg


def test_empty_or_zero_debug_is_quiet(monkeypatch, capsys):
    for value in ("", "0"):
        monkeypatch.setenv("GRADC_DEBUG", value)
        _step()(gradc.randn(4, 4))
        assert "gradc debug" not in capsys.readouterr().err


def _branchy(x):
    if x.sum() > 0:   # a Python branch on a traced value
        return x * 2
    return x


def test_eager_fallback_warning_does_not_advise_fullgraph_false():
    cf = gradc.compile(_branchy)
    with pytest.warns(UserWarning) as rec:
        out = cf(gradc.ones(3))
    np.testing.assert_array_equal(out.numpy(), 2 * np.ones(3, np.float32))
    text = " ".join(str(w.message) for w in rec)
    assert "running it eagerly" in text and "fullgraph" not in text


def test_fullgraph_error_advises_fullgraph_false():
    cf = gradc.compile(_branchy, fullgraph=True)
    with pytest.raises(TraceError, match="compile with fullgraph=False"):
        cf(gradc.ones(3))


def test_lower_error_does_not_advise_fullgraph_false():
    with pytest.raises(TraceError) as e:
        gradc.compile(_branchy).lower(gradc.ones(3))
    assert "gradc.where" in str(e.value) and "fullgraph" not in str(e.value)


def test_inf_and_nan_arithmetic_is_silent_as_in_pytorch_while_the_users_numpy_still_warns():
    # a fresh interpreter: pytest's own warning capture would reset the filters gradc installs
    script = """if True:
        import gradc, numpy as np
        x = gradc.tensor([0.0, 1.0, -1.0])
        x / 0, x.sqrt(), (x * 0).log(), gradc.zeros(0).mean(), gradc.softmax(gradc.tensor([float("inf"), 1.0]), 0)
        gradc.compile(lambda x: (x / 0).sqrt() + (x * 0).log())(x)
        np.array([1.0]) / 0
    """
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("RuntimeWarning") == 1 and "<string>:6:" in run.stderr, run.stderr   # the NumPy line


def test_amp_overflow_warnings_never_reach_the_user():
    gradc.manual_seed(0)
    m = nn.Linear(8, 8)
    opt = optim.SGD(m.parameters(), lr=0.1)
    scaler = gradc.amp.GradScaler(init_scale=2.0 ** 40)
    x = gradc.randn(4, 8) * 1e4
    compiled = gradc.compile(lambda x: m(x).sum(), amp="fp16")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)   # any NumPy overflow warning fails the test
        with gradc.amp.autocast():
            loss = (m(x) ** 2).sum()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        out = compiled(x * 1e3)
        out.backward()
    assert scaler.get_scale() == 2.0 ** 39   # the overflow was seen: the scale backed off
    assert not np.isfinite(out.item())
    with pytest.warns(RuntimeWarning):   # outside amp, NumPy's warnings stay as they are
        np.float32(3e38) * np.float32(10)
