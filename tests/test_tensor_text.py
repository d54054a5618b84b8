"""Tensors print as PyTorch prints them (gradc.tensor_text), compared with PyTorch's own text after
its module name: widths, whole numbers, scientific notation, nan/inf, bools, float16, wrapping,
summaries, suffixes on their own line, and the print options."""
import numpy as np
import pytest

import gradc

torch = pytest.importorskip("torch")
_R = np.random.default_rng(0)
_A, _B, _C = (_R.standard_normal(s).astype(np.float32) for s in ((4, 5), (3, 4, 5), (50, 60)))

CASES = [
    lambda T: T.tensor([[-1.2345] * 8]), lambda T: T.arange(18, dtype=T.int32) * 1000,
    lambda T: T.tensor([[1.5] * 8, [-2.5] * 8], requires_grad=True), lambda T: T.arange(2000),
    lambda T: T.arange(2000) * 100000, lambda T: T.tensor([1.0, 5000.0]), lambda T: T.arange(2000).float(),
    lambda T: T.tensor(1e10), lambda T: T.tensor([1e8]), lambda T: T.tensor([1.5e8, 2.0]),
    lambda T: T.triu(T.full((2, 2), float("-inf")), 1), lambda T: T.tensor([float("inf"), 1.0]),
    lambda T: T.tensor([-0.0, 1.5]), lambda T: T.ones(2) > 0, lambda T: T.tensor([True, False]),
    lambda T: T.tensor([2048.0, 3.0], dtype=T.float16), lambda T: T.tensor([65504.0], dtype=T.float16),
    lambda T: T.tensor([1e-300, 1.0], dtype=T.float64), lambda T: T.tensor(_A), lambda T: T.tensor(_B),
    lambda T: T.tensor(_C), lambda T: T.zeros(0, 3), lambda T: T.zeros(0, dtype=T.int32), lambda T: T.tensor(3.5),
    lambda T: T.tensor(float("nan")), lambda T: T.tensor([1e-5, 1e5]), lambda T: T.tensor([[1, 2], [300000, 4]]),
    lambda T: T.tensor([0.0, 0.0]), lambda T: T.arange(40).reshape(2, 20), lambda T: T.ones(3, requires_grad=True) * 1,
]
OPTIONS = [dict(sci_mode=False), dict(sci_mode=True), dict(precision=0), dict(precision=2), dict(linewidth=40),
           dict(threshold=5, edgeitems=2), dict(profile="short"), dict(profile="full")]


def _text(lib, make):
    return repr(make(lib)).replace("gradc", "torch").replace("grad_fn=<MulBackward0>", "grad_fn=<...>")


@pytest.mark.parametrize("i", range(len(CASES)))
def test_tensor_text_matches_pytorch(i):
    assert _text(gradc, CASES[i]) == _text(torch, CASES[i])


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_print_options_match_pytorch(options):
    try:
        for lib in (torch, gradc):
            lib.set_printoptions(**options)
        for make in (CASES[0], CASES[3], CASES[5], CASES[18], CASES[20], CASES[25]):
            assert _text(gradc, make) == _text(torch, make)
    finally:
        for lib in (torch, gradc):
            lib.set_printoptions(profile="default")


def _modules(T):
    nn = T.nn

    class Lines(nn.Module):
        def extra_repr(self):
            return "line1\nline2"

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.fc = Lines(), nn.Linear(2, 2)
    return [nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU()]), Lines(), Holder(),
            nn.ParameterList([nn.Parameter(T.zeros(2, 3)), nn.Parameter(T.zeros(2))]),
            nn.ParameterDict({"b": nn.Parameter(T.zeros(3)), "a": nn.Parameter(T.zeros(2, 2))}),
            nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), nn.TransformerEncoder(
                nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2), nn.BatchNorm2d(4), nn.GroupNorm(2, 8),
            nn.InstanceNorm2d(4), nn.Flatten(), nn.LogSoftmax(dim=1), nn.GLU(), nn.Dropout2d(0.2), nn.Threshold(0.1, 20),
            nn.RNNCell(2, 2, nonlinearity="relu"), nn.Embedding(10, 3, padding_idx=1, max_norm=2.0, norm_type=1.0),
            nn.EmbeddingBag(10, 3, padding_idx=0), nn.Conv2d(3, 8, 3, padding="same"), nn.Upsample(scale_factor=2),
            nn.AvgPool1d(3), nn.ZeroPad2d(1), nn.ConstantPad1d(2, 0.5), nn.Unflatten(1, T.Size([2, 5])),
            nn.LayerNorm(8, bias=False), nn.BatchNorm1d(3, affine=False, track_running_stats=False, momentum=None),
            nn.LSTM(4, 8, num_layers=2, batch_first=True, bidirectional=True, dropout=0.1),
            nn.Conv1d(2, 4, 3, stride=2, padding=1, dilation=2, groups=2, bias=False, padding_mode="reflect")]


def test_module_reprs_match_pytorch():
    ours = [repr(m).replace("gradc", "torch") for m in _modules(gradc)]
    theirs = [repr(m) for m in _modules(torch)]
    for o, t in zip(ours, theirs):
        assert o == t


def _results(T):
    F = T.nn.functional
    x = T.ones(2, 3, requires_grad=True)
    x3 = T.ones(2, 4, 3, requires_grad=True)
    img = T.ones(1, 2, 4, 4, requires_grad=True)
    T.manual_seed(0)
    return [F.cross_entropy(x, T.tensor([0, 1])), F.mse_loss(x, T.zeros(2, 3)), F.binary_cross_entropy_with_logits(
        x, T.zeros(2, 3)), x.mean(), x.mean(1), x.sum(1), T.nn.Linear(3, 2)(x), T.nn.Linear(3, 2)(x3), x.relu(),
        x.softmax(-1), x.log_softmax(-1), T.nn.LayerNorm(3)(x), T.nn.Conv2d(2, 2, 3)(img), T.nn.BatchNorm2d(2)(img),
        T.nn.Embedding(4, 3)(T.tensor([0, 1])), T.cat([x, x]), x.t(), x[0], x.view(3, 2), x.unsqueeze(0),
        x @ x.t(), x3 @ x3.transpose(1, 2), x ** 2, x.max(), x.max(1).values, x3.chunk(2, 1)[0], x.clone(),
        x.masked_fill(x > 0, 0.0), F.gelu(x), 1 - x]


def test_grad_fn_names_print_as_pytorchs():
    ours = [t.grad_fn.name() for t in _results(gradc)]
    theirs = [t.grad_fn.name() for t in _results(torch)]
    assert ours == theirs
    assert repr(gradc.ones(2, requires_grad=True).sum()) == "tensor(2., grad_fn=<SumBackward0>)"
    assert repr(gradc.tensor([[3.0, 1.0]]).max(dim=1)).replace("gradc", "torch") == repr(
        torch.tensor([[3.0, 1.0]]).max(dim=1))
