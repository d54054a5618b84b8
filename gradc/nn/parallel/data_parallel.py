"""nn.DataParallel: one process, one replica of the module per device, each on a slice of the batch.

Each call scatters the batch along `dim`, runs the replicas in parallel (a thread each; NumPy and
CuPy release the GIL in their kernels), and gathers the outputs on `output_device` with `cat`, so
one backward walks every replica and sums their gradients into the original parameters. A replica
on the module's own device is the module itself (its Parameters are shared, nothing is copied);
on another device it is a copy whose parameters are differentiable `.to(device)` of the originals."""
import collections
import concurrent.futures
import contextlib
import warnings

from ...amp.autocast_mode import autocast, get_autocast_dtype, is_autocast_enabled
from ...autograd import is_grad_enabled, set_grad_enabled
from ...device import CPU, Device, device as _device, require as _require_device
from ...errors import DeviceError, GradcError, ShapeError
from ...ops.rules import normalize_axis
from ...pytree import flatten, unflatten
from ...functions import cat, stack
from ... import dispatch
from ..module import Module


def parse_device(d):
    if isinstance(d, int) and not isinstance(d, bool):
        d = f"cuda:{d}"
    if not isinstance(d, (str, Device)):
        raise DeviceError(f"DataParallel: {d!r} is not a device; use 'cpu', 'cuda:N' or a GPU index N")
    return _require_device(_device(d))


def module_device(module):
    return next((p.device for p in module.parameters()), CPU)


def _device_context(dev):
    """Make dev the current GPU of the calling thread (CuPy launches kernels on the current one)."""
    return contextlib.nullcontext() if dev.type == "cpu" else dev.xp.cuda.Device(dev.index)


def replicate(module, dev):
    """The module's structure with differentiable copies of its parameters (and copies of its
    buffers) on `dev`; gradients reaching the copies flow back to the original parameters."""
    copies, done = {}, {}

    def to_dev(t):
        if id(t) not in copies:  # tied weights stay tied
            copies[id(t)] = t.to(dev)
        return copies[id(t)]

    def copy(m):
        if id(m) in done:
            return done[id(m)]
        r = object.__new__(type(m))
        r.__dict__.update(m.__dict__)
        r.__dict__["_parameters"] = collections.OrderedDict(
            (k, None if p is None else to_dev(p)) for k, p in m._parameters.items())
        r.__dict__["_buffers"] = collections.OrderedDict(
            (k, None if b is None else to_dev(b)) for k, b in m._buffers.items())
        done[id(m)] = r
        r.__dict__["_modules"] = collections.OrderedDict(
            (k, None if c is None else copy(c)) for k, c in m._modules.items())
        return r

    return copy(module)


class DataParallel(Module):
    """Run `module` on several devices at once, splitting each batch along `dim`.

    device_ids: devices for the replicas ("cpu", "cuda:N" or GPU indices); "cpu" may repeat, which
    runs that many replicas on a thread pool. Default: every GPU, or one CPU replica without GPUs.
    output_device: where outputs are gathered (default: the first of device_ids)."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        if not isinstance(module, Module):
            raise GradcError(f"DataParallel wraps an nn.Module, got {type(module).__name__}")
        from ...device import device_count
        if device_ids is None:
            device_ids = list(range(device_count())) or ["cpu"]
        devices = [parse_device(d) for d in device_ids]
        if not devices:
            raise GradcError("DataParallel: device_ids is empty; list at least one device")
        self.module = module
        self.device_ids = devices
        self.output_device = devices[0] if output_device is None else parse_device(output_device)
        self.dim = dim
        self._pool = None

    # ------------------------------------------------------------------ the steps of a call
    def scatter(self, inputs, kwargs):
        """[(args, kwargs)] per replica: every tensor split along dim into near-equal parts (the
        first replicas take one more row when the size does not divide), moved to the replica's
        device; other values are passed to every replica as they are."""
        n = len(self.device_ids)
        leaves, spec = flatten((inputs, kwargs))
        parts = [[] for _ in range(n)]
        for t in leaves:
            if t.ndim == 0:
                raise ShapeError("DataParallel: cannot split a 0-d tensor input across replicas; give inputs a "
                                 "batch dimension, or pass the value as a Python number")
            axis = normalize_axis("DataParallel", self.dim, t.ndim)
            size = t.shape[axis]
            if size < n:
                raise ShapeError(f"DataParallel: an input of shape {tuple(t.shape)} has {size} rows along dim {self.dim}, "
                                 f"fewer than the {n} replicas; use a batch of at least {n} or fewer device_ids")
            sizes = [size // n + (1 if i < size % n else 0) for i in range(n)]
            for i, (piece, dev) in enumerate(zip(t.split(sizes, axis), self.device_ids)):
                parts[i].append(piece.to(dev))
        return [unflatten(spec, p) for p in parts]

    def replicas(self):
        home = module_device(self.module)
        return [self.module if dev == home else replicate(self.module, dev) for dev in self.device_ids]

    def parallel_apply(self, replicas, chunks):
        calls = list(zip(replicas, chunks, self.device_ids))
        if len(calls) == 1 or dispatch.tracer() is not None:
            # one replica, or tracing (one graph, recorded from one thread): run them in turn
            outs = []
            for replica, (args, kwargs), dev in calls:
                with _device_context(dev):
                    outs.append(replica(*args, **kwargs))
            return outs
        # grad mode and autocast are per thread: the workers take the caller's
        grad_mode, amp_on, amp_dtype = is_grad_enabled(), is_autocast_enabled(), get_autocast_dtype()

        def run(replica, chunk, dev):
            with set_grad_enabled(grad_mode), autocast(dtype=amp_dtype, enabled=amp_on), _device_context(dev):
                return replica(*chunk[0], **chunk[1])

        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(len(calls), thread_name_prefix="gradc-dataparallel")
        futures = [self._pool.submit(run, *c) for c in calls]
        concurrent.futures.wait(futures)
        return [f.result() for f in futures]

    def gather(self, outputs):
        """The replicas' outputs joined along dim on output_device (same structure as one output)."""
        flats = [flatten(o) for o in outputs]
        spec = flats[0][1]
        if any(s != spec for _, s in flats[1:]) or any(len(f) != len(flats[0][0]) for f, _ in flats):
            raise GradcError("DataParallel: the replicas returned outputs of different structure; forward must "
                             "return the same nesting of tensors for every slice of the batch")
        joined = []
        for parts in zip(*(f for f, _ in flats)):
            parts = [p.to(self.output_device) for p in parts]
            if parts[0].ndim == 0:
                if len(parts) > 1:
                    warnings.warn("DataParallel: the replicas returned 0-d tensors; gathering them into a vector "
                                  "with one value per replica", stacklevel=3)
                joined.append(stack(parts) if len(parts) > 1 else parts[0])
            else:
                joined.append(cat(parts, normalize_axis("DataParallel", self.dim, parts[0].ndim)))
        return unflatten(spec, joined)

    def forward(self, *inputs, **kwargs):
        chunks = self.scatter(inputs, kwargs)
        return self.gather(self.parallel_apply(self.replicas(), chunks))

    def extra_repr(self):
        return f"device_ids={[str(d) for d in self.device_ids]}, output_device='{self.output_device}', dim={self.dim}"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_pool"] = None  # threads are not copied
        return state
