"""DataLoader worker processes. Each worker holds the dataset (inherited, or pickled to it under
the spawn start method), is seeded with base_seed + worker_id (gradc's generator and Python's
`random`; NumPy's global generator from both), and answers index messages (epoch, task id, indices) with pickled batches. gradc tensors
travel as their NumPy data and dtype."""
import itertools
import os
import queue
import random
import traceback
from multiprocessing.reduction import ForkingPickler

import numpy as np

from ... import random as gradc_random
from ...errors import ArgumentError, DeviceError, LoaderError
from ...functions import from_numpy
from ...tensor import Tensor

DONE = "gradc.utils.data: this worker's stream is exhausted"


class WorkerInfo:
    """What get_worker_info() returns inside a worker: id, num_workers, seed and dataset (the
    worker's own copy)."""
    __slots__ = ("id", "num_workers", "seed", "dataset")

    def __init__(self, id, num_workers, seed, dataset):
        self.id, self.num_workers, self.seed, self.dataset = id, num_workers, seed, dataset

    def __repr__(self):
        return f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed})"


_info = [None]


def get_worker_info():
    """The WorkerInfo of this DataLoader worker process, or None in the main process."""
    return _info[0]


def _rebuild_tensor(array, requires_grad):
    t = from_numpy(array)
    if requires_grad:
        t.requires_grad_()
    return t


def _reduce_tensor(t):
    if t.device.type != "cpu":
        raise DeviceError("a DataLoader worker produced a CUDA tensor; load samples on the CPU in the dataset and "
                          "move each batch with batch.to('cuda') in the training loop")
    if t.requires_grad and not t.is_leaf:
        raise ArgumentError("a tensor with autograd history cannot leave a DataLoader worker; .detach() it in the "
                            "dataset")
    return _rebuild_tensor, (t.detach().numpy(), bool(t.requires_grad))


ForkingPickler.register(Tensor, _reduce_tensor)


class Failure:
    """An exception raised in a worker, carried back to the main process with its traceback."""

    def __init__(self, worker_id, exc, where):
        self.worker_id, self.where = worker_id, where
        self.type_name, self.message = type(exc).__name__, str(exc)
        self.traceback = traceback.format_exc()
        try:
            ForkingPickler.dumps(exc)
            self.exc = exc
        except Exception:
            self.exc = None

    def reraise(self):
        note = f"raised in DataLoader worker {self.worker_id} ({self.where}); the worker's traceback:\n{self.traceback}"
        if self.exc is not None:
            self.exc.add_note(note)
            raise self.exc
        raise LoaderError(f"{self.type_name}: {self.message}\n{note}")


def fetch(dataset, indices, auto_collation, collate_fn):
    if not auto_collation:
        return collate_fn(dataset[indices])
    many = getattr(dataset, "__getitems__", None)
    samples = many(indices) if callable(many) else [dataset[i] for i in indices]
    return collate_fn(samples)


def next_batch(stream, auto_collation, collate_fn, batch_size, drop_last):
    """The next batch of an iterable dataset's stream, or DONE."""
    if not auto_collation:
        try:
            return collate_fn(next(stream))
        except StopIteration:
            return DONE
    items = list(itertools.islice(stream, batch_size))
    if not items or drop_last and len(items) < batch_size:
        return DONE
    return collate_fn(items)


def worker_loop(dataset, iterable, index_queue, result_queue, collate_fn, auto_collation, batch_size, drop_last,
                base_seed, worker_id, num_workers, init_fn, parent_pid):
    seed = base_seed + worker_id
    random.seed(seed)
    gradc_random.manual_seed(seed)
    # NumPy's global generator too, as torch seeds it (augmentation written with np.random draws
    # differently in every worker and every pass, not the same values everywhere)
    np.random.seed(np.random.SeedSequence([worker_id, base_seed]).generate_state(4))
    _info[0] = WorkerInfo(worker_id, num_workers, seed, dataset)
    init_failure = None
    if init_fn is not None:
        try:
            init_fn(worker_id)
        except Exception as e:
            init_failure = Failure(worker_id, e, "in worker_init_fn")
    stream, epoch = None, None
    while True:
        try:
            msg = index_queue.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:
                return  # the main process is gone: nobody will read our results
            continue
        except (EOFError, OSError):
            return
        if msg is None:
            return
        ep, idx, indices = msg
        if ep != epoch:  # a new epoch (persistent workers): restart the stream
            epoch, stream = ep, None
        try:
            if init_failure is not None:
                payload = init_failure
            elif iterable:
                if stream is None:
                    stream = iter(dataset)
                payload = next_batch(stream, auto_collation, collate_fn, batch_size, drop_last)
            else:
                payload = fetch(dataset, indices, auto_collation, collate_fn)
            data = ForkingPickler.dumps(payload)
        except Exception as e:
            data = ForkingPickler.dumps(Failure(worker_id, e, f"fetching task {idx}"))
        result_queue.put((ep, idx, bytes(data)))
