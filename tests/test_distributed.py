"""gradc.distributed and DistributedDataParallel.

The multi-rank tests start real 2-rank MPI jobs (`mpiexec -n 2 python tests/dist_worker.py ...`) with
a timeout, and skip with the reason when mpi4py or mpiexec is missing (pip install 'gradc[dist]').
The rest runs in this process without MPI: errors before a group exists, the bucket layout, the
collective node in the compiler, and the post-backward hook that DDP is built on."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gradc
import gradc.distributed as dist
from gradc import autograd, nn, optim
from gradc.ir import Graph
from gradc.nn.parallel import bucket_layout
from gradc.ops import OPS
from gradc.ops.collective import all_reduce
from gradc.passes.simplify import simplify

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "dist_worker.py"


def find_mpiexec():
    """mpiexec of the MPI that mpi4py uses: the mpich wheel puts it beside this Python."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _why_no_mpi():
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'gradc[dist]' installs mpi4py and MPICH)"
    if find_mpiexec() is None:
        return "mpiexec was not found beside this Python or on PATH (pip install 'gradc[dist]' installs MPICH's)"
    return None


needs_mpi = pytest.mark.skipif(_why_no_mpi() is not None, reason=str(_why_no_mpi()))


def mpirun(args, n=2, timeout=120, env=None):
    """Run `python ARGS` as an n-rank job; returns (CompletedProcess, seconds)."""
    env = dict(os.environ, **(env or {}))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # n ranks share the cores
    start = time.perf_counter()
    proc = subprocess.run([find_mpiexec(), "-n", str(n), sys.executable, *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - start


def scenario(name, n=2):
    proc, _ = mpirun([WORKER, name], n)
    assert proc.returncode == 0, f"{name} failed ({proc.returncode})\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0][len("RESULT "):])


# ------------------------------------------------------------------------------------- 2-rank jobs
@needs_mpi
def test_all_reduce_broadcast_barrier_over_dtypes_and_shapes():
    r = scenario("collectives")
    # float32/float64/float16: 5 shapes x (sum, avg, max, min + broadcast from each of 2 ranks);
    # int64: 5 shapes x (sum, max, min + 2 broadcasts)
    assert r["size"] == 2 and r["checked"] == 3 * 5 * 6 + 5 * 5
    assert r["n_collectives"] == 1
    assert r["n_twice"] == 2  # two all_reduces of the same value stay two exchanges


@needs_mpi
def test_ranks_that_disagree_get_the_same_clear_error():
    errors = scenario("mismatch")["errors"]
    assert "rank 0: all_reduce(sum) of float32 (3,)" in errors["shape"]
    assert "rank 1: all_reduce(sum) of float32 (4,)" in errors["shape"]
    assert "float64 (3,)" in errors["dtype"] and "float32 (3,)" in errors["dtype"]
    assert "broadcast(src=0)" in errors["collective"] and "all_reduce(sum)" in errors["collective"]
    assert ".long()" in errors["bool"]


@needs_mpi
def test_ddp_equals_single_process_training_on_the_whole_batch():
    r = scenario("ddp")
    assert r["size"] == 2
    assert r["across_ranks"] == 0.0          # both ranks hold bit-identical parameters
    assert r["moved"] > 1e-3                 # training did change them
    assert r["eager_vs_reference"] < 1e-5    # = one process on the concatenated batch
    assert r["compiled_vs_eager"] < 1e-5     # compiled DDP = eager DDP
    assert r["small_vs_eager"] < 1e-5 and r["small_compiled_vs_eager"] < 1e-5
    assert r["accumulated_vs_eager"] < 1e-5  # no_sync + a synchronised backward = one backward
    # one bucket by default, in reverse parameter order; 3 with a tiny cap
    assert r["buckets"] == [["4.bias", "4.weight", "2.bias", "2.weight", "0.bias", "0.weight"]]
    assert r["small_buckets"] == [["4.bias", "4.weight", "2.bias"], ["2.weight"], ["0.bias", "0.weight"]]
    # in the compiled step, each bucket is one collective node of the graph
    assert r["graph_collectives"] == 1 and r["small_collectives"] == 3


@needs_mpi
def test_ddp_with_compiled_forward_and_eager_backward():
    assert scenario("ddp_eager_backward_of_compiled_forward")["vs_reference"] < 1e-5


@needs_mpi
def test_compiled_ddp_step_on_the_cuda_backend():
    r = scenario("ddp_cuda_backend")
    if "skipped" in r:
        pytest.skip(r["skipped"])
    assert r["host_calls"] == 1 and r["numpy_calls"] == 1  # one bucket, one collective in each backend's code
    assert r["outputs"] >= 13  # the loss, 6 new parameters, 6 gradients
    assert r["cuda_vs_numpy"] < 1e-5 and r["across_ranks"] == 0.0


@needs_mpi
def test_a_failing_rank_ends_the_whole_job():
    proc, seconds = mpirun([WORKER, "uncaught"], timeout=60)
    assert proc.returncode != 0
    assert seconds < 60
    assert "RuntimeError: rank 1 failed on purpose" in proc.stderr
    assert "rank 1 of 2 stopped on an uncaught RuntimeError" in proc.stderr
    assert "UNREACHABLE" not in proc.stdout


@needs_mpi
def test_a_rank_that_exits_while_the_others_wait_ends_the_job():
    proc, seconds = mpirun([WORKER, "exit_while_peer_waits"], timeout=60)
    assert proc.returncode != 0, proc.stderr
    assert seconds < 30   # the default wait is 5 s
    assert "rank 1 of 2 exited while the process group was initialised" in proc.stderr
    assert "destroy_process_group()" in proc.stderr
    assert "UNREACHABLE" not in proc.stdout


@needs_mpi
def test_ranks_that_all_end_without_destroy_end_normally_within_the_wait():
    assert scenario("end_without_destroy")["size"] == 2   # exit status 0
    proc, _ = mpirun([WORKER, "end_without_destroy"], timeout=60, env={dist.EXIT_TIMEOUT_VAR: "0.2"})
    assert proc.returncode != 0   # rank 0 came a second late: longer than the wait
    assert "rank 1 of 2 exited" in proc.stderr and "did not exit within 0.2 s" in proc.stderr


def test_exit_wait_must_be_a_number_of_seconds(monkeypatch):
    monkeypatch.setenv(dist.EXIT_TIMEOUT_VAR, "2.5")
    assert dist._exit_timeout() == 2.5
    monkeypatch.delenv(dist.EXIT_TIMEOUT_VAR)
    assert dist._exit_timeout() == 5.0
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(dist.EXIT_TIMEOUT_VAR, bad)
        with pytest.raises(gradc.GradcError, match="is not a number of seconds"):
            dist._exit_timeout()


@needs_mpi
def test_nccl_group_wiring_without_a_gpu():
    r = scenario("nccl_wiring")
    assert r["uid"].startswith("unique-id-")
    assert "NCCL needs one GPU per rank" in r["too_few"]


@needs_mpi
@pytest.mark.parametrize("flags", [[], ["--compile"]], ids=["eager", "compiled"])
def test_ddp_example(flags):
    proc, _ = mpirun([ROOT / "examples" / "ddp_train.py", *flags], timeout=240)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    out = proc.stdout
    losses = [float(line.split()[-1]) for line in out.splitlines() if line.startswith("epoch")]
    # The example's loss spikes now and then (Adam at its learning rate, epochs of shuffled batches), and
    # a rounding difference moves the spikes: the median of the last five epochs says whether it trained.
    assert len(losses) == 30 and sorted(losses[-5:])[2] < losses[0] / 5, losses
    assert "parameters identical on all 2 rank(s): True" in out
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert accuracy >= 0.95


# ------------------------------------------------------------------------------------- in this process
def test_no_group_is_a_clear_error():
    assert not dist.is_initialized()
    for call in (dist.get_rank, dist.get_world_size, dist.barrier, lambda: dist.all_reduce(gradc.ones(2)),
                 lambda: dist.broadcast(gradc.ones(2)),
                 lambda: nn.parallel.DistributedDataParallel(nn.Linear(2, 2))):
        with pytest.raises(gradc.GradcError, match=r"init_process_group"):
            call()


def test_unknown_backend():
    with pytest.raises(gradc.GradcError, match="unknown backend 'ucc'"):
        dist.init_process_group(backend="ucc")


def test_missing_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    with pytest.raises(gradc.GradcError, match=r"pip install 'gradc\[dist\]'"):
        dist.init_process_group(backend="mpi")
    assert not dist.is_initialized()


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed here")
def test_nccl_without_cupy_says_what_to_install():
    with pytest.raises(gradc.GradcError, match=r"backend='nccl' needs CuPy"):
        dist.init_process_group(backend="nccl")
    assert not dist.is_initialized()


class _P:
    """What bucket_layout reads of a parameter."""

    def __init__(self, n, dtype=gradc.float32, device="cpu"):
        self.shape, self.dtype, self.device = (n,), dtype, gradc.device(device)

    def numel(self):
        return self.shape[0]


def test_bucket_layout():
    params = [_P(10), _P(5), _P(300), _P(5), _P(5, gradc.float64), _P(8)]
    # reverse order, a new bucket when the next gradient would pass 100 bytes, one dtype per bucket;
    # the 1200-byte parameter gets a bucket of its own
    assert bucket_layout(params, 100) == [[5, 3], [4], [2], [1, 0]]
    assert bucket_layout(params, 10 ** 6) == [[5, 3, 2, 1, 0], [4]]
    assert bucket_layout(params, 1) == [[5], [4], [3], [2], [1], [0]]
    assert bucket_layout([], 100) == []


def test_all_reduce_is_a_graph_node_that_simplify_keeps():
    g = Graph()
    x = g.add_input("x", (4,), "float32")
    c = g.add_const(np.arange(4, dtype=np.float32))
    a1 = g.add("all_reduce", [x], (4,), "float32", {"reduction": 0})
    a2 = g.add("all_reduce", [x], (4,), "float32", {"reduction": 0})  # identical, but a second exchange
    a3 = g.add("all_reduce", [c], (4,), "float32", {"reduction": 1})  # constant operand: run, not folded
    a4 = g.add("all_reduce", [x], (4,), "float32", {"reduction": 2})  # unused: removed
    g.outputs = [a1, a2, a3]
    simplify(g)
    codes = sorted(g.node(n)["attrs"]["reduction"] for n in g.op_nodes() if g.node(n)["op"] == "all_reduce")
    assert codes == [0, 0, 1] and a4 not in g
    g.verify()
    with pytest.raises(gradc.GradcError, match="unknown reduction 'prod'"):
        all_reduce(gradc.ones(4), "prod")
    with pytest.raises(gradc.GradcError, match="not an index"):
        OPS["all_reduce"].infer([(4,)], [gradc.float32], {"reduction": 4})
    with pytest.raises(gradc.DTypeError, match="op='avg'"):
        all_reduce(gradc.ones(4, dtype=gradc.int64), "avg")


def test_compiled_all_reduce_renders_a_call_of_the_kernel():
    def fn(x):
        return all_reduce(x * 2.0, "avg") + 1.0
    prog = gradc.compile(fn).lower(gradc.ones(3, 2))  # lowering runs nothing: no process group needed
    src = prog.source.get("program.py") or prog.source["host.py"]   # NumPy module, or a C program's host
    assert 'K_all_reduce = _OPS["all_reduce"].eager' in src
    assert 'K_all_reduce(np, ' in src and 'reduction=1)' in src
    assert "all_reduce(%" in prog.ir.to_text() and "reduction=1" in prog.ir.to_text()


# ------------------------------------------------------------------------------------- post-backward hooks
def _model():
    gradc.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_post_backward_hook_runs_once_per_backward_that_reaches_its_tensors():
    model, other = _model(), nn.Linear(3, 1)
    seen = []

    def hook():
        seen.append([p.grad.numpy().copy() for p in model.parameters()])
    handle = autograd.register_post_backward_hook(list(model.parameters()), hook)
    x = gradc.randn(5, 3)
    model(x).sum().backward()
    assert len(seen) == 1  # after every gradient was written
    assert all(np.array_equal(a, p.grad.numpy()) for a, p in zip(seen[0], model.parameters()))
    other(x).sum().backward()  # another model's backward: not called
    assert len(seen) == 1
    handle.remove()
    model(x).sum().backward()
    assert len(seen) == 1


def test_post_backward_hook_holds_a_bound_method_weakly():
    model = _model()

    class Owner:
        calls = 0

        def hook(self):
            Owner.calls += 1
    owner = Owner()
    autograd.register_post_backward_hook(list(model.parameters()), owner.hook)
    model(gradc.randn(2, 3)).sum().backward()
    del owner
    model(gradc.randn(2, 3)).sum().backward()
    assert Owner.calls == 1


def test_post_backward_hook_is_traced_into_a_compiled_step():
    """The hook's tensor ops (here: halve every gradient) become part of the compiled step, and the
    compiled step equals the eager one."""
    def build():
        model = _model()
        opt = optim.SGD(model.parameters(), lr=0.1)

        def halve():
            for p in model.parameters():
                p.grad = p.grad * 0.5
        handle = autograd.register_post_backward_hook(list(model.parameters()), halve)

        def step(x):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
        return model, step, handle

    x = gradc.randn(6, 3)
    eager_model, eager_step, h1 = build()
    compiled_model, step, h2 = build()
    compiled = gradc.compile(step)
    for _ in range(3):
        eager_step(x)
        compiled(x)
    for a, b in zip(eager_model.parameters(), compiled_model.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-7)
    h1.remove()
    h2.remove()
