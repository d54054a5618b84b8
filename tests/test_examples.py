"""Each script in examples/ runs to completion in a fresh interpreter and prints what it promises.

The scripts check their own results (closed-form gradients, expected values, an accuracy threshold)
and exit non-zero when a check fails; these tests also read the key lines of their output."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name, timeout=120):
    env = dict(os.environ)
    # Import gradc from this checkout, the same code the rest of the suite tests.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def test_every_example_is_tested():
    # ddp_train.py runs under mpiexec in tests/test_distributed.py::test_ddp_example
    tested = {"autograd_linear.py", "where_example.py", "no_grad_inference.py", "train_mlp.py", "ddp_train.py",
              "train_cnn.py", "train_gpt.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_autograd_linear():
    out = run_example("autograd_linear.py")
    assert re.search(r"^loss: \d+\.\d+$", out, re.M)
    grads = out.split("weight.grad", 1)[1]
    assert grads.count("[") >= 4          # a 3 x 2 weight gradient, then the bias gradient
    assert "bias.grad:" in out
    assert "gradients match the closed form" in out


def test_where_example():
    out = run_example("where_example.py")
    assert "dy/dx:  [-1.0, -0.5, 0.0, 0.5, 1.0]" in out
    assert "y:      [1.5, 0.125, 0.0, 0.125, 1.5]" in out


def test_no_grad_inference():
    out = run_example("no_grad_inference.py")
    assert re.search(r"training mode: requires_grad=True, grad_fn=<\w+>", out)
    assert "under no_grad: requires_grad=False, grad_fn=None" in out
    assert "grad mode restored after the block: True" in out


def test_train_mlp_reaches_its_threshold():
    out = run_example("train_mlp.py", timeout=300)
    losses = [float(v) for v in re.findall(r"^epoch +\d+  loss (\d+\.\d+)$", out, re.M)]
    assert len(losses) == 30
    assert losses[-1] < losses[0] / 5, losses
    match = re.search(r"^test accuracy: (\d\.\d+) \(threshold (\d\.\d+)\)", out, re.M)
    assert match, out
    accuracy, threshold = float(match.group(1)), float(match.group(2))
    assert threshold >= 0.9 and accuracy >= threshold


def test_train_mlp_fails_loudly_below_threshold(tmp_path):
    """The accuracy check must be able to fail: with an unreachable threshold the script exits 1."""
    src = (EXAMPLES / "train_mlp.py").read_text()
    assert "THRESHOLD = 0.95" in src
    script = tmp_path / "train_mlp.py"
    script.write_text(src.replace("THRESHOLD = 0.95", "THRESHOLD = 1.01").replace("EPOCHS = 30", "EPOCHS = 1"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "FAILED: test accuracy" in proc.stderr


def test_readme_test_command_is_the_one_ci_runs():
    """The README's test command appears, as a line of its own, in .ci/run."""
    readme = (ROOT / "README.md").read_text().splitlines()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = "python -m pytest"
    assert command in readme, "the README no longer shows the test command"
    assert command in ci, ".ci/run does not run the README's test command"


def test_readme_python_snippets_run(tmp_path, monkeypatch):
    """The README's Python snippets run as written, in order, in one namespace (in a scratch
    directory: some of them write dumps and artifacts)."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has no Python snippets"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme"}
    for i, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"README.md python block {i}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"README python block {i} failed: {type(e).__name__}: {e}\n{block}") from e


def test_train_cnn_reaches_its_threshold():
    out = run_example("train_cnn.py", timeout=300)
    losses = [float(v) for v in re.findall(r"^epoch +\d+  loss (\d+\.\d+)$", out, re.M)]
    assert len(losses) == 5 and losses[-1] < losses[0] / 5, losses
    assert re.search(r"^compiled training step: traced [12] time\(s\)$", out, re.M), out
    match = re.search(r"^test accuracy: (\d\.\d+) \(threshold (\d\.\d+)\)", out, re.M)
    assert match and float(match.group(1)) >= float(match.group(2)), out


def test_train_gpt_loss_goes_down():
    out = run_example("train_gpt.py", timeout=300)
    losses = [float(v) for v in re.findall(r"^step +\d+  loss (\d+\.\d+)$", out, re.M)]
    assert len(losses) == 7 and losses[-1] < losses[0] / 2, losses
    assert re.search(r"^compiled training step: traced [12] time\(s\)$", out, re.M), out
    assert re.search(r"^greedy sample: to be.{60}$", out, re.M), out


def test_eager_benchmark_runs(tmp_path):
    """A minimal run of the benchmark: it checks agreement between implementations before timing."""
    import json
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_eager.py"), "--rounds", "1",
                           "--repeat", "2", "--json", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())["results"]
    assert {(r["workload"], r["impl"]) for r in rows} >= {("W1 mlp-train", "gradc eager"),
                                                           ("W4 mlp-infer-b1", "gradc eager")}
    assert all(r["median_ms"] > 0 for r in rows)
    assert "W1 mlp-train" in proc.stdout
