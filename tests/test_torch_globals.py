"""Process-wide names of the torch namespace: Size, seed/initial_seed, set_printoptions and the
deterministic-algorithms switch, checked against PyTorch where it is installed."""
import numpy as np
import pytest

import gradc


def test_size_is_a_tuple_with_numel():
    s = gradc.ones(2, 3, 4).size()
    assert isinstance(s, gradc.Size) and isinstance(s, tuple) and s == (2, 3, 4)
    assert s.numel() == 24 and s[1:] == (3, 4) and isinstance(s[1:], gradc.Size) and s[0] == 2
    assert repr(gradc.Size([2, 3])) == "gradc.Size([2, 3])"
    assert gradc.zeros(gradc.Size([2, 3])).shape == (2, 3)


def test_size_sums_and_repeats_stay_sizes():
    s = gradc.ones(2, 3).shape
    for got, want in ((s + (4,), (2, 3, 4)), ((1,) + s, (1, 2, 3)), (s + s, (2, 3, 2, 3)), (s * 2, (2, 3, 2, 3)),
                      (2 * s, (2, 3, 2, 3))):
        assert type(got) is gradc.Size and got == want
    with pytest.raises(TypeError):
        s + [4]


def test_seed_and_initial_seed():
    gradc.manual_seed(123)
    assert gradc.initial_seed() == 123 and gradc.default_generator.initial_seed() == 123
    s = gradc.seed()
    assert gradc.initial_seed() == s
    a = gradc.rand(3).numpy()
    gradc.manual_seed(s)
    assert (gradc.rand(3).numpy() == a).all()


def test_printoptions_match_pytorch():
    torch = pytest.importorskip("torch")
    vals = [[0.123456, -2.5], [3.0, 0.25]]
    try:
        for kw in ({"precision": 2}, {"precision": 6}, {"profile": "short"}):
            gradc.set_printoptions(**kw), torch.set_printoptions(**kw)
            ours, theirs = repr(gradc.tensor(vals)), repr(torch.tensor(vals))
            assert ours.split("(", 1)[1].replace(" ", "") == theirs.split("(", 1)[1].replace(" ", ""), (ours, theirs)
        gradc.set_printoptions(threshold=5, edgeitems=1)
        assert "..." in repr(gradc.arange(10))
    finally:
        gradc.set_printoptions(profile="default"), torch.set_printoptions(profile="default")
    assert repr(gradc.tensor([0.5, 1.0])) == repr(torch.tensor([0.5, 1.0])) == "tensor([0.5000, 1.0000])"
    assert repr(gradc.tensor([1.0, 2.0])) == repr(torch.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    with pytest.raises(ValueError, match="profile"):
        gradc.set_printoptions(profile="long")


def test_deterministic_switch():
    assert not gradc.are_deterministic_algorithms_enabled()
    gradc.use_deterministic_algorithms(True, warn_only=True)
    try:
        assert gradc.are_deterministic_algorithms_enabled() and gradc.is_deterministic_algorithms_warn_only_enabled()
    finally:
        gradc.use_deterministic_algorithms(False)
    with pytest.raises(TypeError):
        gradc.use_deterministic_algorithms("yes")


def test_default_device_for_creation_functions_and_modules():
    assert gradc.get_default_device() == gradc.device("cpu")
    try:
        gradc.set_default_device("cpu")
        with gradc.device("cpu") as d:
            assert d == "cpu" and gradc.zeros(2).device == "cpu" and gradc.nn.Linear(2, 2).weight.device == "cpu"
        if not gradc.cuda.is_available():
            with gradc.device("cuda"):
                assert gradc.get_default_device() == "cuda:0"
                with pytest.raises(gradc.DeviceError, match="CUDA"):
                    gradc.randn(2)
                assert gradc.from_numpy(np.ones(1)).device == "cpu"   # shares host memory, as torch's
            assert gradc.get_default_device() == "cpu"
    finally:
        gradc.set_default_device(None)
