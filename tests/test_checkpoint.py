"""gradc.save / gradc.load: checkpoints round-trip tensors (dtype and shape kept, loaded plain),
state dicts, optimizer and scheduler state dicts and nested containers exactly; a run resumed
from a checkpoint equals the uninterrupted run; writes are atomic; and bad, truncated or crafted
files (a pickle payload among them) raise ArtifactError without running anything: a canary file
that the payload would create never appears."""
import collections
import io
import json
import math
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import ArtifactError, GradcError, nn, optim
from gradc.optim import lr_scheduler
from gradc.serialization import MAGIC


def _eq(a, b):
    """Deep equality that compares tensors and arrays by dtype, shape and values, and types exactly."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, gradc.Tensor):
        assert a.dtype is b.dtype and a.shape == b.shape and a.device == b.device
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _eq(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _eq(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def test_round_trip_of_everything_a_checkpoint_holds(tmp_path):
    t = gradc.tensor([[1.5, -2.0], [3.0, 4.0]])
    obj = {
        "f32": t, "f64": gradc.tensor([1e-300, 2.0], dtype=gradc.float64),
        "f16": gradc.tensor([0.5], dtype=gradc.float16), "i64": gradc.arange(5), "bool": gradc.tensor([True, False]),
        "scalar": gradc.tensor(3.25), "empty": gradc.zeros(0, 3),
        "np": np.arange(6, dtype=np.int16).reshape(2, 3), "npc": np.array([1 + 2j]), "npf": np.float32(2.5),
        "npi": np.int64(-7), "nested": [1, 2.5, None, True, "text", (3, [4, {"deep": (t,)}])],
        "specials": [float("inf"), float("-inf"), float("nan"), -0.0, 2 ** 80, -1],
        "od": collections.OrderedDict([("b", 1), ("a", 2)]), 5: "int key", (1, "x"): "tuple key", None: 0, 2.5: 1,
        "dtype": gradc.float16, "device": gradc.device("cpu"), "unicode": "żółw ✓",
    }
    path = tmp_path / "ck.pt"
    gradc.save(obj, path)
    back = gradc.load(path)
    _eq(back, obj)
    assert back["nested"][5][1][1]["deep"][0] is back["f32"]  # one tensor saved twice loads as one object
    assert math.copysign(1, back["specials"][3]) == -1
    # a file object works too, and gives the same bytes as a path
    buf = io.BytesIO()
    gradc.save(obj, buf)
    assert buf.getvalue() == path.read_bytes()
    buf.seek(0)
    _eq(gradc.load(buf), obj)


def test_tensors_load_plain_and_keep_dtype_shape():
    p = nn.Parameter(gradc.randn(3, 2))
    buf = io.BytesIO()
    gradc.save({"p": p, "view": p.detach()[1:]}, buf)
    buf.seek(0)
    out = gradc.load(buf)
    assert type(out["p"]) is gradc.Tensor and not out["p"].requires_grad and out["p"].is_leaf
    assert out["view"].shape == (2, 2)
    np.testing.assert_array_equal(out["view"].numpy(), p.detach().numpy()[1:])


def test_module_state_dict_round_trip(tmp_path):
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    sd = model.state_dict()
    gradc.save(sd, tmp_path / "m.ckpt")
    loaded = gradc.load(tmp_path / "m.ckpt")
    assert type(loaded) is type(sd) and list(loaded) == list(sd)
    gradc.manual_seed(1)
    other = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    other.load_state_dict(loaded)
    x = gradc.randn(3, 4)
    np.testing.assert_array_equal(other(x).detach().numpy(), model(x).detach().numpy())


def _batches(n=12):
    rng = np.random.default_rng(0)
    return [(gradc.tensor(rng.standard_normal((8, 5)).astype(np.float32)), gradc.tensor(rng.integers(0, 3, 8)))
            for _ in range(n)]


def _setup():
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-2)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=12)
    return model, opt, sched


def _train(model, opt, sched, batches):
    losses = []
    for x, y in batches:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def test_resume_mid_training_equals_the_uninterrupted_run(tmp_path):
    batches = _batches()
    model, opt, sched = _setup()
    full = _train(model, opt, sched, batches)

    model, opt, sched = _setup()
    first = _train(model, opt, sched, batches[:5])
    gradc.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rng": gradc.get_rng_state(), "step": 5}, tmp_path / "resume.ckpt")
    del model, opt, sched
    ck = gradc.load(tmp_path / "resume.ckpt", map_location="cpu")
    model, opt, sched = _setup()  # fresh objects, then everything restored
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["scheduler"])
    gradc.set_rng_state(ck["rng"])  # dropout draws continue where they were
    assert ck["step"] == 5
    rest = _train(model, opt, sched, batches[5:])
    assert first + rest == full  # bit for bit
    assert len(set(full)) > 5


def test_map_location_forms(tmp_path):
    path = tmp_path / "t.ckpt"
    gradc.save({"w": gradc.ones(2)}, path)
    for loc in ("cpu", gradc.device("cpu"), {"cpu": "cpu"}, None):
        assert gradc.load(path, map_location=loc)["w"].device == gradc.device("cpu")
    # PyTorch's function form: what it returns says where each tensor goes (None: where it was saved)
    assert gradc.load(path, map_location=lambda storage, loc: storage)["w"].device == gradc.device("cpu")
    assert gradc.load(path, map_location=lambda storage, loc: None)["w"].tolist() == [1.0, 1.0]
    with pytest.raises(GradcError, match="map_location"):
        gradc.load(path, map_location=lambda storage, loc: "cpu")
    assert gradc.load(path, weights_only=True)["w"].shape == (2,)
    # a tensor saved on a GPU: without one here, a clear error that says to map it to the CPU
    raw = path.read_bytes()
    _, header, _ = _split(raw)
    header["arrays"][0]["device"] = "cuda:0"
    on_gpu = _with_header(raw, header)
    if not gradc.cuda.is_available():
        with pytest.raises(gradc.DeviceError, match="map_location='cpu'"):
            gradc.load(io.BytesIO(on_gpu))
    for loc in ("cpu", {"cuda:0": "cpu"}):
        w = gradc.load(io.BytesIO(on_gpu), map_location=loc)["w"]
        assert w.device == gradc.device("cpu") and w.numpy().tolist() == [1.0, 1.0]


def test_unsupported_objects_are_refused_on_save(tmp_path):
    class Thing:
        pass
    with pytest.raises(GradcError, match=r"obj\['a'\]\[1\] is a .*Thing.*state_dict"):
        gradc.save({"a": [1, Thing()]}, tmp_path / "x")
    cyc = []
    cyc.append(cyc)
    with pytest.raises(GradcError, match="contains itself"):
        gradc.save(cyc, tmp_path / "x")
    with pytest.raises(GradcError, match="dict key"):
        gradc.save({frozenset(): 1}, tmp_path / "x")
    with pytest.raises(GradcError, match="object"):
        gradc.save(np.array([object()]), tmp_path / "x")
    with pytest.raises(GradcError, match="unexpected"):
        gradc.save({}, tmp_path / "x", compression=4)
    assert not (tmp_path / "x").exists() and not list(tmp_path.iterdir())


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ck"
    gradc.save({"v": gradc.ones(3)}, path)
    before = path.read_bytes()
    real_fsync = os.fsync

    def failing_fsync(fd):
        real_fsync(fd)
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        gradc.save({"v": gradc.zeros(1000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # and no temporary file is left behind


def test_compiled_artifacts_still_load_through_gradc_load(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path / "cache"))
    lin = nn.Linear(3, 2)
    prog = gradc.export(lin, gradc.ones(4, 3), backend="numpy")
    prog.save(tmp_path / "prog.gradc")
    loaded = gradc.load(tmp_path / "prog.gradc")
    assert isinstance(loaded, gradc.Program)
    x = gradc.randn(4, 3)
    np.testing.assert_allclose(loaded(x).numpy(), lin(x).detach().numpy(), rtol=1e-6)
    with pytest.raises(GradcError, match="map_location"):
        gradc.load(tmp_path / "prog.gradc", map_location="cpu")


# ------------------------------------------------------------------------------------------ hostile files
class _Payload:
    """Unpickling this creates the canary file."""

    def __init__(self, canary):
        self.canary = canary

    def __reduce__(self):
        return (open, (str(self.canary), "w"))


def _valid(tmp_path):
    path = tmp_path / "good.ckpt"
    gradc.save({"w": gradc.arange(6, dtype=gradc.float32).reshape(2, 3), "n": 1}, path)
    return path.read_bytes()


def _split(raw):
    n = int.from_bytes(raw[12:20], "little")
    return raw[:20], json.loads(raw[20:20 + n]), raw[20 + n:]


def _with_header(raw, header):
    return _with_header_bytes(raw, json.dumps(header, separators=(",", ":")).encode())


def _with_header_bytes(raw, body):
    n_old = int.from_bytes(raw[12:20], "little")
    start_old = -(-(20 + n_old) // 64) * 64
    data = raw[start_old:]
    head = MAGIC + struct.pack("<I", 1) + struct.pack("<Q", len(body)) + body
    head += b"\0" * ((-len(head)) % 64)
    return head + data


def _crafted(tmp_path, canary):
    raw = _valid(tmp_path)
    prefix, header, rest = _split(raw)
    pickled = pickle.dumps(_Payload(canary))
    files = {"pickle": pickled, "empty": b"", "magic only": MAGIC, "magic prefix": MAGIC[:5], "random": np.random.default_rng(7).bytes(64),
             "json": b'{"t": "dict"}'}
    for cut in (10, 19, 40, len(raw) - 5, len(raw) - 1):
        files[f"truncated at {cut}"] = raw[:cut]
    files["trailing bytes"] = raw + b"\0"
    flipped = bytearray(raw)
    flipped[-3] ^= 0xFF
    files["flipped data byte"] = bytes(flipped)
    files["wrong version"] = raw[:8] + struct.pack("<I", 99) + raw[12:]
    files["huge header length"] = raw[:12] + struct.pack("<Q", 1 << 62) + raw[20:]

    def variant(name, mutate):
        h = json.loads(json.dumps(header))
        mutate(h)
        files[name] = _with_header(raw, h)
    variant("huge shape", lambda h: h["arrays"][0].update(shape=[1 << 40, 1 << 40], nbytes=(1 << 80) * 4))
    variant("shape and length disagree", lambda h: h["arrays"][0].update(shape=[1000, 1000]))
    variant("claims more data", lambda h: h.update(data_bytes=h["data_bytes"] * 1000))
    variant("negative dim", lambda h: h["arrays"][0].update(shape=[-2, -3]))
    variant("object dtype", lambda h: h["arrays"][0].update(kind="ndarray", dtype="|O"))
    variant("unknown dtype", lambda h: h["arrays"][0].update(dtype="complex256"))
    variant("offset moved", lambda h: h["arrays"][0].update(offset=8))
    variant("dangling reference", lambda h: h["root"]["items"][0].__setitem__(1, {"t": "tensor", "i": 5}))
    variant("unknown tag", lambda h: h["root"].update(t="pickle"))
    variant("extra field", lambda h: h.update(loader="pickle"))
    variant("bad device", lambda h: h["arrays"][0].update(device="tpu:0"))
    variant("deep nesting", lambda h: h.update(root=json.loads('{"t":"list","items":[' * 300 + ']}' * 300)))
    text = json.dumps(header, separators=(",", ":"))
    assert '["n",1]' in text
    files["nan constant"] = _with_header_bytes(raw, text.replace('["n",1]', '["n",NaN]').encode())
    zbuf = io.BytesIO()  # what torch.save writes: a zip holding a pickle
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("archive/data.pkl", pickled)
        zf.writestr("archive/version", "3\n")
    files["torch-style zip with pickle"] = zbuf.getvalue()
    npz = io.BytesIO()
    np.savez(npz, evil=np.array([_Payload(canary)], dtype=object))
    files["npz with object array"] = npz.getvalue()
    files["truncated zip"] = zbuf.getvalue()[:30]
    return files


def test_crafted_files_raise_artifact_error_and_run_nothing(tmp_path):
    canary = tmp_path / "canary"
    files = _crafted(tmp_path, canary)
    assert len(files) > 30
    for name, data in files.items():
        path = tmp_path / "bad.ckpt"
        path.write_bytes(data)
        with pytest.raises(ArtifactError) as info:
            gradc.load(path)
        assert str(path) in str(info.value) or "file object" in str(info.value), name
        with pytest.raises(ArtifactError):
            gradc.load(io.BytesIO(data))
        assert not canary.exists(), f"{name}: loading ran code"
    # the control: pickle.loads of the payload would have created it
    pickle.loads(files["pickle"])
    assert canary.exists()


def test_error_messages_say_what_is_wrong(tmp_path):
    files = _crafted(tmp_path, tmp_path / "canary")
    expected = {"pickle": "never unpickles", "torch-style zip with pickle": "PyTorch checkpoint",
                "truncated at 40": "more than the file holds", "truncated at 19": "ends inside", "trailing bytes": "bytes long",
                "flipped data byte": "checksum", "wrong version": "version 99",
                "huge header length": "header claims",
                "huge shape": "bytes", "object dtype": "may not hold", "dangling reference": "does not exist",
                "deep nesting": "nested deeper", "empty": "empty", "random": "neither"}
    for name, pattern in expected.items():
        path = tmp_path / "bad.ckpt"
        path.write_bytes(files[name])
        with pytest.raises(ArtifactError, match=pattern):
            gradc.load(path)


def test_a_crafted_size_never_allocates_beyond_the_file(tmp_path):
    """A header claiming a 4 PiB tensor is rejected from the header alone (no allocation)."""
    import tracemalloc
    files = _crafted(tmp_path, tmp_path / "canary")
    path = tmp_path / "big.ckpt"
    path.write_bytes(files["huge shape"])
    tracemalloc.start()
    with pytest.raises(ArtifactError):
        gradc.load(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 10 << 20


def test_training_script_objects_round_trip(tmp_path):
    import argparse
    import pickle
    obj = {"args": argparse.Namespace(lr=0.1, name="run", layers=[1, 2]), "tags": {1, "a", (2, 3)},
           "frozen": frozenset([1]), "raw": b"\x00\xff", "z": complex(1, -2), "shape": gradc.ones(2, 3).shape,
           "w": gradc.ones(2)}
    path = tmp_path / "ckpt.pt"
    gradc.save(obj, path, pickle_protocol=4, _use_new_zipfile_serialization=False, pickle_module=pickle)
    back = gradc.load(path, map_location="cpu", weights_only=False, mmap=True, encoding="latin1")
    assert back["args"] == obj["args"] and back["tags"] == obj["tags"] and back["frozen"] == obj["frozen"]
    assert back["raw"] == obj["raw"] and back["z"] == obj["z"] and type(back["shape"]) is gradc.Size
    assert back["shape"] == (2, 3) and back["w"].tolist() == [1.0, 1.0]
    with pytest.raises(GradcError, match="not pickles"):
        gradc.save(obj, tmp_path / "x.pt", pickle_module=io)
