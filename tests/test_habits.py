"""PyTorch habits that scripts rely on: inference_mode, set_grad_enabled, gradc.autocast with
torch.autocast's signature, gradc.cuda.amp aliases, GradScaler with the device first,
gradc.cuda seeding and synchronize, gradc.Generator, and init_process_group's torch-style
arguments (checked against the MPI job, in subprocesses)."""
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import warnings

import pytest

import gradc
from gradc import GradcError

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------ grad modes
def test_inference_mode_like_torch():
    torch = pytest.importorskip("torch")
    x = gradc.ones(2, requires_grad=True)
    tx = torch.ones(2, requires_grad=True)
    with gradc.inference_mode():
        y = x * 2
        assert not gradc.is_grad_enabled() and gradc.is_inference_mode_enabled()
        with gradc.inference_mode(False):  # turns recording back on, as torch's does
            z = x * 3
            assert gradc.is_grad_enabled() and not gradc.is_inference_mode_enabled()
        assert gradc.is_inference_mode_enabled()
    with torch.inference_mode():
        ty = tx * 2
        with torch.inference_mode(False):
            tz = tx * 3
    assert y.requires_grad == ty.requires_grad and z.requires_grad == tz.requires_grad
    assert y.grad_fn is None and z.grad_fn is not None
    assert gradc.is_grad_enabled() and not gradc.is_inference_mode_enabled()
    with gradc.no_grad(), gradc.inference_mode(False), torch.no_grad(), torch.inference_mode(False):
        assert gradc.is_grad_enabled() and torch.is_grad_enabled()

    @gradc.inference_mode
    def bare():
        return gradc.is_grad_enabled(), gradc.is_inference_mode_enabled()

    @gradc.inference_mode(False)
    def off():
        return gradc.is_grad_enabled()
    assert bare() == (False, True) and off() is True and gradc.is_grad_enabled()
    with pytest.raises(GradcError, match="True or False"):
        gradc.inference_mode("yes")
    # an exception inside restores both modes
    with pytest.raises(ValueError):
        with gradc.inference_mode():
            raise ValueError
    assert gradc.is_grad_enabled() and not gradc.is_inference_mode_enabled()


def test_set_grad_enabled_like_torch():
    x = gradc.ones(2, requires_grad=True)
    with gradc.set_grad_enabled(False):
        assert (x * 2).grad_fn is None
    assert (x * 2).grad_fn is not None
    gradc.set_grad_enabled(False)  # as a plain call it sets the mode
    assert not gradc.is_grad_enabled()
    gradc.set_grad_enabled(True)

    @gradc.set_grad_enabled(False)
    def f():
        return gradc.is_grad_enabled()
    assert f() is False and gradc.is_grad_enabled()


# ------------------------------------------------------------------------------------------ autocast
def test_autocast_torch2_signature():
    a, b = gradc.randn(4, 4), gradc.randn(4, 4)
    with pytest.warns(UserWarning, match="bfloat16"):   # PyTorch's CPU default, which gradc lacks
        with gradc.autocast("cpu"):
            assert (a @ b).dtype is gradc.float16 and gradc.amp.is_autocast_enabled()
    with gradc.autocast("cpu", dtype=gradc.float16):
        assert (a @ b).dtype is gradc.float16
    cuda = gradc.cuda.is_available()
    with warnings.catch_warnings(record=True) as caught:   # without CUDA: a warning, and disabled (PyTorch's)
        warnings.simplefilter("always")
        with gradc.autocast(device_type="cuda", dtype=gradc.float16, enabled=True, cache_enabled=False):
            assert (a @ b).dtype is (gradc.float16 if cuda else gradc.float32)
    assert cuda or "CUDA is not available" in str(caught[0].message)
    half = gradc.float16 if cuda else gradc.float32
    with gradc.autocast("cpu", enabled=False):
        assert (a @ b).dtype is gradc.float32
    with gradc.amp.autocast():  # gradc.amp.autocast keeps its own (dtype-first) signature
        with gradc.autocast("cpu", enabled=False):  # and the alias nests inside it
            assert (a @ b).dtype is gradc.float32
        assert (a @ b).dtype is gradc.float16

    @gradc.autocast("cpu", dtype=gradc.float16)
    def mm(x, y):
        return x @ y
    assert mm(a, b).dtype is gradc.float16 and (a @ b).dtype is gradc.float32
    with pytest.raises(TypeError):
        gradc.autocast()  # the device type is required, as in torch
    with pytest.raises(gradc.DTypeError, match="device_type"):
        gradc.autocast("tpu")
    with pytest.raises(gradc.DTypeError, match="parentheses"):
        gradc.autocast(lambda: None)
    with pytest.raises(gradc.DTypeError, match="parentheses"):
        gradc.cuda.amp.autocast(lambda: None)
    with pytest.raises(gradc.DTypeError, match="bfloat16"):
        gradc.autocast("cpu", dtype="bfloat16")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with gradc.cuda.amp.autocast():
            assert (a @ b).dtype is half
    with gradc.cuda.amp.autocast(enabled=False):
        assert (a @ b).dtype is gradc.float32


def test_grad_scaler_device_first():
    torch = pytest.importorskip("torch")
    s = gradc.amp.GradScaler("cpu", init_scale=8.0, growth_interval=3)
    t = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=3)
    assert s.get_scale() == t.get_scale() == 8.0
    assert s.state_dict() == {k: v for k, v in t.state_dict().items()}
    positional = gradc.amp.GradScaler("cpu", 4.0, 3.0, 0.25, 5, True)
    assert positional.state_dict() == torch.amp.GradScaler("cpu", 4.0, 3.0, 0.25, 5, True).state_dict()
    assert gradc.amp.GradScaler(init_scale=2.0).get_scale() == 2.0  # keyword use, no device: follows the loss
    with pytest.raises(GradcError, match="first argument is the device"):
        gradc.amp.GradScaler(1024.0)
    assert not gradc.cuda.amp.GradScaler(enabled=False).is_enabled()
    if not gradc.cuda.is_available():   # PyTorch's: a warning, and the scaler disabled (scale 1.0)
        for make in (lambda: gradc.amp.GradScaler("cuda"), gradc.cuda.amp.GradScaler):
            with pytest.warns(UserWarning, match="CUDA is not available"):
                s = make()
            assert not s.is_enabled() and s.get_scale() == 1.0


# ------------------------------------------------------------------------------------------ cuda, generators
def test_cuda_seeding_and_queries():
    gradc.cuda.manual_seed(3)
    a = gradc.randn(5)
    gradc.cuda.manual_seed_all(3)
    b = gradc.randn(5)
    gradc.manual_seed(3)
    c = gradc.randn(5)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(a.numpy(), c.numpy())
    assert gradc.cuda.is_bf16_supported() is False
    gradc.cuda.empty_cache()
    if gradc.cuda.is_available():
        gradc.cuda.synchronize()
        x = gradc.ones(3, device="cuda") * 2
        gradc.cuda.synchronize(0)
        assert x.cpu().numpy().tolist() == [2.0, 2.0, 2.0]
        assert gradc.cuda.current_device() == 0
    else:
        with pytest.raises(gradc.DeviceError):
            gradc.cuda.synchronize()
        with pytest.raises(gradc.DeviceError):
            gradc.cuda.current_device()
    from gradc.cuda.amp import GradScaler, autocast  # the import paths scripts use
    assert importlib.import_module("gradc.cuda.amp").GradScaler is GradScaler and autocast is gradc.cuda.amp.autocast


def test_generator_objects():
    g = gradc.Generator().manual_seed(5)
    assert g.initial_seed() == 5
    state = g.get_state()
    a = g.numpy_generator.random(3)
    g.set_state(state)
    np.testing.assert_array_equal(g.numpy_generator.random(3), a)
    assert gradc.Generator().manual_seed(-1).initial_seed() == 2 ** 64 - 1  # wraps, as torch
    with pytest.raises(GradcError, match="int"):
        gradc.Generator().manual_seed(1.5)
    s = gradc.Generator().seed()
    assert isinstance(s, int)
    gradc.default_generator.manual_seed(9)
    x = gradc.rand(4)
    gradc.manual_seed(9)
    np.testing.assert_array_equal(gradc.rand(4).numpy(), x.numpy())
    assert gradc.default_generator.initial_seed() == 9


# ------------------------------------------------------------------------------------------ distributed
def _why_no_mpi():
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'gradc[dist]')"
    beside = Path(sys.executable).parent / "mpiexec"
    if not beside.exists() and not __import__("shutil").which("mpiexec"):
        return "mpiexec was not found"
    return None


needs_mpi = pytest.mark.skipif(_why_no_mpi() is not None, reason=str(_why_no_mpi()))

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import gradc, gradc.distributed as dist
    kw = json.loads(sys.argv[1])
    if os.environ.get("FROM_PMI"):
        os.environ["RANK"] = os.environ["PMI_RANK"]  # what a torch launcher would set
        os.environ["WORLD_SIZE"] = os.environ["PMI_SIZE"]
    out = open(os.path.join(os.environ["OUT_DIR"], str(os.getpid())), "w")
    try:
        dist.init_process_group(**kw)
    except gradc.GradcError as e:
        out.write(f"ERROR {e}")
        sys.exit(0)
    t = gradc.ones(1) * (dist.get_rank() + 1)
    dist.all_reduce(t)
    out.write(f"OK {dist.get_rank()} {dist.get_world_size()} {dist.get_backend()} {t.item()}")
    dist.destroy_process_group()
""")


def _run(tmp_path, kw, n=1, env=None):
    import json
    import shutil
    script, outs = tmp_path / "init.py", tmp_path / "out"
    shutil.rmtree(outs, ignore_errors=True)
    outs.mkdir()
    script.write_text(SCRIPT)
    env = dict(os.environ, **(env or {}), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OUT_DIR=str(outs))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    for k in ("RANK", "WORLD_SIZE"):
        if env.get(k) is None:
            env.pop(k, None)
    cmd = [sys.executable, str(script), json.dumps(kw)]
    if n > 1:
        beside = Path(sys.executable).parent / "mpiexec"
        cmd = [str(beside) if beside.exists() else "mpiexec", "-n", str(n)] + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return sorted(p.read_text() for p in outs.iterdir())


@needs_mpi
def test_init_process_group_torch_arguments(tmp_path):
    env_clear = {"RANK": None, "WORLD_SIZE": None}
    out = _run(tmp_path, dict(backend="gloo", init_method="env://", world_size=1, rank=0), env=env_clear)
    assert out == ["OK 0 1 mpi 1.0"]
    out = _run(tmp_path, dict(backend="gloo"), env={"RANK": "0", "WORLD_SIZE": "1"})
    assert out == ["OK 0 1 mpi 1.0"]
    # a torchrun-style launch: the variables say 2 processes, MPI knows of one
    out = _run(tmp_path, dict(backend="gloo"), env={"RANK": "1", "WORLD_SIZE": "2"})
    assert len(out) == 1 and "WORLD_SIZE='2'" in out[0] and "RANK='1'" in out[0] and "mpiexec -n N" in out[0]
    out = _run(tmp_path, dict(backend="mpi", world_size=4), env=env_clear)
    assert "world_size=4 was passed" in out[0]
    out = _run(tmp_path, dict(backend="gloo", init_method="tcp://10.0.0.1:23456"), env=env_clear)
    assert "init_method='tcp://10.0.0.1:23456') is not supported" in out[0]
    out = _run(tmp_path, dict(backend=None), env=env_clear)
    assert out == ["OK 0 1 mpi 1.0"]


@needs_mpi
def test_init_process_group_two_ranks(tmp_path):
    out = _run(tmp_path, dict(backend="gloo", init_method="env://"), n=2, env={"FROM_PMI": "1"})
    assert out == ["OK 0 2 mpi 3.0", "OK 1 2 mpi 3.0"]
    # one rank passes a wrong rank: both ranks raise (neither hangs in a collective)
    out = _run(tmp_path, dict(backend="gloo", rank=0), n=2)
    assert len(out) == 2 and all(line.startswith("ERROR") for line in out)
    assert any("rank=0 was passed" in line for line in out)
    assert any("another rank was given" in line for line in out)


# ------------------------------------------------------------------------------ habits of real scripts
def test_legacy_tensor_constructor():
    p = gradc.nn.Parameter(gradc.Tensor(3, 4))   # then reset_parameters() fills it
    assert p.shape == (3, 4) and p.dtype is gradc.float32 and p.requires_grad
    assert gradc.Tensor().shape == (0,) and gradc.Tensor(gradc.Size([2, 5])).shape == (2, 5)
    t = gradc.Tensor([1, 2])   # data: the default float type, as torch.Tensor([1, 2])
    assert t.dtype is gradc.float32 and t.tolist() == [1.0, 2.0]
    assert gradc.Tensor((2, 3)).tolist() == [2.0, 3.0]   # a tuple is data, not sizes


def test_to_takes_non_blocking():
    x = gradc.ones(2)
    assert x.to("cpu", non_blocking=True) is x
    assert x.to(gradc.float64, non_blocking=True).dtype is gradc.float64
    m = gradc.nn.Linear(2, 2)
    assert m.to("cpu", non_blocking=True) is m


def test_sequential_of_an_ordered_dict_and_its_mutations():
    import collections
    nn = gradc.nn
    fc = nn.Linear(2, 2)
    s = nn.Sequential(collections.OrderedDict([("fc", fc), ("act", nn.ReLU())]))
    assert s.fc is fc and s[0] is fc and list(s.state_dict()) == ["fc.weight", "fc.bias"]
    assert [k for k, _ in s[1:].named_children()] == ["act"]   # a slice keeps the names
    q = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    del q[1]
    q.insert(1, nn.Tanh())
    q.append(nn.Sigmoid())
    q[3] = nn.Identity()
    assert [type(m).__name__ for m in q] == ["Linear", "Tanh", "Linear", "Identity"]
    assert list(q.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    q.alias = q[0]   # one module under two names: one child, as in PyTorch
    assert len(list(q.children())) == 4
    with pytest.raises(IndexError):
        q[5]
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(lambda x: x)


def test_step_lr_takes_a_float_step_size():
    p = gradc.nn.Parameter(gradc.zeros(1))
    opt = gradc.optim.SGD([p], lr=1.0)
    sched = gradc.optim.lr_scheduler.StepLR(opt, 1.0, gamma=0.5)   # as PyTorch's nn.Transformer tutorial
    lrs = []
    for _ in range(3):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs == [0.5, 0.25, 0.125]
    with pytest.raises(GradcError, match="positive number"):
        gradc.optim.lr_scheduler.StepLR(opt, 0)
