"""Symbolic sizes: dynamic=True, gradc.mark_dynamic and automatic dynamic serve every size of a
dimension from one trace, equal to eager; what the function assumed about a size is a guard whose
failure names the assumption and the line."""
import copy
import warnings

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn, optim
from gradc.symint import Sizes
from gradc.workloads import Block

SIZES = (3, 5, 8, 2, 7, 16)


def _data(*shape, seed=0):
    return gradc.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _strict(fn):
    """Run with every warning an error: a fallback to concrete sizes warns, and must not happen here."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn()


def _close(a, b):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_inference_over_six_batch_sizes_traces_once(backend):
    gradc.manual_seed(0)
    block = Block(16, 2, 32, 8)
    mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 4), nn.LogSoftmax(-1))
    for model, shape in ((block, (8, 16)), (mlp, (8,))):
        compiled = gradc.compile(model, dynamic=True, backend=backend)
        with gradc.no_grad():
            for b in SIZES:
                x = _data(b, *shape, seed=b)
                _close(_strict(lambda: compiled(x)), model(x))
        assert compiled.trace_count == 1, compiled.recompile_reasons


def _training(model_fn, loss_fn, batches, compiled, opt_cls=optim.Adam):
    gradc.manual_seed(1)
    model = model_fn()
    opt = opt_cls(model.parameters(), lr=1e-2)

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    fn = gradc.compile(step, dynamic=True) if compiled else step
    losses = [_strict(lambda: fn(x, y)).item() for x, y in batches]
    return losses, [p.detach().numpy() for p in model.parameters()], fn


@pytest.mark.parametrize("opt_cls", [optim.SGD, optim.Adam, optim.AdamW])
def test_training_step_over_six_batch_sizes(opt_cls):
    rng = np.random.default_rng(2)
    batches = [(gradc.tensor(rng.standard_normal((b, 6)).astype(np.float32)), gradc.tensor(rng.integers(0, 3, b)))
               for b in SIZES]

    def loss(out, y):   # the batch size reaches values: a mean, and a sum divided by it
        return F.cross_entropy(out, y) + F.softmax(out, -1)[:, 0].sum() / out.shape[0] + (out ** 2).mean() * 0.1

    def model():
        return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Dropout(0.0), nn.Linear(16, 3))
    eager = _training(model, loss, batches, False, opt_cls)
    compiled = _training(model, loss, batches, True, opt_cls)
    assert compiled[2].trace_count <= 2, compiled[2].recompile_reasons
    np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(compiled[1], eager[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_transformer_block_training_over_batch_sizes():
    batches = [(_data(b, 8, 16, seed=b), None) for b in SIZES]
    # (SGD: Adam's normalised update turns last-bit differences of a near-zero gradient into lr-sized
    # steps, compiled with static shapes as well)
    eager = _training(lambda: Block(16, 2, 32, 8), lambda out, _: (out ** 2).mean(), batches, False, optim.SGD)
    compiled = _training(lambda: Block(16, 2, 32, 8), lambda out, _: (out ** 2).mean(), batches, True, optim.SGD)
    assert compiled[2].trace_count == 1, compiled[2].recompile_reasons
    np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(compiled[1], eager[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_automatic_dynamic_turns_on_at_the_second_size():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    compiled = gradc.compile(model)
    with gradc.no_grad():
        for b in SIZES:
            x = _data(b, 4)
            _close(compiled(x), model(x))
    assert compiled.trace_count == 2
    assert compiled.recompile_reasons == ["input.shape[0]: 3 -> 5; from now on dynamic: input.shape[0]"]


def test_sizes_0_and_1_are_traced_as_they_are():
    compiled = gradc.compile(lambda x: x.sum(0) / x.shape[0], dynamic=True)
    for b in (4, 1, 6, 1):
        x = _data(b, 3)
        _close(compiled(x), x.sum(0) / b)
    assert compiled.trace_count == 2
    assert compiled.recompile_reasons == ["x.shape[0]: dynamic (>= 2) -> 1"]


def test_dynamic_false_traces_each_size_and_mark_dynamic_marks_one_dimension():
    fixed = gradc.compile(lambda x: x * 2, dynamic=False)
    marked = gradc.compile(lambda x: x * 2)
    for b in (3, 5, 8):
        x = _data(b, 4)
        fixed(x)
        gradc.mark_dynamic(x, 0)
        _close(_strict(lambda: marked(x)), x * 2)
    assert fixed.trace_count == 3 and marked.trace_count == 1


def test_a_branch_on_a_size_is_a_guard_that_names_it():
    def f(x):
        return x * 2 if x.shape[0] > 4 else x - 1
    compiled = gradc.compile(f, dynamic=True)
    for b in (3, 4, 2, 6, 8, 3):
        x = _data(b, 2)
        _close(compiled(x), f(x))
    assert compiled.trace_count == 2
    reason, = compiled.recompile_reasons
    assert reason.startswith("the trace assumed x.shape[0] <= 4 at ") and "test_symbolic_sizes.py:" in reason
    assert reason.endswith("now x.shape[0] = 6")


def test_a_size_used_as_a_python_int_holds_its_value():
    def f(x):
        total = x[0]
        for i in range(1, x.shape[0]):   # unrolled: this trace is for one size only
            total = total + x[i]
        return total
    compiled = gradc.compile(f, dynamic=True)
    for b in (3, 4, 3):
        x = _data(b, 2)
        _close(compiled(x), f(x))
    assert compiled.trace_count == 2
    assert compiled.recompile_reasons[0].startswith("the trace assumed x.shape[0] == 3 at ")


def test_two_dynamic_sizes_found_equal_stay_equal():
    def f(x, y):
        return gradc.cat([x, y], 1).sum(0) / x.shape[0]
    compiled = gradc.compile(f, dynamic=True)
    for b in (3, 5, 8):
        x, y = _data(b, 2), _data(b, 3, seed=1)
        _close(compiled(x, y), f(x, y))
    assert compiled.trace_count == 1
    x, y = _data(4, 2), _data(5, 3)
    with pytest.raises(gradc.ShapeError):
        compiled(x, y)   # as eagerly: the trace held x.shape[0] == y.shape[0]; a new trace says why not


def test_reshape_with_a_symbolic_size_and_a_size_returned():
    def f(x):
        return x.view(x.shape[0] // 2, -1).sum(1), x.shape[0], x.shape[0] / 2
    compiled = gradc.compile(f, dynamic=True)
    for b in (4, 6, 10):
        x = _data(b, 3)
        out, n, half = compiled(x)
        _close(out, f(x)[0])
        assert (n, half) == (b, b / 2) and type(n) is int and type(half) is float
    assert compiled.trace_count == 1


def test_a_size_kept_in_python_state_is_the_number_it_was_in_its_call():
    kept = []

    def f(x):
        kept.append(x.shape[0])
        return x * 1
    gradc.compile(f, dynamic=True)(_data(3))
    n = kept[0]
    assert n == 3 and list(range(n)) == [0, 1, 2] and n + 1 == 4 and str(n) == "3"
    assert gradc.full((2,), n).tolist() == [3, 3] and gradc.arange(n).tolist() == [0, 1, 2]
    assert gradc.zeros(n, 2).shape == (3, 2) and (gradc.ones(2) * n).tolist() == [3.0, 3.0]
    assert _data(5)[n].shape == () and _data(5)[:n].shape == (3,)


class _GrowingCache(nn.Module):
    """A cache sized by the longest input so far (rotary and positional tables are built so)."""

    def __init__(self):
        super().__init__()
        self.cache_len, self.cache = 0, None

    def forward(self, x):
        n = x.shape[0]
        if n > self.cache_len:
            self.cache_len = n
            self.cache = gradc.arange(n).float()[:, None] * 0.5
        return x + self.cache[:n]


def test_a_module_that_keeps_a_size_between_traces_matches_eager():
    results = []
    for compiled in (False, True):
        module = _GrowingCache()
        fn = gradc.compile(module) if compiled else module
        results.append([fn(gradc.ones(n, 2)).sum().item() for n in (4, 6, 5, 8, 3, 8)])
        assert module.cache_len == 8
    assert results[0] == results[1]


@pytest.mark.parametrize("name, fn", [
    ("int and float sizes", lambda x: x * (x.shape[0] + x.shape[0] / 2)),
    ("an int tensor times a float size", lambda x: x.long() * (x.shape[0] + x.shape[0] / 2)),
    ("a dict keyed by a size", lambda x: x * {16: 2.0}.get(x.shape[0], 1.0)),
    ("a size in a set", lambda x: x * 2 if x.shape[0] in {8, 16} else x),
    ("a size as text", lambda x: x * len(str(x.shape[0]))),
    ("floats do not reassociate", lambda x: x * 2 if (x.shape[0] + 0.1) - x.shape[0] == 0.1 else x),
    ("a float size rounded", lambda x: x * ((x.shape[0] + 1e16) - 1e16)),
    ("int() of a float size", lambda x: x * int(x.shape[0] * 0.1 * 10)),
    ("a deep copy of the shape", lambda x: x * 2 if copy.deepcopy(x.shape)[0] > 5 else x),
    ("arange to a float size", lambda x: x.sum() + gradc.arange(0, x.shape[0] / 2, 0.5).sum()),
    ("arange of a float size", lambda x: gradc.arange(x.shape[0] / 2)),
    ("a size as a fill and a bound", lambda x: gradc.where(x > 0, x, x.shape[0] / 4).clamp(max=x.shape[0] / 2)),
    ("a size divided by a size that may be 0", lambda x: x * 2 if x.shape[1] // 4 > 0 and x.shape[0] // (x.shape[1] // 4) > 1
     else x),
])
def test_hostile_uses_of_a_size_equal_eager(name, fn):
    compiled = gradc.compile(fn, dynamic=True)
    for b in (4, 5, 8, 16, 4):
        for cols in (8, 3):
            x = _data(b, cols, seed=b)
            got, want = compiled(x), fn(x)
            assert got.shape == want.shape and got.dtype is want.dtype, name
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6, err_msg=name)


def test_guard_text_reads_as_written():
    def f(x):
        return x * 2 if (x.shape[0] + 1) // 2 > 3 else x
    compiled = gradc.compile(f, dynamic=True)
    compiled(_data(4))
    compiled(_data(9))
    assert compiled.recompile_reasons[0].startswith("the trace assumed ((x.shape[0] + 1) // 2) <= 3 at ")


def test_a_size_numpy_needs_as_a_number_is_held_by_a_guard():
    def f(x):
        return x * np.float32(x.shape[0]).item()
    compiled = gradc.compile(f, dynamic=True)
    for b in (3, 4):
        x = _data(b)
        _close(compiled(x), x * float(b))
    assert compiled.trace_count == 2 and compiled.recompile_reasons[0].startswith("the trace assumed x.shape[0] == 3")


def test_a_function_that_refuses_a_symbolic_size_is_traced_with_concrete_sizes():
    def f(x):
        if not isinstance(x.shape[0], int):
            raise TypeError("this function wants plain int sizes")
        return x + 1
    compiled = gradc.compile(f, dynamic=True)
    with pytest.warns(UserWarning, match=r"could not be traced at .*test_symbolic_sizes.py:\d+ .*concrete sizes from now on"):
        _close(compiled(_data(3)), _data(3) + 1)
    _close(compiled(_data(4)), _data(4) + 1)
    assert compiled.trace_count == 2 and compiled.dynamic is False   # (the failed trace made no program)


def test_dynamic_must_be_none_true_or_false():
    with pytest.raises(gradc.GradcError, match="dynamic must be"):
        gradc.compile(lambda x: x, dynamic="yes")


def test_size_expressions_simplify_and_decide_what_holds_for_every_size():
    sizes = Sizes(lambda: "here")
    n, m = sizes.symbol(0, 0, "x.shape[0]", 8), sizes.symbol(1, 0, "y.shape[0]", 16)
    assert (n * 784) // n == 784 and (n * 12) // 4 == n * 3 and (n * 4) % 2 == 0
    assert (n == 1, n > 1, n >= 2, n != 0, n // 3 >= 0) == (False, True, True, True, True)
    assert not sizes.guards   # all of those hold for every size >= 2
    assert (m == 16) is True and m // 2 == 8   # a guard from now on: m is 16
    assert n != m and repr(n * 4 + 1) == "4*x.shape[0] + 1"
    assert sizes.failures({"s0": 8, "s1": 15}) == ["the trace assumed y.shape[0] == 16 at here; now y.shape[0] = 15"]


def test_shape_guarded_programs_agree_with_pytorch():
    torch = pytest.importorskip("torch")
    gradc.manual_seed(0)
    block = Block(16, 2, 32, 8)
    compiled = gradc.compile(block, dynamic=True)
    ref = Block(16, 2, 32, 8)
    ref.load_state_dict(block.state_dict())
    with gradc.no_grad():
        for b in (2, 5, 9):
            x = np.random.default_rng(b).standard_normal((b, 8, 16)).astype(np.float32)
            t = torch.from_numpy(x)
            w = {k: torch.from_numpy(v.numpy()) for k, v in block.state_dict().items()}
            h = torch.nn.functional.layer_norm(t, (16,), w["ln1.weight"], w["ln1.bias"])
            qkv = torch.nn.functional.linear(h, w["qkv.weight"], w["qkv.bias"]).reshape(b, 8, 3, 2, 8)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)
            att = torch.softmax(q @ k.transpose(-2, -1) / np.sqrt(8) + w["mask"], -1)
            y = torch.nn.functional.linear((att @ v).permute(0, 2, 1, 3).reshape(b, 8, 16), w["proj.weight"],
                                           w["proj.bias"]) + t
            h2 = torch.nn.functional.gelu(torch.nn.functional.linear(
                torch.nn.functional.layer_norm(y, (16,), w["ln2.weight"], w["ln2.bias"]), w["fc1.weight"],
                w["fc1.bias"]), approximate="tanh")
            expected = y + torch.nn.functional.linear(h2, w["fc2.weight"], w["fc2.bias"])
            np.testing.assert_allclose(compiled(gradc.from_numpy(x)).numpy(), expected.numpy(), rtol=1e-4,
                                       atol=1e-5)
    assert compiled.trace_count == 1


def test_a_data_loader_whose_last_batch_is_smaller_trains_as_pytorch_does():
    """A training script unchanged but for its imports: 100 samples in batches of 32 (the last has 4),
    two epochs, compiled with the default dynamic=None; equal to PyTorch step by step."""
    torch = pytest.importorskip("torch")
    from gradc.utils.data import DataLoader, TensorDataset
    rng = np.random.default_rng(5)
    xs, ys = rng.standard_normal((100, 10)).astype(np.float32), rng.integers(0, 4, 100)
    gradc.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    ref = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    with torch.no_grad():
        for p, q in zip(ref.parameters(), model.parameters()):
            p.copy_(torch.from_numpy(q.detach().numpy()))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ropt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)

    @gradc.compile
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    loader = DataLoader(TensorDataset(gradc.from_numpy(xs), gradc.from_numpy(ys)), batch_size=32)
    for _ in range(2):
        for x, y in loader:
            ropt.zero_grad()
            expected = torch.nn.functional.cross_entropy(ref(torch.from_numpy(x.numpy())), torch.from_numpy(y.numpy()))
            expected.backward()
            ropt.step()
            np.testing.assert_allclose(step(x, y).item(), expected.item(), rtol=1e-5, atol=1e-6)
    assert step.trace_count == 2, step.recompile_reasons   # 32, then 4: the batch size is dynamic from then on
    for p, q in zip(ref.parameters(), model.parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-4, atol=1e-5)


class _ConvLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.c2, self.fc = nn.Conv2d(4, 8, 3, stride=2), nn.Linear(8 * 3 * 3, 10)
        self.rnn = nn.LSTM(10, 6, batch_first=True)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.bn(self.c1(x))), 2)
        h = self.fc(F.adaptive_avg_pool2d(F.relu(self.c2(h)), (3, 3)).flatten(1))
        out, _ = self.rnn(gradc.stack([h, h * 0.5, h], 1))
        return out[:, -1]


def test_conv_batch_norm_pooling_and_lstm_training_with_automatic_dynamic():
    runs = []
    for compiled in (False, True):
        gradc.manual_seed(0)
        model = _ConvLSTM()
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        fn = gradc.compile(step) if compiled else step
        rng = np.random.default_rng(3)
        runs.append([_strict(lambda: fn(gradc.tensor(rng.standard_normal((b, 1, 16, 16)).astype(np.float32)),
                                        gradc.tensor(rng.integers(0, 6, b)))).item() for b in (4, 6, 3, 8, 5)])
    assert fn.trace_count == 2, fn.recompile_reasons   # the second size makes the batch dynamic
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-5, atol=1e-6)
