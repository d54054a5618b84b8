"""benchmarks/gpu_check.py on a machine without a GPU: it runs from any directory, every stage ends
as one row (the GPU stages failed with gradc's own message, not a traceback that stops the run),
the JSON has one entry per stage, and deadlines hold."""
import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

import gradc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.py")
STAGES = ["environment", "cuda_tests", "W1", "W2", "W3", "W4", "bandwidth"]
GPU_STAGES = ["W1", "W2", "W3", "W4", "bandwidth"]

pytestmark = pytest.mark.skipif(gradc.cuda.is_available(), reason="checks the script's behaviour without a GPU")


def _run(tmp_path, *args):
    # From a directory outside the checkout, with no PYTHONPATH: the script finds gradc itself.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, SCRIPT, "--out", str(tmp_path / "out"), *args], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=240)
    doc = json.loads((tmp_path / "out" / "gpu_check.json").read_text()) if (tmp_path / "out").exists() else None
    return r, doc


def test_without_a_gpu_every_stage_reports_and_the_run_completes(tmp_path):
    t0 = time.monotonic()
    r, doc = _run(tmp_path, "--budget-s", "40", "--repeat", "2")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert took < 40 + 30, f"the run took {took:.0f} s on a 40 s budget"
    assert [s["name"] for s in doc["stages"]] == STAGES
    stages = {s["name"]: s for s in doc["stages"]}

    env = stages["environment"]
    assert env["status"] == "ok", env
    assert env["result"]["gradc"]["from_checkout"] is True
    assert env["result"]["gradc"]["path"] == os.path.join(ROOT, "gradc")

    # pytest on the CUDA tests cannot finish in this budget: killed at its deadline, reported as such
    tests = stages["cuda_tests"]
    assert tests["status"] == "failed" and "timed out after" in tests["error"], tests
    assert tests["seconds"] < 40
    assert os.path.exists(tests["result"]["log"])

    for name in GPU_STAGES:
        s = stages[name]
        assert s["status"] in ("failed", "skipped"), s
        assert "DeviceError" in s["error"] and "CUDA" in s["error"], s
        assert "traceback" not in s, "a stage's failure must be gradc's named error, not an unexpected exception"
    w1 = stages["W1"]["result"]["candidates"]
    assert set(w1) == {"gradc eager (CuPy)", "gradc compiled (cuda)", "pytorch eager", "torch.compile"}
    for name in ("pytorch eager", "torch.compile"):
        assert "skipped" in w1[name] or "error" in w1[name], w1[name]

    table = r.stdout
    for name in STAGES:
        assert any(line.startswith(name) for line in table.splitlines()), f"no row for {name} in\n{table}"
    assert str(tmp_path / "out" / "gpu_check.json") in table


def test_skip_tests_and_strict(tmp_path):
    r, doc = _run(tmp_path, "--budget-s", "30", "--skip-tests", "--strict")
    assert r.returncode == 1, r.stdout + r.stderr   # the GPU stages failed
    stages = {s["name"]: s for s in doc["stages"]}
    assert stages["cuda_tests"]["status"] == "skipped" and stages["cuda_tests"]["error"] == "--skip-tests"
    assert "Traceback" not in r.stderr


def test_bad_arguments_are_refused(tmp_path):
    r = subprocess.run([sys.executable, SCRIPT, "--budget-s", "0"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "--budget-s must be positive" in r.stderr


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_stage_that_does_not_return_is_stopped_at_its_deadline(tmp_path):
    gc = _module()
    args = gc.argparse.Namespace(out=str(tmp_path), budget_s=6.0, repeat=1, skip_tests=False, strict=False)
    run = gc.Run(args)
    t0 = time.monotonic()
    hung = run.stage("W1", lambda until: time.sleep(60))
    assert time.monotonic() - t0 < 15
    assert hung["status"] == "failed" and "StageTimeout" in hung["error"]
    # the budget is spent: what comes next is skipped, and the JSON has both entries
    time.sleep(max(0.0, run.end - time.monotonic()))
    late = run.stage("W2", lambda until: {"ran": True})
    assert late["status"] == "skipped" and "time budget" in late["error"]
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [s["name"] for s in doc["stages"]] == ["W1", "W2"]


def test_timing_loop_stops_at_its_deadline():
    gc = _module()
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.05)
    _, stats = gc.timed(slow, lambda: None, repeat=1000, until=time.monotonic() + 0.3, warmup=1)
    assert 1 <= stats["calls"] < 20 and len(calls) == stats["calls"] + 2
