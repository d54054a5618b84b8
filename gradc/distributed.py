"""gradc.distributed: process groups for data parallelism across processes.

One process per rank, started by MPI (`mpiexec -n N python train.py`). backend="mpi" runs the
collectives with MPI on NumPy buffers (mpi4py's buffer interface, in place where the API is in
place). backend="nccl" runs them with NCCL on the rank's GPU (one GPU per rank, chosen by the rank's
place on its node; the NCCL unique id travels over MPI) and shares everything else with the MPI
path: ranks, the cross-rank checks, error handling, and CPU tensors, which still go through MPI.

The `all_reduce` primitive (gradc/ops/collective.py) calls the active group, so eager code and
compiled programs run the same collective."""
import atexit
import importlib.util
import os
import sys
import time
import zlib

import numpy as np

from .autograd import no_grad
from .device import device as _device
from .errors import DeviceError, DTypeError, GradcError, ShapeError, TraceError
from .ops import OPS, collective
from .tensor import Tensor
from . import dispatch

BACKENDS = ("mpi", "nccl")
_group = collective.GROUP  # shared with the all_reduce primitive's kernel


class ReduceOp:
    """Names of the reductions (PyTorch spells them torch.distributed.ReduceOp.SUM, ...)."""
    SUM, AVG, MAX, MIN = "sum", "avg", "max", "min"


# ---------------------------------------------------------------------------------- process groups
class ProcessGroup:
    """All ranks of the job, talking over MPI. Subclasses replace `_reduce` and `_bcast` for the
    arrays they handle; the checks, averaging and bookkeeping here serve every backend."""
    backend = "mpi"

    def __init__(self, comm, MPI):
        self.comm, self.MPI = comm, MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.device = None  # the GPU of this rank (nccl)
        # The cross-rank check costs one 16-byte allreduce per collective; GRADC_DIST_CHECK=0 turns it off.
        self.check = os.environ.get("GRADC_DIST_CHECK", "1") != "0"
        self._mpi_ops = {"sum": MPI.SUM, "avg": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}
        self._previous_excepthook = None

    # ------------------------------------------------------------------ collectives on arrays
    def all_reduce_array(self, x, op):
        """A new array holding x reduced over the ranks (x is not changed)."""
        self._agree("all_reduce", op, x)
        xp = self._xp(x)
        out = xp.empty(x.shape, dtype=x.dtype)
        self._reduce(xp.ascontiguousarray(x), out, op)
        return self._average(out, op)

    def all_reduce_inplace(self, x, op):
        """x becomes the reduction over the ranks, written into its own memory."""
        self._agree("all_reduce", op, x)
        if x.flags.c_contiguous:
            self._reduce(None, x, op)
            self._average(x, op)
        else:  # MPI and NCCL need contiguous buffers
            tmp = self._xp(x).ascontiguousarray(x)
            self._reduce(None, tmp, op)
            x[...] = self._average(tmp, op)

    def broadcast_inplace(self, x, src):
        """x takes rank src's value, written into its own memory."""
        self._agree("broadcast", f"src={src}", x)
        if x.flags.c_contiguous:
            self._bcast(x, src)
        else:
            tmp = self._xp(x).ascontiguousarray(x)
            self._bcast(tmp, src)
            x[...] = tmp

    def barrier(self):
        self.comm.Barrier()

    def destroy(self):
        self.comm.Free()

    def _xp(self, x):
        """The array module of x."""
        if isinstance(x, np.ndarray):
            return np
        from .device import cupy_module
        return cupy_module()

    def _average(self, out, op):
        if op == "avg":
            out /= self.size
        return out

    # ------------------------------------------------------------------ the transport (MPI)
    def _reduce(self, send, recv, op):
        """recv = reduction over the ranks of send (of recv itself when send is None)."""
        if not isinstance(recv, np.ndarray):
            raise DeviceError("a CUDA tensor reached a collective of the 'mpi' process group; initialise the group "
                              "with init_process_group(backend='nccl') to reduce GPU tensors, or move it with .cpu()")
        self.comm.Allreduce(self.MPI.IN_PLACE if send is None else send, recv, op=self._mpi_ops[op])

    def _bcast(self, buf, src):
        if not isinstance(buf, np.ndarray):
            raise DeviceError("a CUDA tensor reached a broadcast of the 'mpi' process group; initialise the group "
                              "with init_process_group(backend='nccl'), or move it with .cpu()")
        self.comm.Bcast(buf, root=src)

    # ------------------------------------------------------------------ checks across ranks
    def _agree(self, what, detail, x):
        """Every rank must enter the same collective with the same shape and dtype. Checked with one
        tiny allreduce (max of the signature and of its negation); only when they differ are the
        descriptions gathered, and then every rank raises the same error instead of hanging or
        reducing garbage."""
        if not self.check or self.size == 1:
            return
        desc = (what, str(detail), tuple(int(d) for d in x.shape), str(x.dtype))
        sig = zlib.crc32(repr(desc).encode())
        both = np.array([sig, -sig], dtype=np.int64)
        self.comm.Allreduce(self.MPI.IN_PLACE, both, op=self.MPI.MAX)
        if both[0] == -both[1]:
            return
        descs = self.comm.allgather(desc)
        shown = "; ".join(f"rank {r}: {d[0]}({d[1]}) of {d[3]} {d[2]}" for r, d in enumerate(descs))
        if len({d[:2] for d in descs}) > 1:
            cls = GradcError  # different collectives, or different reductions
        else:
            cls = ShapeError if len({d[2] for d in descs}) > 1 else DTypeError
        raise cls(f"{what}: the ranks disagree ({shown}). Every rank must run the same collectives in the same "
                  "order on tensors of the same shape and dtype (with DistributedDataParallel: every rank must "
                  "give gradients to the same parameters)")


class NCCLGroup(ProcessGroup):
    """GPU tensors are reduced by NCCL on this rank's GPU; the rest is the MPI group's."""
    backend = "nccl"

    def __init__(self, comm, MPI, cupy):
        super().__init__(comm, MPI)
        local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        local_rank = local.Get_rank()
        local.Free()
        n = cupy.cuda.runtime.getDeviceCount()
        if local_rank >= n:
            raise DeviceError(f"rank {self.rank} is rank {local_rank} on its node, which has {n} GPU(s): NCCL "
                              f"needs one GPU per rank; start at most {n} ranks per node")
        cupy.cuda.Device(local_rank).use()
        self.device = _device(f"cuda:{local_rank}")
        self.cupy, nccl = cupy, cupy.cuda.nccl
        self.communicator = nccl.NcclCommunicator(self.size, exchange_unique_id(comm, nccl.get_unique_id), self.rank)
        self._nccl_ops = {"sum": nccl.NCCL_SUM, "avg": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN}
        self._nccl_types = {np.dtype(np.float16): nccl.NCCL_FLOAT16, np.dtype(np.float32): nccl.NCCL_FLOAT32,
                            np.dtype(np.float64): nccl.NCCL_FLOAT64, np.dtype(np.int64): nccl.NCCL_INT64}

    def _xp(self, x):
        return np if isinstance(x, np.ndarray) else self.cupy

    def _stream(self):
        return self.cupy.cuda.get_current_stream().ptr

    def _reduce(self, send, recv, op):
        if isinstance(recv, np.ndarray):
            return super()._reduce(send, recv, op)
        src = recv if send is None else send  # NCCL is in place when both pointers are the same
        self.communicator.allReduce(src.data.ptr, recv.data.ptr, recv.size, self._nccl_types[recv.dtype],
                                    self._nccl_ops[op], self._stream())

    def _bcast(self, buf, src):
        if isinstance(buf, np.ndarray):
            return super()._bcast(buf, src)
        self.communicator.bcast(buf.data.ptr, buf.size, self._nccl_types[buf.dtype], src, self._stream())

    def barrier(self):
        self.cupy.cuda.get_current_stream().synchronize()
        super().barrier()

    def destroy(self):
        self.communicator.destroy()
        super().destroy()


def exchange_unique_id(comm, make_id):
    """Rank 0 makes the NCCL unique id, every rank receives it over MPI."""
    uid = make_id() if comm.Get_rank() == 0 else None
    return comm.bcast(uid, root=0)


# ---------------------------------------------------------------------------------- setting up
def _import_mpi():
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as e:  # RuntimeError: mpi4py found no MPI library to load
        raise GradcError(f"the distributed backends need mpi4py and an MPI library ({type(e).__name__}: {e}); "
                         "install them with pip install 'gradc[dist]' and start the job with "
                         "mpiexec -n N python script.py") from None
    return MPI


def _import_cupy():
    try:
        import cupy
        from cupy.cuda import nccl
    except ImportError as e:
        raise GradcError(f"backend='nccl' needs CuPy built with NCCL ({e}); install it with pip install "
                         "'gradc[cuda]', or use backend='mpi' for CPU tensors") from None
    if not getattr(nccl, "available", True):
        raise GradcError("backend='nccl': this CuPy was built without NCCL; install a CuPy wheel that has it "
                         "(pip install 'gradc[cuda]'), or use backend='mpi'")
    return cupy


EXIT_TIMEOUT_VAR = "GRADC_DIST_EXIT_TIMEOUT"


def _exit_timeout():
    text = os.environ.get(EXIT_TIMEOUT_VAR, "5")
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise GradcError(f"{EXIT_TIMEOUT_VAR}={text!r} is not a number of seconds; it is how long a rank that "
                         "exits with the process group still initialised waits for the others (default 5)")
    return value


def _abort(group, why):
    sys.stderr.write(f"gradc.distributed: rank {group.rank} of {group.size} {why}; aborting the job\n")
    sys.stderr.flush()
    sys.stdout.flush()
    time.sleep(0.2)   # let the launcher forward the message: Abort tears its I/O down with the job
    group.MPI.COMM_WORLD.Abort(1)


def _install_exit_guards(group):
    """A rank that stops while the process group is initialised ends the whole job, non-zero, instead
    of leaving the other ranks waiting forever in a collective. An uncaught exception aborts at once.
    Any other exit (sys.exit(), the end of the script) before destroy_process_group() waits up to
    GRADC_DIST_EXIT_TIMEOUT seconds (default 5) for every rank to exit too: ranks that all end
    together end normally; if one does not come, the job is aborted."""
    try:
        timeout = _exit_timeout()   # a bad value fails on every rank, before anything is installed
        exit_comm = group.comm.Dup()   # its own communicator: the exit barrier never meets a collective
    except BaseException:
        _group[0] = None
        group.destroy()
        raise
    previous = sys.excepthook

    def abort_job(kind, value, tb):
        previous(kind, value, tb)
        if _group[0] is group:
            _abort(group, f"stopped on an uncaught {kind.__name__}")

    def at_exit():
        if _group[0] is not group:
            return
        request, deadline = exit_comm.Ibarrier(), time.monotonic() + timeout
        while not request.Test():
            if time.monotonic() >= deadline:
                _abort(group, f"exited while the process group was initialised, and the other ranks did not "
                              f"exit within {timeout:g} s ({EXIT_TIMEOUT_VAR}), so they may be waiting for it in "
                              "a collective. Call gradc.distributed.destroy_process_group() on every rank before "
                              "a rank exits")
            time.sleep(0.002)
        _group[0] = None   # every rank is exiting: end the group together
        _teardown(group)

    group._previous_excepthook, group._excepthook = previous, abort_job
    group._exit_comm, group._at_exit = exit_comm, at_exit
    sys.excepthook = abort_job
    atexit.register(at_exit)


def _check_launch(MPI, init_method, world_size, rank):
    """torch's init_method, world_size and rank (and the RANK / WORLD_SIZE variables that env://
    reads, where no argument overrides them) must agree with MPI, which decides the ranks. Every rank
    learns whether any disagrees, so all of them raise instead of some waiting in a collective."""
    if init_method not in (None, "env://"):
        raise GradcError(f"init_process_group(init_method={init_method!r}) is not supported: gradc's ranks find "
                         "each other through MPI; use init_method='env://' (or leave it out) and start the job "
                         "with mpiexec -n N python script.py")
    world = MPI.COMM_WORLD
    real = {"world_size": world.Get_size(), "rank": world.Get_rank()}
    problems = []
    for name, var, given in (("world_size", "WORLD_SIZE", world_size), ("rank", "RANK", rank)):
        if given is not None and given != -1:
            if given != real[name]:
                problems.append(f"{name}={given} was passed")
        elif os.environ.get(var) not in (None, ""):
            if os.environ[var].strip() != str(real[name]):
                problems.append(f"{var}={os.environ[var]!r} is set in the environment")
    bad = world.allreduce(1 if problems else 0, op=MPI.MAX) if real["world_size"] > 1 else bool(problems)
    if bad:
        why = "; ".join(problems) or "another rank was given a different rank or world size"
        raise GradcError(f"init_process_group: this process is rank {real['rank']} of an MPI job of "
                         f"{real['world_size']}, but {why}. "
                         "gradc takes ranks and the world size from MPI: start N ranks with mpiexec -n N python "
                         "script.py (a torchrun-style launch of independent processes does not form a group), and "
                         "pass no rank/world_size or ones that match")


def init_process_group(backend="mpi", init_method=None, world_size=-1, rank=-1):
    """Join the job's process group: rank and world size come from MPI (start the job with
    `mpiexec -n N python script.py`; a plain `python script.py` is a job of one rank). backend is
    "mpi" (CPU tensors; "gloo", torch's CPU backend, and None mean it too) or "nccl" (GPU tensors).
    init_method="env://", world_size and rank are accepted as in torch and checked against MPI."""
    backend = "mpi" if backend in (None, "gloo") else backend
    if backend not in BACKENDS:
        raise GradcError(f"unknown backend {backend!r}; choose one of {', '.join(map(repr, BACKENDS + ('gloo',)))}")
    if _group[0] is not None:
        raise GradcError(f"the process group is already initialised (backend {_group[0].backend!r}); call "
                         "destroy_process_group() before initialising it again")
    cupy = _import_cupy() if backend == "nccl" else None
    MPI = _import_mpi()
    _check_launch(MPI, init_method, world_size, rank)
    comm = MPI.COMM_WORLD.Dup()
    try:
        group = NCCLGroup(comm, MPI, cupy) if backend == "nccl" else ProcessGroup(comm, MPI)
    except BaseException:
        comm.Free()
        raise
    _group[0] = group
    _install_exit_guards(group)


def destroy_process_group():
    group = current_group()
    _group[0] = None
    atexit.unregister(group._at_exit)
    _teardown(group)


def _teardown(group):
    if sys.excepthook is group._excepthook:
        sys.excepthook = group._previous_excepthook
    group._exit_comm.Free()
    group.destroy()


def is_available():
    """Whether mpi4py is installed (the MPI library itself loads only when a group is initialised)."""
    return importlib.util.find_spec("mpi4py") is not None


def is_initialized():
    return _group[0] is not None


def current_group():
    """The active process group; a clear error when there is none."""
    group = _group[0]
    if group is None:
        raise GradcError("the process group is not initialised: call gradc.distributed.init_process_group("
                         "backend='mpi') first, in a job started with mpiexec -n N python script.py")
    return group


def get_rank():
    return current_group().rank


def get_world_size():
    return current_group().size


def get_backend():
    return current_group().backend


# ---------------------------------------------------------------------------------- collectives
def _check_tensor(t, what):
    if not isinstance(t, Tensor):
        raise TypeError(f"{what} expects a gradc Tensor, got {type(t).__name__}")


def all_reduce(tensor, op=ReduceOp.SUM):
    """Reduce `tensor` over all ranks, in place: afterwards every rank holds the sum (or average,
    maximum, minimum) of all ranks' values. Inside gradc.compile it is a node of the graph."""
    _check_tensor(tensor, "all_reduce")
    group = current_group()
    # a bad op or dtype fails here, on every rank, before any exchange
    OPS["all_reduce"].infer([tensor.shape], [tensor.dtype], {"reduction": collective.reduction_code(op)})
    if dispatch.tracer() is not None:
        with no_grad():
            tensor.copy_(collective.all_reduce(tensor, op))
        return
    group.all_reduce_inplace(tensor._data, op)
    tensor._version[0] += 1


def broadcast(tensor, src=0):
    """Every rank's `tensor` takes rank `src`'s value, in place."""
    _check_tensor(tensor, "broadcast")
    group = current_group()
    if not isinstance(src, int) or not 0 <= src < group.size:
        raise GradcError(f"broadcast: src={src!r} is not a rank of this job (0..{group.size - 1})")
    if dispatch.tracer() is not None:
        raise TraceError("broadcast inside gradc.compile is not supported (all_reduce is the collective a "
                         "compiled graph can hold); broadcast before calling the compiled function")
    group.broadcast_inplace(tensor._data, src)
    tensor._version[0] += 1


def barrier():
    """Wait until every rank has reached this call."""
    group = current_group()
    if dispatch.tracer() is not None:
        raise TraceError("barrier inside gradc.compile is not supported; call it outside the compiled function")
    group.barrier()
