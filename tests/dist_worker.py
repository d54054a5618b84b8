"""Runs inside each rank of an `mpiexec -n N` job started by tests/test_distributed.py.

Usage: mpiexec -n 2 python tests/dist_worker.py SCENARIO

Each scenario checks its own results on every rank (an AssertionError aborts the job with a non-zero
exit) and rank 0 prints one line `RESULT <json>` with the numbers the test asserts on."""
import json
import sys
import time
import types

import numpy as np

import gradc
import gradc.distributed as dist
from gradc import nn, optim
from gradc.ops.collective import all_reduce


def result(**values):
    if dist.get_rank() == 0:
        print("RESULT " + json.dumps(values), flush=True)


def gather(comm, value):
    return comm.allgather(value)


# ------------------------------------------------------------------------------------- collectives
DTYPES = {"float32": gradc.float32, "float64": gradc.float64, "float16": gradc.float16, "int64": gradc.int64}
SHAPES = [(), (5,), (2, 3, 4), (0, 3), (64, 33)]


def rank_value(shape, dtype, rank):
    """A value that differs per rank and per element and is exact in every dtype."""
    n = int(np.prod(shape, dtype=np.int64))
    base = (np.arange(n) % 7 - 3 + 10 * rank).reshape(shape)
    return base.astype(DTYPES[dtype].np)


def scenario_collectives(comm):
    rank, size = dist.get_rank(), dist.get_world_size()
    assert (rank, size) == (comm.Get_rank(), comm.Get_size())
    assert dist.is_initialized() and dist.get_backend() == "mpi"
    checked = 0
    for dtype in DTYPES:
        for shape in SHAPES:
            values = [rank_value(shape, dtype, r) for r in range(size)]
            expect = {"sum": np.sum(values, axis=0), "max": np.max(values, axis=0), "min": np.min(values, axis=0)}
            if DTYPES[dtype].is_floating_point:
                expect["avg"] = (np.sum(np.asarray(values, np.float64), axis=0) / size)
            for op, want in expect.items():
                t = gradc.tensor(values[rank], dtype=DTYPES[dtype])
                version = t._version[0]
                dist.all_reduce(t, op=op)
                assert t.dtype is DTYPES[dtype] and t.shape == shape
                np.testing.assert_allclose(t.numpy().astype(np.float64), np.asarray(want, np.float64), rtol=1e-3)
                assert t._version[0] == version + 1
                # the primitive: a new tensor, the operand unchanged
                u = gradc.tensor(values[rank], dtype=DTYPES[dtype])
                r = all_reduce(u, op)
                np.testing.assert_array_equal(u.numpy(), values[rank])
                np.testing.assert_allclose(r.numpy().astype(np.float64), np.asarray(want, np.float64), rtol=1e-3)
                checked += 1
            for src in range(size):
                t = gradc.tensor(values[rank], dtype=DTYPES[dtype])
                dist.broadcast(t, src=src)
                np.testing.assert_array_equal(t.numpy(), values[src])
                checked += 1
    # a non-contiguous tensor (a transposed view) is reduced in place through a contiguous copy
    base = gradc.tensor(rank_value((4, 6), "float32", rank))
    view = base.t()
    dist.all_reduce(view)
    want = sum(rank_value((4, 6), "float32", r) for r in range(size))
    np.testing.assert_array_equal(base.numpy(), want)
    # barrier: nobody leaves before everybody arrived (rank 0 arrives last, after a pause)
    import time
    if rank == 0:
        time.sleep(0.3)
    start = time.perf_counter()
    dist.barrier()
    waited = gather(comm, time.perf_counter() - start)
    assert all(w >= 0.2 for w in waited[1:]), waited
    # all_reduce inside a compiled function: a graph node that the generated code runs
    step = gradc.compile(lambda x: (all_reduce(x * 2.0, "sum") + 1.0, x * 2.0))
    x = gradc.tensor(rank_value((3, 4), "float32", rank))
    prog = step.lower(x)
    n_collectives = sum(1 for _, d in prog.graph.nodes(data=True) if d["op"] == "all_reduce")
    module = prog.source.get("program.py") or prog.source["host.py"]   # NumPy module, or a C program's host
    assert "K_all_reduce(np," in module, module
    total = sum(rank_value((3, 4), "float32", r) for r in range(size))
    for _ in range(3):  # the first call traces, the others run the cached program
        out, doubled = step(x)
        np.testing.assert_array_equal(out.numpy(), 2.0 * total + 1.0)
        np.testing.assert_array_equal(doubled.numpy(), 2.0 * x.numpy())
    # two identical all_reduces are two exchanges: the simplify passes must not merge them
    twice = gradc.compile(lambda x: (all_reduce(x, "sum"), all_reduce(x, "sum")))
    a, b = twice(x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    n_twice = sum(1 for _, d in twice.lower(x).graph.nodes(data=True) if d["op"] == "all_reduce")
    # dist.all_reduce (in place) inside a compiled function
    inplace = gradc.compile(lambda x: dist.all_reduce(x, op="max"))
    y = gradc.tensor(rank_value((2, 2), "float64", rank))
    inplace(y)
    np.testing.assert_array_equal(y.numpy(), rank_value((2, 2), "float64", size - 1))
    result(checked=checked, size=size, n_collectives=n_collectives, n_twice=n_twice)


def scenario_mismatch(comm):
    rank = dist.get_rank()
    errors = {}
    try:  # shapes differ
        dist.all_reduce(gradc.zeros(3 + rank))
    except gradc.ShapeError as e:
        errors["shape"] = str(e)
    try:  # dtypes differ
        dist.all_reduce(gradc.zeros(3, dtype=gradc.float32 if rank == 0 else gradc.float64))
    except gradc.DTypeError as e:
        errors["dtype"] = str(e)
    try:  # different collectives
        t = gradc.zeros(3)
        dist.broadcast(t) if rank == 0 else dist.all_reduce(t)
    except gradc.GradcError as e:
        errors["collective"] = str(e)
    try:  # bool is refused on every rank before any exchange
        dist.all_reduce(gradc.zeros(3, dtype=gradc.bool))
    except gradc.DTypeError as e:
        errors["bool"] = str(e)
    # the group still works afterwards
    t = gradc.ones(2)
    dist.all_reduce(t)
    assert t.tolist() == [2.0, 2.0]
    all_errors = gather(comm, errors)
    assert all(e.keys() == all_errors[0].keys() for e in all_errors), all_errors
    result(errors=errors)


def scenario_uncaught(comm):
    """Rank 1 fails; rank 0 is already waiting in a collective. The job must end, non-zero."""
    if dist.get_rank() == 1:
        raise RuntimeError("rank 1 failed on purpose")
    t = gradc.ones(4)
    dist.all_reduce(t)
    print("UNREACHABLE: rank 0 finished its all_reduce", flush=True)


def scenario_exit_while_peer_waits(comm):
    """Rank 1 leaves with sys.exit() (status 0) while rank 0 waits in a collective: the job must end,
    non-zero, within seconds."""
    if dist.get_rank() == 1:
        sys.exit()
    t = gradc.ones(4)
    dist.all_reduce(t)
    print("UNREACHABLE: rank 0 finished its all_reduce", flush=True)


def scenario_end_without_destroy(comm):
    """Every rank ends without destroy_process_group(), rank 0 a second after rank 1: nobody is left
    waiting, so the job ends normally (unless GRADC_DIST_EXIT_TIMEOUT is shorter than that second)."""
    t = gradc.ones(2)
    dist.all_reduce(t)
    assert t.tolist() == [2.0, 2.0]
    result(size=dist.get_world_size())
    if dist.get_rank() == 0:
        time.sleep(1.0)
    sys.exit(0)


# ------------------------------------------------------------------------------------- DDP training
STEPS, PER_RANK, SIZES = 4, 6, (5, 16, 16, 3)


def mlp(seed):
    gradc.manual_seed(seed)
    return nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(), nn.Linear(SIZES[1], SIZES[2]), nn.Tanh(),
                         nn.Linear(SIZES[2], SIZES[3]))


def batches(size):
    """The global batch of each step: rank r trains on rows r*PER_RANK..(r+1)*PER_RANK."""
    rng = np.random.default_rng(7)
    return [(rng.standard_normal((PER_RANK * size, SIZES[0])).astype(np.float32),
             rng.integers(0, SIZES[-1], PER_RANK * size).astype(np.int64)) for _ in range(STEPS)]


def params_of(model):
    return [p.detach().numpy().copy() for p in model.parameters()]


def train(model, data, rank, compiled, ddp_kwargs=None):
    """STEPS of SGD with momentum on this rank's slice of each batch."""
    if ddp_kwargs is not None:
        model = nn.parallel.DistributedDataParallel(model, **ddp_kwargs)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    run = gradc.compile(step, fullgraph=True) if compiled else step
    lo, hi = (rank * PER_RANK, (rank + 1) * PER_RANK) if rank is not None else (None, None)
    for x, y in data:
        run(gradc.from_numpy(x[lo:hi]), gradc.from_numpy(y[lo:hi]))
    return model, run


def scenario_ddp(comm):
    rank, size = dist.get_rank(), dist.get_world_size()
    data = batches(size)
    # every rank starts from a different initialisation: DDP must broadcast rank 0's
    eager, _ = train(mlp(100 + rank), data, rank, compiled=False, ddp_kwargs={})
    compiled, run = train(mlp(100 + rank), data, rank, compiled=True, ddp_kwargs={})
    small, _ = train(mlp(100 + rank), data, rank, compiled=False, ddp_kwargs={"bucket_cap_mb": 0.0005})
    small_c, run_small = train(mlp(100 + rank), data, rank, compiled=True, ddp_kwargs={"bucket_cap_mb": 0.0005})
    reference, _ = train(mlp(100), data, None, compiled=False)  # one process, the whole batch
    # gradient accumulation: the first half-batch under no_sync keeps local gradients, the second
    # backward averages the sum; the same as one backward over the rank's whole slice
    accumulated = nn.parallel.DistributedDataParallel(mlp(100 + rank))
    opt = optim.SGD(accumulated.parameters(), lr=0.1, momentum=0.9)
    for xb, yb in data:
        xb, yb = xb[rank * PER_RANK:(rank + 1) * PER_RANK], yb[rank * PER_RANK:(rank + 1) * PER_RANK]
        halves = [(gradc.from_numpy(xb[k]), gradc.from_numpy(yb[k])) for k in (slice(0, 3), slice(3, PER_RANK))]
        opt.zero_grad()
        with accumulated.no_sync():
            (nn.CrossEntropyLoss()(accumulated(halves[0][0]), halves[0][1]) / 2).backward()
        (nn.CrossEntropyLoss()(accumulated(halves[1][0]), halves[1][1]) / 2).backward()
        opt.step()
    x, y = gradc.from_numpy(data[0][0][:PER_RANK]), gradc.from_numpy(data[0][1][:PER_RANK])
    graph_collectives = sum(1 for _, d in run.lower(x, y).graph.nodes(data=True) if d["op"] == "all_reduce")
    small_collectives = sum(1 for _, d in run_small.lower(x, y).graph.nodes(data=True) if d["op"] == "all_reduce")

    def max_diff(a, b):
        return max(float(np.max(np.abs(u - v))) for u, v in zip(params_of(a), params_of(b)))

    mine = {k: params_of(m) for k, m in (("eager", eager), ("compiled", compiled), ("small", small),
                                           ("small_compiled", small_c), ("accumulated", accumulated))}
    everyone = gather(comm, mine)
    across = max(float(np.max(np.abs(u - v))) for other in everyone for k in mine
                 for u, v in zip(other[k], mine[k]))
    result(size=size, across_ranks=across, eager_vs_reference=max_diff(eager, reference),
           compiled_vs_eager=max_diff(compiled, eager), small_vs_eager=max_diff(small, eager),
           small_compiled_vs_eager=max_diff(small_c, eager), moved=max_diff(eager, mlp(100)),
           accumulated_vs_eager=max_diff(accumulated, eager),
           graph_collectives=graph_collectives, small_collectives=small_collectives,
           buckets=eager.buckets, small_buckets=small.buckets)


def scenario_ddp_eager_backward_of_compiled_forward(comm):
    """Compile only the model; loss.backward() runs eagerly through the compiled backward and the
    post-backward hook averages in eager mode."""
    rank, size = dist.get_rank(), dist.get_world_size()
    data = batches(size)
    model = nn.parallel.DistributedDataParallel(mlp(100 + rank))
    fwd = gradc.compile(model)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for x, y in data:
        sl = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(fwd(gradc.from_numpy(x[sl])), gradc.from_numpy(y[sl]))
        loss.backward()
        opt.step()
    reference, _ = train(mlp(100), data, None, compiled=False)
    diff = max(float(np.max(np.abs(u - v))) for u, v in zip(params_of(model), params_of(reference)))
    result(vs_reference=diff)


def scenario_ddp_cuda_backend(comm):
    """A DDP training step compiled for the CUDA backend: its host code calls the same collective
    kernel. Without a GPU the generated program runs emulated on the host (kernels built with g++,
    NumPy in CuPy's place) and must equal the NumPy backend's program, on both ranks."""
    from gradc.runtime import cuda_emulation
    if not cuda_emulation.available():
        result(skipped="g++ is not available to build the generated kernels for the host")
        return
    rank, size = dist.get_rank(), dist.get_world_size()
    model = nn.parallel.DistributedDataParallel(mlp(100 + rank))
    opt = optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        opt.step()
        return loss

    x, y = batches(size)[0]
    sl = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
    args = [gradc.from_numpy(x[sl]), gradc.from_numpy(y[sl])]
    outs, progs = {}, {}
    for backend in ("cuda", "numpy"):
        prog = progs[backend] = gradc.compile(step, backend=backend).lower(*args)
        arrays = [t._data.copy() for t in prog.resolve(args)]
        outs[backend] = cuda_emulation.run(prog, arrays) if backend == "cuda" else prog.execute(arrays)
    diff = max(float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(outs["cuda"], outs["numpy"]))
    everyone = gather(comm, [o.tolist() for o in outs["cuda"][1:]])  # all but the rank's own loss
    across = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for other in everyone
                 for a, b in zip(other, everyone[0]))
    result(cuda_vs_numpy=diff, across_ranks=across, outputs=len(outs["cuda"]),
           host_calls=progs["cuda"].source["host.py"].count("K_all_reduce(cp, "),
           numpy_calls=progs["numpy"].source["program.py"].count("K_all_reduce(np, "))


# ------------------------------------------------------------------------------------- NCCL wiring
class FakeNccl:
    """Stands in for cupy.cuda.nccl: records what the NCCL group asks of it."""
    NCCL_SUM, NCCL_MAX, NCCL_MIN = 0, 1, 2
    NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_INT64 = 6, 7, 8, 4
    made = []

    @staticmethod
    def get_unique_id():
        FakeNccl.made.append(1)
        return b"unique-id-" + bytes(str(np.random.default_rng().integers(1 << 30)), "ascii")

    class NcclCommunicator:
        def __init__(self, ndev, uid, rank):
            self.args, self.calls = (ndev, uid, rank), []

        def allReduce(self, send, recv, count, dtype, op, stream):
            self.calls.append(("allReduce", send == recv, count, dtype, op, stream))

        def bcast(self, buf, count, dtype, root, stream):
            self.calls.append(("bcast", count, dtype, root, stream))

        def destroy(self):
            self.calls.append(("destroy",))


class FakeDeviceArray:
    """A stand-in for a CuPy array: what the NCCL path reads (pointer, size, dtype, layout)."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype, self.size = shape, np.dtype(dtype), int(np.prod(shape))
        self.data = types.SimpleNamespace(ptr=id(self))
        self.flags = types.SimpleNamespace(c_contiguous=True)

    def __itruediv__(self, k):
        self.divided_by = k
        return self


def fake_cupy(n_gpus, used):
    stream = types.SimpleNamespace(ptr=1234, synchronize=lambda: used.append("sync"))

    class Device:
        def __init__(self, index):
            self.index = index

        def use(self):
            used.append(self.index)

    cuda = types.SimpleNamespace(nccl=FakeNccl, Device=Device, get_current_stream=lambda: stream,
                                 runtime=types.SimpleNamespace(getDeviceCount=lambda: n_gpus))
    return types.SimpleNamespace(cuda=cuda, empty=lambda shape, dtype: FakeDeviceArray(shape, dtype),
                                 ascontiguousarray=lambda a: a)


def scenario_nccl_wiring(comm):
    from mpi4py import MPI
    rank, size = comm.Get_rank(), comm.Get_size()
    # the unique id: made once, on rank 0, and the same bytes everywhere
    uid = dist.exchange_unique_id(comm, FakeNccl.get_unique_id)
    uids = gather(comm, uid)
    assert len(set(uids)) == 1 and uid.startswith(b"unique-id-"), uids
    assert sum(gather(comm, len(FakeNccl.made))) == 1
    # the group: GPU from the local rank, communicator over (world size, rank 0's id, rank)
    used = []
    group = dist.NCCLGroup(comm.Dup(), MPI, fake_cupy(n_gpus=size, used=used))
    assert used == [rank] and str(group.device) == f"cuda:{rank}", (used, group.device)
    ndev, gid, grank = group.communicator.args
    assert (ndev, grank) == (size, rank) and len(set(gather(comm, gid))) == 1
    # dispatch: device arrays go to NCCL (in place, count, dtype and op codes), NumPy arrays to MPI
    dev = FakeDeviceArray((4, 5), np.float16)
    group.all_reduce_inplace(dev, "avg")
    out = group.all_reduce_array(FakeDeviceArray((3,), np.int64), "max")
    group.broadcast_inplace(FakeDeviceArray((2, 2), np.float32), 0)
    calls = group.communicator.calls
    assert calls[0] == ("allReduce", True, 20, FakeNccl.NCCL_FLOAT16, FakeNccl.NCCL_SUM, 1234), calls
    assert dev.divided_by == size
    assert calls[1][0] == "allReduce" and calls[1][1:] == (False, 3, FakeNccl.NCCL_INT64, FakeNccl.NCCL_MAX, 1234)
    assert isinstance(out, FakeDeviceArray) and not hasattr(out, "divided_by")
    assert calls[2] == ("bcast", 4, FakeNccl.NCCL_FLOAT32, 0, 1234), calls
    host = np.full(3, float(rank + 1))
    group.all_reduce_inplace(host, "sum")
    assert host.tolist() == [size * (size + 1) / 2] * 3 and len(calls) == 3
    group.barrier()
    assert used[-1] == "sync"
    # too few GPUs on the node: a clear error, before any NCCL call
    try:
        dist.NCCLGroup(comm.Dup(), MPI, fake_cupy(n_gpus=rank, used=[]))
        too_few = None
    except gradc.DeviceError as e:
        too_few = str(e)
    group.destroy()
    assert calls[-1] == ("destroy",)
    result(uid=uid.decode(), too_few=too_few)


SCENARIOS = {name[len("scenario_"):]: fn for name, fn in globals().items() if name.startswith("scenario_")}


def main():
    name = sys.argv[1]
    dist.init_process_group(backend="mpi")
    from mpi4py import MPI
    SCENARIOS[name](MPI.COMM_WORLD)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
