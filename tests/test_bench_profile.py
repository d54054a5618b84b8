"""`gradc bench`'s report (traces, per-call overhead, spread, the W1C workload, --help) and the
kernel profiler (GRADC_PROFILE, `gradc bench --profile`)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gradc
from gradc import bench, cli
from gradc.runtime import profile

ROOT = Path(__file__).resolve().parent.parent


def _row(impl, times, **more):
    return dict(workload="W9 test", impl=impl, median_ms=float(np.median(times)), min_ms=min(times),
                max_ms=max(times), calls=len(times), spread=max(times) / min(times), speedup_vs_eager=1.0,
                peak_bytes=None, first_call_s=0.1, max_rel_diff_vs_eager=0.0, **more)


def test_spread_above_the_limit_is_marked_and_listed():
    steady, shaky = _row("gradc eager", [1.0, 1.1, 1.2]), _row("gradc compiled", [1.0, 3.0, 1.1], traces=1,
                                                                   overhead_us=12.5, overhead_err_us=0.25)
    steady["spread"] = 1.2
    table = bench.format_table([steady, shaky])
    lines = table.splitlines()
    assert "spread" in lines[0] and "traces" in lines[0] and "overhead us" in lines[0]
    assert "3.00!" in lines[3] and "1.20!" not in lines[2] and " 12.5±0.2 " in lines[3]
    assert bench.unreliable([steady, shaky]) == [shaky]


def test_measure_counts_traces_and_per_call_overhead():
    class Bar:
        def set(self, label):
            pass

        def step(self, n=1):
            pass
    fn = lambda x: (x * 2 + 1).sum()
    cands = bench.gradc_candidates(fn, (gradc.randn(64, 8),), fn, (gradc.randn(64, 8),), "numpy")
    rows = bench.measure("W9 test", cands, 1, 5, 1, Bar())
    eager, compiled = rows
    assert eager["traces"] is None and eager["overhead_us"] is None
    assert compiled["traces"] == 1   # one trace served every call
    assert compiled["overhead_us"] is not None and compiled["overhead_us"] < compiled["median_ms"] * 1e3
    assert 0 <= compiled["overhead_err_us"] < compiled["median_ms"] * 1e3
    assert compiled["spread"] == compiled["max_ms"] / compiled["min_ms"]   # one round: over its calls
    assert bench.spread([[1.0, 5.0, 2.0], [2.0, 2.2, 2.4], [1.9, 9.0, 2.1]]) == pytest.approx(2.2 / 2.0)
    assert bench.spread([[]]) is None


def test_cosine_schedule_workload_traces_at_most_twice_and_matches_eager(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "SPREAD_LIMIT", 1.0)   # every spread is then "unreliable": the note must say so
    out = tmp_path / "b.json"
    assert cli.main(["bench", "--quick", "--scale", "small", "--workloads", "W1C", "--peers", "none",
                     "--backend", "numpy", "--no-progress", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "W1C mlp-cosine" in text and "unreliable: the spread of W1C mlp-cosine" in text
    rows = {r["impl"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["gradc compiled"]["traces"] <= 2 and rows["gradc compiled"]["max_rel_diff_vs_eager"] < 1e-5
    assert rows["gradc compiled"]["overhead_us"] is not None


def test_cosine_workload_lr_changes_every_call_without_retracing():
    fe, ae = gradc.workloads.WORKLOADS["W1C"].build("small")
    fc, ac = gradc.workloads.WORKLOADS["W1C"].build("small")
    step = gradc.compile(fc, backend="numpy")
    lrs = []
    for _ in range(6):
        np.testing.assert_allclose(step(*ac).item(), fe(*ae).item(), rtol=1e-5)
        fc.after_call()
        fe.after_call()
        lrs.append(fc.after_call.__self__.optimizer.param_groups[0]["lr"])
    assert step.trace_count <= 2 and len(set(lrs)) == 6   # a new learning rate every call, no retrace


def test_bench_help_names_only_files_that_exist(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    text = capsys.readouterr().out
    named = set(re.findall(r"[\w./-]+\.(?:md|py|json)\b", text)) - {"SCRIPT.py"}
    assert "gradc/workloads.py" in named
    for name in named:
        assert (ROOT / name).exists(), f"--help names {name}, which does not exist"
    assert cli.SPREAD_LIMIT == bench.SPREAD_LIMIT and list(cli.WORKLOAD_KEYS) == list(gradc.workloads.WORKLOADS)
    for key in cli.WORKLOAD_KEYS:
        assert re.search(rf"^  {key} ", text, re.M)


def test_profiler_times_every_unit_once_per_run():
    model = gradc.nn.Sequential(gradc.nn.Linear(16, 64), gradc.nn.GELU(), gradc.nn.LayerNorm(64))
    step = gradc.compile(model, backend="numpy")
    x = gradc.randn(256, 16)
    with gradc.no_grad():
        step(x)
        with profile.Profiler() as p:
            for _ in range(4):
                step(x)
    (key, rows), = p.results().items()
    assert key[1] == "numpy" and p.runs[key] == 4
    assert [r["calls"] for r in rows] == [4] * len(rows)   # each unit found in the generated code, timed per run
    group = [r for r in rows if r["kind"] == "numpy group"]
    assert group and group[0]["gbps"] > 0 and group[0]["seconds"] > 0
    text = p.report()
    assert "GB/s (np.copyto of 64 MiB" in text and "4 runs" in text and group[0]["name"] in text
    assert profile.copy_bandwidth() == profile.copy_bandwidth() > 1e8   # measured once per process


def _env(**kv):
    env = dict(os.environ, **kv)
    env.pop("GRADC_DEBUG", None)
    return env


SCRIPT = "import gradc\nf = gradc.compile(lambda x: (x * 2).relu().sum(), backend='numpy')\n" \
         "for _ in range(3):\n    f(gradc.randn(64, 64))\n"


def test_gradc_profile_env_prints_a_report_at_exit_and_checks_its_value():
    on = subprocess.run([sys.executable, "-c", SCRIPT], env=_env(GRADC_PROFILE="1"), capture_output=True,
                        text=True, timeout=120)
    assert on.returncode == 0, on.stderr
    assert "gradc profile:" in on.stderr and "(numpy backend): 3 runs" in on.stderr and "GB/s" in on.stderr
    bad = subprocess.run([sys.executable, "-c", SCRIPT], env=_env(GRADC_PROFILE="yes"), capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode != 0 and "GRADC_PROFILE='yes'" in bad.stderr and "set 1" in bad.stderr
