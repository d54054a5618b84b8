"""Ahead-of-time artifacts: export/save/load round trips (checked in a fresh process that has none of
the model's code), every kind of bad artifact, atomic saves, and the compile cache under races and
corruption."""
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn, optim
from gradc.runtime import cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs in a fresh interpreter: loads the artifact, runs it on the saved inputs, writes the outputs
# and the program's state. It imports gradc only: no model code exists there.
RUNNER = textwrap.dedent("""
    import sys, numpy as np, gradc
    path, inputs, steps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    prog = gradc.load(path)
    data = np.load(inputs)
    results = {}
    for k in range(steps):
        args = [gradc.from_numpy(data[f"step{k}_arg{i}"]) for i in range(len(prog.artifact_info["inputs"]))]
        res = prog(*args)
        res = res if isinstance(res, (tuple, list)) else (res,)
        for i, r in enumerate(res):
            results[f"step{k}_out{i}"] = r.numpy()
    for name, t in prog.state_dict().items():
        results["state:" + name] = t.detach().numpy()
    np.savez(out, **results)
""")


def run_fresh(tmp_path, artifact, step_args, env=None):
    """Load `artifact` in a new Python process and run it once per entry of step_args."""
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, **{f"step{k}_arg{i}": a for k, args in enumerate(step_args) for i, a in enumerate(args)})
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    out = tmp_path / "fresh.npz"
    proc = subprocess.run([sys.executable, str(runner), str(artifact), str(inputs), str(len(step_args)), str(out)],
                          capture_output=True, text=True, timeout=120, cwd=str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def as_list(res):
    return list(res) if isinstance(res, (tuple, list)) else [res]


# ---------------------------------------------------------------------------------------------- round trips
def mlp_infer():
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 3))
    return model, [np.random.default_rng(k).standard_normal((5, 6), dtype=np.float32) for k in range(2)]


def block_infer():
    from gradc.workloads import Block
    gradc.manual_seed(1)
    model = Block(d=16, heads=2, hidden=32, seq=8)
    model.eval()
    return model, [np.random.default_rng(k).standard_normal((2, 8, 16), dtype=np.float32) for k in range(2)]


@pytest.mark.parametrize("make", [mlp_infer, block_infer], ids=["mlp", "transformer-block"])
def test_inference_round_trip_in_fresh_process(tmp_path, make):
    model, xs = make()
    prog = gradc.export(model, gradc.from_numpy(xs[0]))
    path = prog.save(tmp_path / "model.gradc")
    assert zipfile.is_zipfile(path)
    original = [prog(gradc.from_numpy(x)).numpy() for x in xs]
    for x, got in zip(xs, original):   # the compiled program agrees with eager mode
        with gradc.no_grad():
            np.testing.assert_allclose(got, model(gradc.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-5)
    fresh = run_fresh(tmp_path, path, [(x,) for x in xs])
    for k, want in enumerate(original):
        np.testing.assert_array_equal(fresh[f"step{k}_out0"], want)
    for name, t in model.state_dict().items():   # state names are the module's own
        np.testing.assert_array_equal(fresh["state:" + name], t.detach().numpy())


def sgd_momentum():
    gradc.manual_seed(2)
    model = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 3))
    return model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def adam():
    gradc.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Linear(12, 3))
    return model, optim.Adam(model.parameters(), lr=0.01)


@pytest.mark.parametrize("make", [sgd_momentum, adam], ids=["sgd-momentum", "adam"])
def test_training_step_continues_identically_in_fresh_process(tmp_path, make):
    model, opt = make()

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((8, 4), dtype=np.float32), rng.integers(0, 3, size=8)) for _ in range(6)]
    tensors = lambda b: (gradc.from_numpy(b[0]), gradc.from_numpy(b[1]))  # noqa: E731
    with pytest.raises(gradc.ArtifactError, match="Run one step first"):
        gradc.export(step, *tensors(batches[0]))  # the optimizer state does not exist yet
    compiled = gradc.compile(step)
    for b in batches[:2]:   # K = 2 steps before saving
        compiled(*tensors(b))
    prog = gradc.export(step, *tensors(batches[0]))
    path = prog.save(tmp_path / "step.gradc")
    names = set(prog.state_dict())
    assert {"model.0.weight", "model.2.bias"} <= names
    assert any(n.startswith("opt.model.0.weight.") for n in names)

    saved_weight = model[0].weight.detach().numpy().copy()
    fresh = run_fresh(tmp_path, path, batches[2:])
    losses = [prog(*tensors(b)).item() for b in batches[2:]]   # the original process goes on
    assert not np.array_equal(model[0].weight.detach().numpy(), saved_weight)
    for k, loss in enumerate(losses):
        assert fresh[f"step{k}_out0"].item() == loss
    for name, t in prog.state_dict().items():
        np.testing.assert_array_equal(fresh["state:" + name], t.detach().numpy())
    np.testing.assert_array_equal(fresh["state:model.0.weight"], model[0].weight.detach().numpy())


def test_saved_source_is_the_generated_code_and_saving_is_deterministic(tmp_path):
    model, xs = mlp_infer()
    prog = gradc.export(model, gradc.from_numpy(xs[0]))
    a, b = prog.save(tmp_path / "a.gradc"), prog.save(tmp_path / "b.gradc")
    assert a.read_bytes() == b.read_bytes()
    with zipfile.ZipFile(a) as z:
        assert {n: z.read("source/" + n).decode() for n in prog.source} == prog.source
        assert json.loads(z.read("graph.json")) == json.loads(prog.ir.to_json())
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["inputs"] == [{"name": "input", "shape": [5, 6], "dtype": "float32"}]
    assert [s["name"] for s in manifest["state"]] == list(model.state_dict())
    loaded = gradc.load(a)
    assert loaded.source == prog.source
    fresh_model, _ = mlp_infer()
    with gradc.no_grad():
        fresh_model[0].weight.zero_()
    fresh_model.load_state_dict(loaded.state_dict())   # readable names fit the module
    np.testing.assert_array_equal(fresh_model[0].weight.detach().numpy(), model[0].weight.detach().numpy())
    with pytest.raises(gradc.ShapeError, match="compiled for float32"):
        loaded(gradc.randn(4, 6))
    with pytest.raises(gradc.GradcError, match="takes 1 tensor"):
        loaded(gradc.randn(5, 6), gradc.randn(5, 6))


def test_wrong_arguments_to_a_loaded_program_say_which_and_what(tmp_path):
    gradc.manual_seed(0)
    lin = nn.Linear(3, 2)
    loaded = gradc.load(gradc.export(lambda x, ids: lin(x) + ids.float().unsqueeze(1), gradc.randn(4, 3),
                                     gradc.tensor([0, 1, 2, 3])).save(tmp_path / "two.gradc"))
    x, ids = gradc.randn(4, 3), gradc.tensor([0, 1, 2, 3])
    with pytest.raises(gradc.GradcError, match=r"takes 2 tensor argument\(s\) \(x: float32\[4, 3\], "
                                               r"ids: int64\[4\]\), got 1"):
        loaded(x)
    with pytest.raises(gradc.GradcError, match=r"argument 1 is a numpy.ndarray, not a gradc Tensor.*from_numpy"):
        loaded(x, np.arange(4))
    with pytest.raises(gradc.GradcError, match=r"got 1; argument 0 is a builtins.NoneType, not a gradc Tensor"):
        loaded(None, ids)
    with pytest.raises(gradc.ShapeError, match=r"argument x: this program was compiled for float32\[4, 3\], "
                                               r"got float32\[5, 3\]"):
        loaded(gradc.randn(5, 3), ids)
    with pytest.raises(gradc.DTypeError, match=r"argument ids: .*compiled for int64\[4\], got float32\[4\]; "
                                               r"convert it with .to\(gradc.int64\)"):
        loaded(x, ids.float())
    np.testing.assert_allclose(loaded(x, ids).numpy(), (lin(x) + ids.float().unsqueeze(1)).detach().numpy(),
                               rtol=1e-6)


def test_outputs_keep_their_pytree_shape(tmp_path):
    gradc.manual_seed(0)
    lin = nn.Linear(3, 2)

    def fn(x):
        y = lin(x)
        return {"y": y, "parts": (y.sum(), [x * 2]), "tag": "v1"}

    x = gradc.randn(4, 3)
    with gradc.no_grad():
        want = fn(x)
    loaded = gradc.load(gradc.export(fn, x).save(tmp_path / "f.gradc"))
    got = loaded(x)
    assert set(got) == {"y", "parts", "tag"} and got["tag"] == "v1" and isinstance(got["parts"][1], list)
    np.testing.assert_allclose(got["y"].numpy(), want["y"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(got["parts"][1][0].numpy(), want["parts"][1][0].numpy())


def test_fp16_program_round_trips(tmp_path):
    model, xs = mlp_infer()
    x = gradc.from_numpy(xs[0])
    prog = gradc.export(model, x, amp="fp16")
    path = prog.save(tmp_path / "half.gradc")
    with zipfile.ZipFile(path) as z:
        assert json.loads(z.read("manifest.json"))["amp"] == "fp16"
    loaded = gradc.load(path)
    got = loaded(x)
    assert got.dtype == gradc.float16 and np.array_equal(got.numpy(), prog(x).numpy())
    with gradc.no_grad():
        np.testing.assert_allclose(got.numpy(), model(x).numpy(), rtol=1e-2, atol=1e-2)


def test_random_draws_stay_per_call_inputs(tmp_path):
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 4))   # training mode: a random mask
    x = gradc.randn(5, 8)
    path = gradc.export(model, x).save(tmp_path / "dropout.gradc")
    loaded = gradc.load(path)
    outs = []
    for seed in (5, 5, 6):
        gradc.manual_seed(seed)
        outs.append(loaded(x).numpy())
    gradc.manual_seed(5)
    with gradc.no_grad():
        np.testing.assert_array_equal(outs[0], model(x).numpy())   # the same draws as eager mode
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])

    def edit(m):
        next(b for b in m["bindings"] if b["kind"] == "random")["spec"][1] = [5, 17]
    with pytest.raises(gradc.ArtifactError, match="draws float32\\[5, 17\\]"):
        gradc.load(tampered(path, tmp_path, edit_manifest=edit))


def test_cuda_artifact_regenerates_its_code_without_a_gpu(tmp_path):
    model, xs = mlp_infer()
    prog = gradc.export(model, gradc.from_numpy(xs[0]), backend="cuda")
    loaded = gradc.load(prog.save(tmp_path / "cuda.gradc"))
    assert loaded.backend == "cuda" and loaded.source == prog.source and "kernels.cu" in loaded.source


# ---------------------------------------------------------------------------------------------- bad artifacts
@pytest.fixture(scope="module")
def good(tmp_path_factory):
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    path = tmp_path_factory.mktemp("good") / "good.gradc"
    gradc.export(model, gradc.randn(5, 3)).save(path)
    return path


def members_of(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def write_members(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def tampered(good, tmp_path, edit_manifest=None, edit_graph=None, edit_state=None, drop=None, rehash=True):
    """A copy of `good` with its manifest, graph or state edited (graph hash recomputed by default,
    so the checks behind the hash are reached)."""
    m = members_of(good)
    manifest = json.loads(m["manifest.json"])
    if edit_graph:
        graph = json.loads(m["graph.json"])
        edit_graph(graph)
        m["graph.json"] = json.dumps(graph, sort_keys=True).encode()
        if rehash:
            manifest["graph_hash"] = hashlib.sha256(m["graph.json"]).hexdigest()
    if edit_state:
        with np.load(io.BytesIO(m["state.npz"])) as f:
            arrays = {k: f[k] for k in f.files}
        edit_state(arrays)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        m["state.npz"] = buf.getvalue()
    if edit_manifest:
        edit_manifest(manifest)
    m["manifest.json"] = json.dumps(manifest).encode()
    if drop:
        del m[drop]
    return write_members(tmp_path / "bad.gradc", m)


def first_op(graph, op=None):
    return next(n for n in graph["nodes"] if n["op"] not in ("input", "const") and (op is None or n["op"] == op))


def test_good_artifact_loads(good):
    assert gradc.load(good)(gradc.randn(5, 3)).shape == (5, 2)


def test_missing_empty_not_zip_truncated_and_corrupt_files(good, tmp_path):
    with pytest.raises(gradc.ArtifactError, match="no such file"):
        gradc.load(tmp_path / "nothing.gradc")
    (tmp_path / "empty.gradc").write_bytes(b"")
    with pytest.raises(gradc.ArtifactError, match="empty"):
        gradc.load(tmp_path / "empty.gradc")
    (tmp_path / "text.gradc").write_text("print('hello')\n")
    with pytest.raises(gradc.ArtifactError, match="neither a gradc checkpoint .* nor a compiled-program artifact"):
        gradc.load(tmp_path / "text.gradc")
    raw = good.read_bytes()
    (tmp_path / "cut.gradc").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(gradc.ArtifactError, match="truncated"):
        gradc.load(tmp_path / "cut.gradc")
    with zipfile.ZipFile(good) as z:   # flip bytes inside graph.json's compressed data
        info = z.getinfo("graph.json")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    bad = bytearray(raw)
    for i in range(start + 10, start + 20):
        bad[i] ^= 0xFF
    (tmp_path / "flipped.gradc").write_bytes(bytes(bad))
    with pytest.raises(gradc.ArtifactError, match="graph.json is corrupt"):
        gradc.load(tmp_path / "flipped.gradc")


@pytest.mark.parametrize("member", ["manifest.json", "graph.json", "state.npz"])
def test_missing_member(good, tmp_path, member):
    with pytest.raises(gradc.ArtifactError, match=f"(missing|has no) {member}"):   # without a manifest: not an artifact
        gradc.load(tampered(good, tmp_path, drop=member))


def test_wrong_format_version_and_bad_manifest(good, tmp_path):
    with pytest.raises(gradc.ArtifactError, match="format version 99 is not supported"):
        gradc.load(tampered(good, tmp_path, edit_manifest=lambda m: m.update(format_version=99)))
    with pytest.raises(gradc.ArtifactError, match="does not describe a gradc artifact"):
        gradc.load(tampered(good, tmp_path, edit_manifest=lambda m: m.update(format="zip")))
    with pytest.raises(gradc.ArtifactError, match=r"bindings\[0\].index"):
        gradc.load(tampered(good, tmp_path, edit_manifest=lambda m: m["bindings"][0].update(index=7)))
    with pytest.raises(gradc.ArtifactError, match="inputs.*declares float32\\[6, 3\\]"):
        gradc.load(tampered(good, tmp_path, edit_manifest=lambda m: m["inputs"][0].update(shape=[6, 3])))
    m = members_of(good)
    m["manifest.json"] = b"{not json"
    with pytest.raises(gradc.ArtifactError, match="manifest.json is not valid JSON"):
        gradc.load(write_members(tmp_path / "nojson.gradc", m))


def set_attr(op, key, value):
    def edit(g):
        first_op(g, op)["attrs"][key] = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (lambda g: first_op(g).update(op="os.system"), "unknown op 'os.system'"),
    (lambda g: first_op(g, "matmul").update(shape=[5, 7]), "matmul.*records float32\\[5, 7\\]"),
    (set_attr("permute", "perm", "__import__('os').system('touch pwned')"), "is not a permutation of 0..n-1"),
    (set_attr("permute", "perm", {"a": 1}), "is not a permutation of 0..n-1"),
    (set_attr("permute", "code", 1), "has attribute 'code', which permute does not take"),
    (lambda g: g["nodes"][0]["attrs"].update(name="x); import os; (y"), "expected only a plain 'name'"),
    (lambda g: g["edges"].append([0, 10 ** 6, 0, False]), "between existing nodes"),
    (lambda g: next(n for n in g["nodes"] if n["op"] == "const").update(attrs={"fill": "1e9"}), "'fill' value of its dtype"),
], ids=["unknown-op", "inconsistent-shape", "code-string-attr", "dict-attr", "unknown-attr", "unsafe-input-name",
        "dangling-edge", "string-const"])
def test_tampered_graph(good, tmp_path, edit, message):
    with pytest.raises(gradc.ArtifactError, match=message):
        gradc.load(tampered(good, tmp_path, edit_graph=edit))
    assert not (tmp_path / "pwned").exists()


def test_cast_attribute_must_be_a_known_dtype(tmp_path):
    lin = nn.Linear(3, 2)
    path = gradc.export(lambda x: lin(x).double(), gradc.randn(4, 3)).save(tmp_path / "cast.gradc")
    with pytest.raises(gradc.ArtifactError, match="is not a known dtype name"):
        gradc.load(tampered(path, tmp_path, edit_graph=set_attr("cast", "dtype", "object")))


def test_graph_edited_without_rehash(good, tmp_path):
    with pytest.raises(gradc.ArtifactError, match="graph was modified"):
        gradc.load(tampered(good, tmp_path, edit_graph=lambda g: first_op(g, "matmul").update(where="x"),
                            rehash=False))


@pytest.mark.parametrize("edit, message", [
    (lambda a: a.update({"0.weight": np.zeros((4, 4), np.float32)}), "'0.weight' has shape \\(4, 4\\)"),
    (lambda a: a.update({"0.weight": a["0.weight"].astype(np.float64)}), "'0.weight' has dtype float64"),
    (lambda a: a.update({"0.weight": np.array([object()] * 12, dtype=object).reshape(4, 3)}), "Python objects"),
    (lambda a: a.pop("2.bias"), "missing: 2.bias"),
    (lambda a: a.update(extra=np.zeros(2)), "unexpected: extra"),
], ids=["shape", "dtype", "object-array", "missing-array", "extra-array"])
def test_bad_state(good, tmp_path, edit, message):
    with pytest.raises(gradc.ArtifactError, match=message):
        gradc.load(tampered(good, tmp_path, edit_state=edit))


def test_source_hash_mismatch_and_shipped_source_never_runs(good, tmp_path):
    marker = tmp_path / "ran"
    evil = f"open({str(marker)!r}, 'w').write('x')\n"

    # the Python module of the program (program.py on NumPy, the C program's host.py)
    py = next(n for n in json.loads(members_of(good)["manifest.json"])["source_sha256"] if n.endswith(".py"))

    def edit(m):
        m["source_sha256"][py] = hashlib.sha256(evil.encode()).hexdigest()
    bad = tampered(good, tmp_path, edit_manifest=edit)
    members = members_of(bad)
    members["source/" + py] = evil.encode()   # shipped source and its hash agree: still never run
    with pytest.raises(gradc.ArtifactError, match="regenerated from graph.json does not match"):
        gradc.load(write_members(bad, members))
    members = members_of(good)
    members["source/" + py] = members["source/" + py] + b"\n" + evil.encode()
    with pytest.raises(gradc.ArtifactError, match="shipped source was edited"):
        gradc.load(write_members(tmp_path / "edited.gradc", members))
    assert not marker.exists()


def test_program_that_creates_state_cannot_be_saved(tmp_path):
    model, opt = sgd_momentum()

    def step(x):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()

    prog = gradc.compile(step).lower(gradc.randn(2, 4))
    assert prog.one_shot
    with pytest.raises(gradc.ArtifactError, match="momentum buffers.*Run one step first"):
        prog.save(tmp_path / "x.gradc")
    assert not (tmp_path / "x.gradc").exists()


# ---------------------------------------------------------------------------------------------- atomic save
SLOW_WRITER = textwrap.dedent("""
    import sys, time, zipfile, gradc
    from gradc import nn
    gradc.manual_seed(1)
    prog = gradc.export(nn.Linear(3, 2), gradc.randn(4, 3))
    real = zipfile.ZipFile.writestr
    def slow(self, info, data, *a, **k):
        real(self, info, data, *a, **k)
        if getattr(info, "filename", info) == "graph.json":   # the artifact itself, half written
            print("writing", flush=True)
            time.sleep(60)
    zipfile.ZipFile.writestr = slow
    prog.save(sys.argv[1])
""")


def test_interrupted_save_leaves_the_previous_artifact(tmp_path):
    gradc.manual_seed(0)
    lin = nn.Linear(3, 2)
    path = gradc.export(lin, gradc.randn(4, 3)).save(tmp_path / "m.gradc")
    before = path.read_bytes()
    script = tmp_path / "writer.py"
    script.write_text(SLOW_WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert any(p.name.startswith(".m.gradc.") for p in tmp_path.iterdir())   # the half-written temp file
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert path.read_bytes() == before
    x = gradc.randn(4, 3)
    with gradc.no_grad():
        np.testing.assert_allclose(gradc.load(path)(x).numpy(), lin(x).numpy(), rtol=1e-6)


# ---------------------------------------------------------------------------------------------- compile cache
COMPILER = textwrap.dedent("""
    import sys, numpy as np, gradc
    from gradc import nn
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.LayerNorm(32), nn.Linear(32, 4))
    step = gradc.compile(model)
    with gradc.no_grad():
        out = step(gradc.from_numpy(np.ones((16, 8), np.float32)))
    np.save(sys.argv[1], out.numpy())
""")


def test_two_processes_compiling_into_one_cache_agree(tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    from gradc.runtime import tuning
    (cache_dir / "tuning.json").write_text(json.dumps({"block_bytes": tuning.block_bytes()}))  # skip measuring
    script = tmp_path / "compile.py"
    script.write_text(COMPILER)
    env = dict(os.environ, GRADC_CACHE_DIR=str(cache_dir))
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / f"out{i}.npy")], env=env,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out0.npy"), np.load(tmp_path / "out1.npy"))
    entries = list((cache_dir / "numpy").rglob("*.py"))
    assert entries and all(p.name == hashlib.sha256(p.read_bytes()).hexdigest() + ".py" for p in entries)
    assert not [p for p in cache_dir.rglob("*.tmp")]


def test_corrupt_cache_entry_is_rebuilt_not_imported(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    source = "VALUE = 41 + 1\n"
    path, key = cache.entry_path(source)
    path.parent.mkdir(parents=True)
    path.write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\nVALUE = 0\n")
    cache._loaded.pop(key, None)
    try:
        assert cache.load_module(source).VALUE == 42
    finally:
        cache._loaded.pop(key, None)
    assert path.read_text() == source and not (tmp_path / "ran").exists()
