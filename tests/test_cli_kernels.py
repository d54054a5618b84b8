"""`gradc dump --kernels` and `--stats`, `--backend c` on every subcommand that chooses a backend,
and a bad flag answered with that subcommand's usage (the command run in-process through main)."""
import json
import textwrap

import pytest

from gradc import cli
from gradc.runtime import native

SCRIPT = textwrap.dedent("""
    import gradc
    from gradc import nn
    import gradc.nn.functional as F


    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 32)
            self.norm = nn.LayerNorm(32)

        def forward(self, x):
            h = self.fc(x)
            h = F.gelu(h) * 2.0 + 1.0
            return self.norm(h)


    def gradc_main():
        gradc.manual_seed(0)
        return Block(), (gradc.randn(64, 16),)


    def matmul_only():
        with gradc.no_grad():
            return (lambda a, b: a @ b), (gradc.randn(8, 8), gradc.randn(8, 8))
""")
LINES = {"fc": 14, "gelu": 15, "norm": 16}   # the script's lines of forward()


@pytest.fixture
def script(tmp_path, monkeypatch):
    (tmp_path / "block.py").write_text(SCRIPT)
    monkeypatch.chdir(tmp_path)
    return "block.py"


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


needs_cc = pytest.mark.skipif(not native.available(), reason="no working C compiler for backend 'c'")


@needs_cc
def test_c_kernels_map_lines_to_the_model(script, capsys, tmp_path):
    code, out, err = run(capsys, "dump", script, "--backend", "c", "--kernels", "-o", "dump")
    assert code == 0, err
    files = sorted(p.relative_to(tmp_path / "dump").as_posix() for p in (tmp_path / "dump").rglob("*.c"))
    assert files and all(f.startswith("kernels/") for f in files)
    fused = max(((tmp_path / "dump" / f).read_text() for f in files), key=len)
    assert fused.startswith("/* group g") and "void g" in fused
    erf = [line for line in fused.splitlines() if "erff(" in line and "=" in line]
    assert erf and all(line.rstrip().endswith(f"/* block.py:{LINES['gelu']} */") for line in erf)
    assert f"/* block.py:{LINES['fc']} */" in fused and f"/* block.py:{LINES['norm']} */" in fused
    # one kernel per file, each with one function: the dump of every C kernel is the program's C source
    code, src, _ = run(capsys, "dump", script, "--backend", "c", "--source")
    for f in files:
        assert (tmp_path / "dump" / f).read_text().rstrip() in src


def test_numpy_kernels_are_one_function_per_fused_group(script, capsys):
    code, out, err = run(capsys, "dump", script, "--backend", "numpy", "--kernels")
    assert code == 0, err
    parts = out.split("# ==== kernels/")[1:]
    assert parts and all(p.split(" ====\n", 1)[0].endswith(".py") for p in parts)
    fused = max(parts, key=len).split(" ====\n", 1)[1]
    assert fused.startswith("# group g") and "\ndef g" in fused and f"# block.py:{LINES['gelu']}" in fused
    compile(fused, "kernel", "exec")   # each file is a function standing on its own


def test_numpy_program_without_fused_groups_says_so(script, capsys):
    code, out, err = run(capsys, "dump", f"{script}:matmul_only", "--backend", "numpy", "--kernels")
    assert code == 0 and out == ""
    assert "the numpy backend has no separate kernels for this program" in err and "--source" in err


def test_stats_print_as_a_table_with_bytes_per_kernel(script, capsys):
    code, out, err = run(capsys, "dump", script, "--backend", "numpy", "--stats")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "program (numpy backend)"
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["kernel", "runs"])
    assert lines[head - 1] == "program kernels, bytes per call:" and "model line" in lines[head]
    rows = (lines[head + 2:] + [""])[:(lines[head:] + [""]).index("") - 2]
    assert any(r.split()[1:3] == ["numpy", "op"] and r.split()[-1] == "matmul" for r in rows)
    assert rows[-1].split()[0] == "total"
    code, out, _ = run(capsys, "dump", script, "--backend", "numpy", "--stats", "--format", "json")
    stats = json.loads(out)
    matmul = [r for r in stats["kernels_bytes"] if r["ops"] == "matmul"][0]
    # x (64, 16) and the transposed weight (16, 32) read, the (64, 32) product written, float32
    assert (matmul["bytes_read"], matmul["bytes_written"]) == ((64 * 16 + 16 * 32) * 4, 64 * 32 * 4)


def test_prog_stats_is_a_dict_that_prints_as_a_table():
    import gradc
    prog = gradc.compile(lambda x: (x * 2 + 1).sum(), backend="numpy").lower(gradc.randn(32, 8))
    s = prog.stats
    assert isinstance(s, dict) and s["nodes"] == prog.stats["nodes"] and json.loads(json.dumps(s))["nodes"]
    group = [r for r in s["kernels_bytes"] if r["kind"] == "numpy group"]
    # x read once, and the constants 2 and 1 (0-d float32 arrays in NumPy); the sum written (4 bytes)
    assert group and group[0]["bytes_read"] == 32 * 8 * 4 + 2 * 4
    assert group[0]["bytes_written"] == 4
    assert str(s) == repr(s) and str(s).startswith("program (numpy backend)") and "bytes per call" in str(s)


@pytest.mark.parametrize("sub", ["compile", "dump", "bench"])
def test_backend_c_is_a_choice(sub, capsys):
    with pytest.raises(SystemExit):
        cli.main([sub, "--help"])
    assert "{auto,numpy,c,cuda}" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["dump", "x.gradc", "--kernls"], ["bench", "--quik"], ["compile", "m.py", "-o",
                                                                                          "a", "--fast"]])
def test_bad_flag_shows_the_subcommands_usage(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith(f"usage: gradc {argv[0]} ") and f"unrecognized arguments: {argv[-1]}" in err


def test_compile_trace_error_gives_no_fullgraph_advice(tmp_path, monkeypatch, capsys):
    (tmp_path / "branchy.py").write_text(textwrap.dedent("""
        import gradc

        def step(x):
            if x.sum() > 0:
                return x * 2
            return x

        def gradc_main():
            return step, (gradc.ones(3),)
    """))
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "compile", "branchy.py", "-o", "b.gradc")
    assert code == 1 and "TraceError" in err and "branchy.py:5" in err and "gradc.where" in err
    assert "fullgraph" not in err   # `gradc compile` has no such option


def test_a_loaded_artifacts_stats_print_as_a_table(tmp_path):
    import gradc
    prog = gradc.export(lambda x: (x * 2 + 1).sum(), gradc.randn(8, 4), backend="numpy")
    loaded = gradc.load(prog.save(tmp_path / "p.gradc"))
    text = str(loaded.stats)
    assert text.startswith("program (numpy backend)") and "bytes per call" in text
    assert loaded.stats["artifact"] == str(tmp_path / "p.gradc")
