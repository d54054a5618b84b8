"""An out-of-range class target or embedding index gives the same OutOfRangeError, with the same
message naming the caller's argument, eagerly, compiled (numpy and c) and from a loaded artifact.
The text is an attribute of the check (`what`); it reaches generated code only as a JSON string
literal, and artifact validation refuses anything but one printable line."""
import json

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn
from gradc.ops import OPS
from gradc.runtime.artifact_graph import check_graph_data

BACKENDS = ["numpy", "c"]


def _message(fn, *args):
    with pytest.raises(gradc.OutOfRangeError) as e:
        fn(*args)
    assert isinstance(e.value, IndexError)
    return str(e.value)


CASES = [
    ("cross_entropy", lambda x, t: F.cross_entropy(x, t), "cross_entropy: target index 7 is out of range for a "
     "dimension of size 4 (valid: 0..3, or the ignored -100)"),
    ("cross_entropy-no-ignore", lambda x, t: F.cross_entropy(x, t, ignore_index=2, reduction="sum"),
     "cross_entropy: target index 7 is out of range for a dimension of size 4 (valid: 0..3, or the ignored 2)"),
    ("nll_loss", lambda x, t: F.nll_loss(F.log_softmax(x, 1), t), "nll_loss: target index 7 is out of range"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,fn,expected", CASES, ids=[c[0] for c in CASES])
def test_compiled_loss_target_message_equals_eager(name, fn, expected, backend):
    x, good, bad = gradc.randn(3, 4), gradc.tensor([0, 3, 1]), gradc.tensor([0, 7, 1])
    eager = _message(fn, x, bad)
    assert eager.startswith(expected)
    compiled = gradc.compile(fn, backend=backend)
    np.testing.assert_allclose(compiled(x, good).numpy(), fn(x, good).numpy(), rtol=1e-6)
    assert _message(compiled, x, bad) == eager   # the same program, on a bad target at run time


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_embedding_index_message_equals_eager(backend):
    gradc.manual_seed(0)
    emb = nn.Embedding(5, 3)
    good, bad = gradc.tensor([[0, 4], [1, 2]]), gradc.tensor([[0, 4], [-1, 2]])
    eager = _message(emb, bad)
    assert eager.startswith("embedding: index -1 is out of range for a dimension of size 5")
    compiled = gradc.compile(emb, backend=backend)
    np.testing.assert_array_equal(compiled(good).detach().numpy(), emb(good).detach().numpy())
    assert _message(compiled, bad) == eager


def test_loaded_artifact_gives_the_same_message(tmp_path):
    x, good, bad = gradc.randn(3, 4), gradc.tensor([0, 3, 1]), gradc.tensor([0, 7, 1])
    path = gradc.export(F.cross_entropy, x, good).save(tmp_path / "ce.gradc")
    prog = gradc.load(path)
    np.testing.assert_allclose(prog(x, good).numpy(), F.cross_entropy(x, good).numpy(), rtol=1e-6)
    assert _message(prog, x, bad) == _message(F.cross_entropy, x, bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_message_text_cannot_become_code(backend, tmp_path):
    # text that would close a string literal and run code if it were pasted into the source
    canary = tmp_path / "CANARY"
    what = f'x", __import__("pathlib").Path({str(canary)!r}).touch(), "\\'

    def fn(t):
        return OPS["check_index"].bind(t, high=3, ignore=None, what=what) * 2
    compiled = gradc.compile(fn, backend=backend)
    np.testing.assert_array_equal(compiled(gradc.tensor([0, 2])).numpy(), [0, 4])
    assert _message(compiled, gradc.tensor([5])) == what + " index 5 is out of range for a dimension of size 3 " \
                                                            "(valid: 0..2)"
    assert not canary.exists()


@pytest.mark.parametrize("value", [5, None, "two\nlines", "x" * 201, ["cross_entropy"]])
def test_artifact_validation_refuses_a_crafted_message(value):
    x, t = gradc.randn(3, 4), gradc.tensor([0, 3, 1])
    data = json.loads(gradc.export(F.cross_entropy, x, t).ir.to_json())
    check_graph_data(data)   # the real graph passes
    node = next(n for n in data["nodes"] if n["op"] == "check_index")
    node["attrs"]["what"] = value
    with pytest.raises(gradc.ArtifactError, match="what"):
        check_graph_data(data)
