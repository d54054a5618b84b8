"""The `gradc` command end to end, each subcommand run as a separate process: exit codes, the files
it writes, what it prints, and its --help."""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import gradc

SCRIPT = textwrap.dedent("""
    import gradc
    from gradc import nn, optim
    import gradc.nn.functional as F

    def gradc_main():
        gradc.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
        return model, (gradc.randn(6, 4),)

    def _step():
        gradc.manual_seed(1)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        opt = optim.Adam(model.parameters(), lr=0.01)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        return step, (gradc.randn(6, 4), gradc.randint(0, 3, (6,)))

    def train():
        step, args = _step()
        step(*args)   # the optimizer state exists before the step is compiled
        return step, args

    def untrained():
        return _step()

    if __name__ == "__main__":
        raise SystemExit("the command must not run the script's main block")
""")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with the script, and the environment for the command (its own compile cache)."""
    from gradc.runtime import tuning
    root = tmp_path_factory.mktemp("cli")
    (root / "model.py").write_text(SCRIPT)
    cache_dir = root / "cache"
    cache_dir.mkdir()
    (cache_dir / "tuning.json").write_text(json.dumps({"block_bytes": tuning.block_bytes()}))  # skip measuring
    env = dict(os.environ, GRADC_CACHE_DIR=str(cache_dir))
    return root, env


def gradc_cmd(work, *args, check=None):
    root, env = work
    proc = subprocess.run([sys.executable, "-m", "gradc", *map(str, args)], cwd=str(root), env=env,
                          capture_output=True, text=True, timeout=240)
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def test_help_of_every_subcommand(work):
    root, env = work
    commands = [[], ["compile"], ["dump"], ["run"], ["bench"], ["info"], ["cache"]]
    procs = [subprocess.Popen([sys.executable, "-m", "gradc", *c, "--help"], cwd=str(root), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    out = {}
    for c, p in zip(commands, procs):
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        out[" ".join(c)] = stdout
    assert all(name in out[""] for name in ("compile", "dump", "run", "bench", "info", "cache"))
    assert "gradc_main" in out["compile"] and "FACTORY" in out["compile"] and "example_args" in out["compile"]
    assert "--format" in out["dump"] and "--kernels" in out["dump"] and "-o DIR" in out["dump"]
    assert "NAME=FILE.npy" in out["run"]
    assert "--peers" in out["bench"] and "torch.compile" in out["bench"] and "--quick" in out["bench"]
    assert "GRADC_CACHE_DIR" in out["cache"]
    bad = gradc_cmd(work, "frobnicate")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_compile_run_and_dump_an_inference_model(work, tmp_path):
    root, _ = work
    artifact = tmp_path / "m.gradc"
    # the NumPy backend's layout (a module with one function per fused group) is what is checked below
    done = gradc_cmd(work, "compile", "model.py", "-o", artifact, "--backend", "numpy", check=0)
    assert "input: float32[6, 4]" in done.stdout and zipfile.is_zipfile(artifact)
    x = np.random.default_rng(0).standard_normal((6, 4))   # float64: converted to the program's float32
    np.save(tmp_path / "x.npy", x)
    gradc_cmd(work, "run", artifact, "--input", f"input={tmp_path / 'x.npy'}", "-o", tmp_path / "out", check=0)
    got = np.load(tmp_path / "out" / "output0.npy")
    want = gradc.load(artifact)(gradc.from_numpy(x.astype(np.float32))).numpy()
    np.testing.assert_array_equal(got, want)
    table = gradc_cmd(work, "run", artifact, "-i", f"0={tmp_path / 'x.npy'}", check=0).stdout
    assert "output0" in table and "[6, 2]" in table and "float32" in table

    missing = gradc_cmd(work, "run", artifact, check=2)
    assert "missing inputs: input (float32[6, 4])" in missing.stderr
    np.save(tmp_path / "wrong.npy", np.zeros((3, 4)))
    wrong = gradc_cmd(work, "run", artifact, "-i", f"input={tmp_path / 'wrong.npy'}", check=2)
    assert "has shape [3, 4]" in wrong.stderr

    graph = json.loads(gradc_cmd(work, "dump", artifact, "--graph", "--format", "json", check=0).stdout)
    with zipfile.ZipFile(artifact) as z:
        assert graph == json.loads(z.read("graph.json"))
    dot = gradc_cmd(work, "dump", artifact, "--graph", "--format", "dot", check=0).stdout
    assert dot.startswith("digraph")
    everything = gradc_cmd(work, "dump", artifact, check=0).stdout
    assert "# ==== graph.txt ====" in everything and "def run(" in everything and "planned_peak_bytes" in everything
    written = gradc_cmd(work, "dump", "model.py", "--source", "--kernels", "--stats", "--format", "json",
                        "--backend", "numpy", "-o", tmp_path / "dump", check=0).stdout.split()
    names = {os.path.relpath(p, tmp_path / "dump") for p in written}
    kernels = {n for n in names if n.startswith("kernels/")}
    assert names - kernels == {"program.py", "stats.json"} and kernels   # one function per fused group
    for k in kernels:
        text = (tmp_path / "dump" / k).read_text()
        assert text.startswith("# group g") and f"def {k[8:-3]}(r, e" in text and text in \
            (tmp_path / "dump" / "program.py").read_text().replace("\n    ", "\n")
    assert json.loads((tmp_path / "dump" / "stats.json").read_text())["nodes"] > 0
    with zipfile.ZipFile(artifact) as z:   # the script traced afresh generates the code the artifact holds
        assert (tmp_path / "dump" / "program.py").read_text() == z.read("source/program.py").decode()


def test_compile_and_run_a_training_step(work, tmp_path):
    artifact = tmp_path / "step.gradc"
    gradc_cmd(work, "compile", "model.py:train", "-o", artifact, check=0)
    np.save(tmp_path / "x.npy", np.ones((6, 4), np.float32))
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, 0, 1, 2]))
    gradc_cmd(work, "run", artifact, "-i", f"x={tmp_path / 'x.npy'}", "-i", f"y={tmp_path / 'y.npy'}",
              "-o", tmp_path / "out", check=0)
    prog = gradc.load(artifact)
    want = prog(gradc.ones(6, 4), gradc.tensor([0, 1, 2, 0, 1, 2])).item()
    assert np.load(tmp_path / "out" / "output0.npy").item() == want
    stats = gradc_cmd(work, "dump", "model.py:train", "--stats", check=0).stdout
    assert "fused_groups" in stats


def test_compile_errors_exit_non_zero_with_a_message(work, tmp_path):
    r = gradc_cmd(work, "compile", "model.py:nothing", "-o", tmp_path / "a.gradc", check=1)
    assert "defines no function 'nothing'" in r.stderr
    r = gradc_cmd(work, "compile", "absent.py", "-o", tmp_path / "a.gradc", check=1)
    assert "absent.py: no such script" in r.stderr
    r = gradc_cmd(work, "compile", "model.py:untrained", "-o", tmp_path / "a.gradc", check=1)
    assert "ArtifactError" in r.stderr and "Run one step first" in r.stderr
    assert not (tmp_path / "a.gradc").exists()
    (tmp_path / "junk.gradc").write_bytes(b"junk")
    r = gradc_cmd(work, "run", tmp_path / "junk.gradc", check=1)
    assert "neither a gradc checkpoint" in r.stderr and "compiled-program artifact" in r.stderr
    r = gradc_cmd(work, "dump", tmp_path / "junk.gradc", check=1)
    assert "ArtifactError" in r.stderr


def test_bench_a_script_quickly(work, tmp_path):
    r = gradc_cmd(work, "bench", "model.py", "--quick", "--json", tmp_path / "b.json", check=0)
    assert "gradc eager" in r.stdout and "gradc compiled" in r.stdout and "speed-up" in r.stdout
    assert "gradc bench:" in r.stderr   # progress (plain lines when stderr is not a terminal)
    results = json.loads((tmp_path / "b.json").read_text())["results"]
    assert [row["impl"] for row in results] == ["gradc eager", "gradc compiled"]
    for row in results:
        assert row["calls"] == 3 and row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        assert row["peak_bytes"] > 0 and row["max_rel_diff_vs_eager"] < 1e-5


def test_bench_bundled_workloads_at_small_scale(work, tmp_path):
    import importlib.util
    has_torch = importlib.util.find_spec("torch") is not None
    r = gradc_cmd(work, "bench", "--quick", "--scale", "small", "--workloads", "W1,W4", "--no-progress",
                  "--json", tmp_path / "b.json", check=0)
    assert "W1 mlp-train" in r.stdout and "W4 mlp-infer-b1" in r.stdout
    # --no-progress: stderr holds no progress, warning or traceback, only the note when PyTorch is absent
    note = "gradc bench: PyTorch is not installed; comparing gradc eager and compiled only"
    assert r.stderr.strip() == ("" if has_torch else note), r.stderr
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert {row["impl"] for row in rows} == {"gradc eager", "gradc compiled"} | ({"pytorch eager"} if has_torch
                                                                                 else set())
    for row in rows:   # every implementation computes the same first step from the same weights
        assert row["max_rel_diff_vs_eager"] < 1e-4, row
    assert gradc_cmd(work, "bench", "--workloads", "W9", check=2).stderr.count("unknown workload 'W9'") == 1


def test_info_and_cache(work, tmp_path):
    root, env = work
    env = dict(env, GRADC_CACHE_DIR=str(tmp_path / "c"))
    work2 = (root, env)
    info = gradc_cmd(work2, "info", check=0).stdout
    for word in ("gradc", "numpy", "jinja2", "networkx", "python", "GPU", "backends", str(tmp_path / "c")):
        assert word in info
    assert ("found:" in info) == gradc.cuda.is_available()
    gradc_cmd(work2, "dump", "model.py", "--stats", check=0)   # compiles into the cache
    assert not re.search(r"\(0 files", gradc_cmd(work2, "cache", check=0).stdout)
    cleared = gradc_cmd(work2, "cache", "clear", check=0).stdout
    assert cleared.startswith("removed") and not (tmp_path / "c").exists()


@pytest.mark.skipif(shutil.which("gradc") is None, reason="the gradc console script is not installed on PATH")
def test_console_script():
    r = subprocess.run(["gradc", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"gradc {gradc.__version__}"
