"""gradc.compile(module) returns an nn.Module wrapping the original: the same parameters, train/eval,
state_dict (keys prefixed `_orig_mod.`, as PyTorch), attribute access, and an optimizer on its
parameters trains the original model."""
import numpy as np

import gradc
import gradc.nn.functional as F
from gradc import nn, optim


def _model():
    gradc.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 3))


def _x(*shape, seed=0):
    return gradc.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def test_is_a_module_with_the_same_parameters():
    model = _model()
    cm = gradc.compile(model)
    assert isinstance(cm, nn.Module)
    assert [id(p) for p in cm.parameters()] == [id(p) for p in model.parameters()]
    assert cm[0] is model[0] and cm._orig_mod is model  # attribute and item access reach the original
    assert cm.trace_count == 0


def test_train_eval_reach_the_original_and_retrace():
    model = _model()
    cm = gradc.compile(model)
    x = _x(4, 6)
    cm(x)
    assert cm.eval() is cm and not model.training and not model[1].training
    with gradc.no_grad():
        np.testing.assert_allclose(cm(x).numpy(), model(x).numpy(), rtol=1e-6)
    cm.train()
    assert model.training and cm.trace_count == 2


def test_state_dict_round_trip():
    cm = gradc.compile(_model())
    sd = cm.state_dict()
    assert list(sd) == ["_orig_mod." + k for k in cm._orig_mod.state_dict()]
    other = gradc.compile(nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 3)))
    other.load_state_dict(sd)
    for a, b in zip(cm.parameters(), other.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    cm.eval(), other.eval()
    x = _x(3, 6)
    np.testing.assert_array_equal(cm(x).detach().numpy(), other(x).detach().numpy())


def test_optimizer_on_its_parameters_trains_like_eager():
    eager, compiled_model = _model().eval(), _model().eval()
    cm = gradc.compile(compiled_model)
    opts = [optim.Adam(m.parameters(), lr=1e-2) for m in (eager, cm)]
    for i in range(5):
        x, y = _x(8, 6, seed=i), gradc.tensor(np.arange(8) % 3)
        for m, opt in zip((eager, cm), opts):
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
    for a, b in zip(eager.parameters(), compiled_model.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert cm.trace_count == 1


def test_compiled_module_to_and_lower():
    cm = gradc.compile(_model())
    assert cm.to("cpu") is cm
    prog = cm.lower(_x(2, 6))
    assert prog.stats["nodes"] > 0


def test_a_called_compiled_module_deep_copies_and_pickles():
    import copy
    import pickle
    cm = gradc.compile(gradc.nn.Linear(2, 2))
    x = gradc.ones(1, 2)
    cm(x)
    ema = copy.deepcopy(cm)   # the EMA-of-a-compiled-model habit
    assert ema.weight is not cm.weight and ema._orig_mod.weight is ema.weight
    assert ema(x).tolist() == cm(x).tolist() and ema.trace_count == 1
    assert pickle.loads(pickle.dumps(cm))(x).tolist() == cm(x).tolist()


def test_attributes_set_on_the_wrapper_reach_the_original():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale, self.act = 1.0, nn.ReLU()

        def forward(self, x):
            return self.act(x * self.scale)
    m = Scaled()
    c = gradc.compile(m)
    assert c(-gradc.ones(1)).item() == 0.0
    c.scale, c.act = 3.0, nn.Tanh()          # as torch's OptimizedModule: set on the original
    assert m.scale == 3.0 and isinstance(m.act, nn.Tanh)
    assert [k for k, _ in c.named_modules()] == ["", "_orig_mod", "_orig_mod.act"] and "scale" in dir(c)
    np.testing.assert_allclose(c(-gradc.ones(1)).item(), np.tanh(-3.0), rtol=1e-6)
    del c.scale
    assert not hasattr(m, "scale")


def test_compile_over_a_method_binds_self():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        @gradc.compile
        def forward(self, x):
            return self.lin(x)
    a, b = Net(), Net()
    x = _x(3, 2)
    for net in (a, b):   # each instance's own weights
        np.testing.assert_allclose(net(x).detach().numpy(), net.lin(x).detach().numpy(), rtol=1e-6)


def test_dict_subclass_results_keep_their_class():
    import collections
    import dataclasses

    class Attrs(collections.OrderedDict):
        def __getattr__(self, k):
            return self[k]

    @dataclasses.dataclass
    class ModelOutput(collections.OrderedDict):   # the Hugging Face pattern: fields also items
        loss: object = None
        logits: object = None

        def __post_init__(self):
            for k in ("loss", "logits"):
                if getattr(self, k) is not None:
                    self[k] = getattr(self, k)
    x = gradc.ones(2)
    o = gradc.compile(lambda x: Attrs(logits=x + 1, loss=x.sum()))(x)
    assert type(o) is Attrs and o.loss.item() == 2.0 and list(o) == ["logits", "loss"]
    o = gradc.compile(lambda x: ModelOutput(logits=x * 2))(x)
    assert type(o) is ModelOutput and o.loss is None and o.logits.tolist() == [2.0, 2.0] and list(o) == ["logits"]
    o = gradc.compile(lambda x: collections.defaultdict(list, a=x))(x)
    assert type(o) is collections.defaultdict and o["missing"] == []


def test_a_tensor_stored_by_a_compiled_forward_keeps_its_gradient():
    class MoEish(nn.Module):   # the auxiliary-loss pattern: forward stores a loss term on the module
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            y = self.lin(x)
            self.aux_loss = (y ** 2).mean()
            return y
    gradc.manual_seed(0)
    m = MoEish()
    c = gradc.compile(m)
    for scale in (1.0, 2.0):
        x = gradc.ones(2, 3) * scale
        m.zero_grad()
        y = c(x)
        assert m.aux_loss.requires_grad
        (y.sum() + m.aux_loss).backward()
        compiled = m.lin.weight.grad.clone()
        m.zero_grad()
        y = m(x)
        (y.sum() + m.aux_loss).backward()
        np.testing.assert_allclose(compiled.numpy(), m.lin.weight.grad.numpy(), rtol=1e-5)
