"""nn.DataParallel: replicas in one process. On this machine the replicas are CPU replicas on a
thread pool ("cpu" listed several times); each result is checked against the plain module, forward
and gradients, eager and compiled."""
import threading
import warnings

import numpy as np
import pytest

import gradc
from gradc import nn, optim

CPU2 = ["cpu", "cpu"]


def mlp(seed=0):
    gradc.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))


def grads(model):
    return [p.grad.numpy().copy() for p in model.parameters()]


def close(a, b, tol=1e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


@pytest.mark.parametrize("replicas,batch", [(2, 8), (2, 7), (3, 10), (4, 4)])
def test_forward_and_gradients_equal_the_plain_module(replicas, batch):
    model = mlp()
    dp = nn.DataParallel(model, device_ids=["cpu"] * replicas)
    x = gradc.randn(batch, 6, requires_grad=True)
    y = gradc.randint(0, 4, (batch,))
    out = dp(x)
    assert out.shape == (batch, 4)
    nn.CrossEntropyLoss()(out, y).backward()
    dp_grads, dp_xgrad = grads(model), x.grad.numpy().copy()
    model.zero_grad()
    x.grad = None
    ref = model(x)
    nn.CrossEntropyLoss()(ref, y).backward()
    close(out.detach().numpy(), ref.detach().numpy())
    for a, b in zip(dp_grads, grads(model)):  # summed into the original parameters
        close(a, b)
    close(dp_xgrad, x.grad.numpy())


def test_replicas_run_on_separate_threads_with_the_callers_grad_mode():
    seen = []
    together = threading.Barrier(3, timeout=10)  # passes only when all three replicas are inside forward at once

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            seen.append((threading.current_thread().name, x.shape[0], gradc.is_grad_enabled()))
            together.wait()
            return self.lin(x)

    dp = nn.DataParallel(Probe(), device_ids=["cpu"] * 3)
    dp(gradc.randn(8, 3))
    assert sorted(n for _, n, _ in seen) == [2, 3, 3]
    assert len({name for name, _, _ in seen}) == 3 and threading.current_thread().name not in {s[0] for s in seen}
    seen.clear()
    with gradc.no_grad():
        out = dp(gradc.randn(8, 3))
    assert not out.requires_grad and out.grad_fn is None
    assert [g for _, _, g in seen] == [False] * 3


def test_training_with_dataparallel_equals_plain_training():
    data = [(gradc.randn(9, 6), gradc.randint(0, 4, (9,))) for _ in range(4)]
    results = []
    for wrap in (False, True):
        model = mlp(seed=3)
        net = nn.DataParallel(model, device_ids=CPU2) if wrap else model
        opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        for x, y in data:
            opt.zero_grad()
            nn.CrossEntropyLoss()(net(x), y).backward()
            opt.step()
        results.append([p.detach().numpy().copy() for p in model.parameters()])
    for a, b in zip(*results):
        close(a, b, 1e-5)


def test_compiled_dataparallel_step_equals_eager():
    data = [(gradc.randn(8, 6), gradc.randint(0, 4, (8,))) for _ in range(3)]
    results = []
    for compiled in (False, True):
        model = mlp(seed=5)
        dp = nn.DataParallel(model, device_ids=CPU2)
        opt = optim.SGD(dp.parameters(), lr=0.1)

        def step(x, y):
            opt.zero_grad()
            loss = nn.CrossEntropyLoss()(dp(x), y)
            loss.backward()
            opt.step()
            return loss
        run = gradc.compile(step, fullgraph=True) if compiled else step
        losses = [run(x, y).item() for x, y in data]
        results.append((losses, [p.detach().numpy().copy() for p in model.parameters()]))
    close(results[0][0], results[1][0], 1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        close(a, b, 1e-5)


def test_structured_inputs_and_outputs_and_other_dims():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(5, 3), nn.Linear(5, 2)

        def forward(self, x, scale=1.0, bias=None):
            h = x.transpose(0, 1) * scale + bias.transpose(0, 1)  # batch along dim 1 of x and bias
            return {"a": self.a(h).transpose(0, 1), "b": (self.b(h).transpose(0, 1),)}

    gradc.manual_seed(1)
    model = TwoHeads()
    dp = nn.DataParallel(model, device_ids=["cpu"] * 3, dim=1)
    x, bias = gradc.randn(5, 7), gradc.randn(5, 7)
    out = dp(x, scale=2.0, bias=bias)
    ref = model(x, scale=2.0, bias=bias)
    assert set(out) == {"a", "b"} and out["a"].shape == (3, 7) and out["b"][0].shape == (2, 7)
    close(out["a"].detach().numpy(), ref["a"].detach().numpy())
    close(out["b"][0].detach().numpy(), ref["b"][0].detach().numpy())


def test_scalar_outputs_gather_into_one_value_per_replica():
    class Loss(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 1)

        def forward(self, x):
            return self.lin(x).sum()

    dp = nn.DataParallel(Loss(), device_ids=CPU2)
    x = gradc.randn(6, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = dp(x)
    assert out.shape == (2,) and any("0-d" in str(w.message) for w in caught)
    close(out.sum().item(), dp.module(x).item())


def test_errors():
    model = mlp()
    dp = nn.DataParallel(model, device_ids=CPU2)
    with pytest.raises(gradc.ShapeError, match=r"1 rows along dim 0, fewer than the 2 replicas"):
        dp(gradc.randn(1, 6))
    with pytest.raises(gradc.ShapeError, match="0-d"):
        dp(gradc.tensor(1.0))
    with pytest.raises(gradc.DeviceError):
        nn.DataParallel(model, device_ids=["cuda:99"])  # no such GPU (or none at all)
    with pytest.raises(gradc.DeviceError, match="unknown device"):
        nn.DataParallel(model, device_ids=["cpu", "tpu:0"])
    with pytest.raises(gradc.DeviceError):
        nn.DataParallel(model, device_ids=CPU2, output_device="cuda:99")
    with pytest.raises(gradc.GradcError, match="device_ids is empty"):
        nn.DataParallel(model, device_ids=[])
    with pytest.raises(gradc.GradcError, match="wraps an nn.Module"):
        nn.DataParallel(lambda x: x)


def test_module_state_is_the_wrapped_modules():
    model = mlp()
    dp = nn.DataParallel(model, device_ids=CPU2)
    assert list(dp.parameters()) == list(model.parameters())
    assert all(k.startswith("module.") for k in dp.state_dict())
    assert nn.DataParallel(model).device_ids == ([gradc.device(f"cuda:{i}") for i in range(gradc.cuda.device_count())]
                                                 or [gradc.device("cpu")])


@pytest.mark.gpu
@pytest.mark.skipif(gradc.cuda.device_count() < 1, reason="needs a CUDA GPU (CuPy and a device)")
def test_gpu_replicas_equal_the_cpu_module():
    model = mlp()
    ids = list(range(gradc.cuda.device_count()))
    dp = nn.DataParallel(model, device_ids=ids, output_device="cpu")
    x = gradc.randn(8, 6)
    out = dp(x)
    out.square().sum().backward()
    g = grads(model)
    model.zero_grad()
    ref = model(x)
    ref.square().sum().backward()
    close(out.detach().numpy(), ref.detach().numpy(), 1e-5)
    for a, b in zip(g, grads(model)):
        close(a, b, 1e-4)


def test_first_calls_of_a_compiled_function_from_several_threads_at_once():
    # Each thread's first call traces; one trace at a time, and another thread's eager work (its
    # inputs) is never recorded into it, so the module's parameters stay whole.
    lin = nn.Linear(8, 8)

    def f(x):
        return (lin(x).relu() - 1).softmax(-1) * x.shape[0]
    for _ in range(5):
        compiled = gradc.compile(f, dynamic=True, backend="numpy")
        start, errors = threading.Barrier(4, timeout=30), []

        def work(n):
            start.wait()
            for k in range(3):
                try:
                    x = gradc.randn(n + k, 8)
                    np.testing.assert_allclose(compiled(x).detach().numpy(), f(x).detach().numpy(), rtol=1e-5,
                                               atol=1e-6)
                except Exception as e:   # (reported below, from the main thread)
                    errors.append(e)
        threads = [threading.Thread(target=work, args=(n,)) for n in (3, 5, 7, 9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert lin.weight._data is not None
