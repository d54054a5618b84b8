"""IR inputs are named after what they are (gradc.naming): arguments by their Python names,
parameters by their module paths, optimizer state and hyper-parameters by what they belong to, in
the text, DOT and JSON forms and in the generated NumPy code's comments."""
import json

import gradc
from gradc import nn, optim
import gradc.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.fc2 = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def _names(prog):
    return [prog.ir.node(n)["attrs"]["name"] for n in prog.ir.inputs]


def test_a_compiled_module_names_its_argument_and_parameters_everywhere():
    gradc.manual_seed(0)
    prog = gradc.compile(Net(), backend="numpy").lower(gradc.randn(5, 4))
    assert _names(prog) == ["x", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert "input(name=fc1.weight)" in prog.ir.to_text()
    assert 'label="%1 = input(name=fc1.weight)' in prog.ir.to_dot()
    nodes = json.loads(prog.ir.to_json())["nodes"]
    assert [n["attrs"]["name"] for n in nodes if n["op"] == "input"] == _names(prog)
    src = prog.source["program.py"]
    assert "# v0: x" in src and ": fc2.bias" in src


def test_a_training_step_names_optimizer_state_and_hyper_parameters():
    gradc.manual_seed(0)
    model = Net()
    opt = optim.Adam(model.parameters(), lr=1e-3)

    def step(x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss
    compiled = gradc.compile(step, backend="numpy")
    x, y = gradc.randn(5, 4), gradc.randn(5, 2)
    compiled(x, y)   # creates the moments: the next trace reads them
    names = set(_names(compiled.lower(x, y)))
    assert {"x", "y", "model.fc1.weight", "exp_avg of model.fc1.weight", "exp_avg_sq of model.fc2.bias",
            "lr of param group 0", "betas[1] of param group 0"} <= names
    assert any(n.startswith("step of model.") for n in names)   # (parameters may share one step count)
    assert not any(n.startswith("in") and n[2:].isdigit() for n in names)


def test_a_parameter_only_the_optimizer_reaches_is_named_as_the_optimizer_knows_it():
    used, unused, other = nn.Linear(3, 2), nn.Linear(3, 2), nn.Linear(3, 2)
    opt = optim.SGD(list(used.parameters()) + list(unused.parameters()), lr=0.1)
    named = optim.SGD(other.named_parameters(), lr=0.1)

    def step(x):
        opt.zero_grad()   # reaches every parameter of the optimizers; the loss uses one module
        named.zero_grad()
        loss = used(x).sum()
        loss.backward()
        opt.step()
        named.step()
        return loss
    names = _names(gradc.compile(step, backend="numpy").lower(gradc.ones(4, 3)))
    assert {"used.weight", "parameter 2 of param group 0", "parameter 3 of param group 0", "weight", "bias"} \
        <= set(names), names
    assert not any(n.startswith("state ") for n in names)


def test_a_grad_input_and_an_unnameable_parameter():
    gradc.manual_seed(0)
    model = nn.Linear(3, 1)
    model.register_parameter("w('x')", nn.Parameter(gradc.ones(3)))

    def accumulate(x):   # no zero_grad: the gradients add to the ones already there
        loss = (model(x * model._parameters["w('x')"])).sum()
        loss.backward()
        return loss
    x = gradc.randn(2, 3)
    accumulate(x)
    prog = gradc.compile(accumulate, backend="numpy").lower(x)
    names = _names(prog)
    assert {"x", "model.weight", "grad of model.weight"} <= set(names)
    assert not any("w(" in n for n in names) and any(n.startswith("state ") for n in names)
    assert "w('x')" not in prog.source["program.py"]


def test_source_of_a_training_lowering_includes_the_backward_program():
    gradc.manual_seed(0)
    model = Net()
    x = gradc.randn(5, 4)
    prog = gradc.compile(lambda x: model(x).sum(), backend="numpy").lower(x)   # backward runs later
    assert prog.backward is not None
    back = prog.backward.program.own_source
    assert set(prog.source) == {"program.py"} | {f"backward_{k}" for k in back}
    assert prog.source["backward_program.py"] == back["program.py"] != prog.source["program.py"]
    assert prog.own_source == {"program.py": prog.source["program.py"]}
    with gradc.no_grad():   # inference: no backward program, nothing more
        assert set(gradc.compile(lambda x: model(x).sum(), backend="numpy").lower(x).source) == {"program.py"}
