"""nn.parallel.DistributedDataParallel: one process per rank, each on its own slice of the data.

At wrap time rank 0's parameters and buffers are broadcast, so every rank starts from the same
model. After each backward that reached the module's parameters (a post-backward hook of
gradc.autograd) the gradients are averaged across ranks in buckets: each bucket is the flattened
gradients of several parameters (`cat`), averaged by one `all_reduce`, and split back into `.grad`.
Written with tensor ops only, this runs eagerly after `loss.backward()`, and inside a compiled
training step it becomes graph nodes (collectives the generated program runs)."""
import contextlib

from ... import distributed as dist
from ...autograd import no_grad, register_post_backward_hook
from ...errors import GradcError
from ...ops.collective import all_reduce
from ...functions import cat
from ..module import Module
from .data_parallel import module_device, parse_device


def bucket_layout(params, cap_bytes):
    """Group parameter indices into buckets of at most `cap_bytes` of gradient each, in reverse
    order (the order backward produces gradients, as PyTorch does), one dtype and device per
    bucket. A parameter larger than the cap gets a bucket of its own."""
    buckets, open_buckets = [], {}
    for i in reversed(range(len(params))):
        p = params[i]
        key = (p.dtype.name, str(p.device))
        nbytes = p.numel() * p.dtype.itemsize
        b = open_buckets.get(key)
        if b is None or b["bytes"] + nbytes > cap_bytes:
            b = open_buckets[key] = {"indices": [], "bytes": 0}
            buckets.append(b["indices"])
        b["indices"].append(i)
        b["bytes"] += nbytes
    return buckets


class DistributedDataParallel(Module):
    """Data parallelism across the ranks of gradc.distributed's process group.

    device_ids: [the GPU of this rank] with backend='nccl' (default: the one the group chose);
    None on the CPU. bucket_cap_mb: the size of one gradient bucket, in MiB."""

    def __init__(self, module, device_ids=None, bucket_cap_mb=25):
        super().__init__()
        if not isinstance(module, Module):
            raise GradcError(f"DistributedDataParallel wraps an nn.Module, got {type(module).__name__}")
        group = dist.current_group()
        if bucket_cap_mb <= 0:
            raise GradcError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        if device_ids is not None:
            if len(device_ids) != 1:
                raise GradcError(f"DistributedDataParallel drives one device per process, got device_ids={device_ids}; "
                                 "start one rank per GPU instead")
            module.to(parse_device(device_ids[0]))
        elif group.device is not None and module_device(module) != group.device:
            module.to(group.device)
        self.module = module
        self.bucket_cap_mb = bucket_cap_mb
        with no_grad():
            for _, t in list(module.named_parameters()) + list(module.named_buffers()):
                dist.broadcast(t, src=0)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._names = [n for n, _ in named]
        self._params = [p for _, p in named]
        self._buckets = bucket_layout(self._params, int(bucket_cap_mb * 2 ** 20))
        self._sync = True
        self._hook = register_post_backward_hook(self._params, self._average_gradients)

    @property
    def buckets(self):
        """Parameter names per gradient bucket, in the order they are reduced."""
        return [[self._names[i] for i in b] for b in self._buckets]

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside the block keep local gradients (to accumulate over several
        micro-batches); the first backward after it averages everything accumulated."""
        prev, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = prev

    def _average_gradients(self):
        if not self._sync:
            return
        with no_grad():
            for bucket in self._buckets:
                params = [self._params[i] for i in bucket if self._params[i].grad is not None]
                if not params:
                    continue
                flat = cat([p.grad.reshape(-1) for p in params])
                flat = all_reduce(flat, "avg")
                for p, g in zip(params, flat.split([p.numel() for p in params])):
                    p.grad = g.reshape(p.shape)

    def extra_repr(self):
        return f"bucket_cap_mb={self.bucket_cap_mb}, buckets={len(self._buckets)}"
