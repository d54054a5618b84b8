"""DataLoader: batches from a dataset, in the sampler's order, optionally fetched by a pool of
worker processes (torch.utils.data.DataLoader's arguments, defaults and checks)."""
import itertools
import multiprocessing
import os
import pickle
import queue
import sys
import time
import warnings

from ...errors import ArgumentError, LoaderError
from ...generator import Generator, default_generator
from . import worker as W
from .collate import default_collate, default_convert
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler

_POLL_S = 0.5  # how often a waiting main process checks that its workers are alive


def _positive_int(name, v, allow_none=False):
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ArgumentError(f"DataLoader: {name} must be a positive int{' or None' if allow_none else ''}, got {v!r}")


class DataLoader:
    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 in_order=True):
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ArgumentError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r}")
        if timeout < 0:
            raise ArgumentError(f"DataLoader: timeout must be >= 0 seconds, got {timeout}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ArgumentError("DataLoader: prefetch_factor only applies with workers; set num_workers > 0 or leave "
                                "prefetch_factor unset")
        _positive_int("prefetch_factor", prefetch_factor, allow_none=True)
        if persistent_workers and num_workers == 0:
            raise ArgumentError("DataLoader: persistent_workers=True needs num_workers > 0")
        if generator is not None and not isinstance(generator, Generator):
            raise ArgumentError(f"DataLoader: generator must be a gradc.Generator, got {type(generator).__name__}")
        self._is_iterable = isinstance(dataset, IterableDataset)
        if self._is_iterable:
            if shuffle not in (None, False):
                raise ArgumentError("DataLoader: an IterableDataset cannot be shuffled by the loader (it has no indices); "
                                    "shuffle inside the dataset's __iter__, or use a map-style Dataset")
            if sampler is not None or batch_sampler is not None:
                raise ArgumentError("DataLoader: an IterableDataset takes no sampler or batch_sampler (it has no "
                                    "indices); its __iter__ decides the order")
        else:
            shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ArgumentError("DataLoader: sampler and shuffle=True exclude each other; pass one of them")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ArgumentError("DataLoader: batch_sampler decides the batches, so it excludes batch_size, shuffle, "
                                    "sampler and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None:
            if drop_last:
                raise ArgumentError("DataLoader: batch_size=None (no batching) excludes drop_last=True")
        else:
            _positive_int("batch_size", batch_size)
        if sampler is None and not self._is_iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not self._is_iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        if pin_memory:
            warnings.warn("DataLoader(pin_memory=True) has no effect: gradc has no page-locked host memory; batches "
                          "move to the GPU with .to('cuda') either way", UserWarning, stacklevel=2)
        if isinstance(multiprocessing_context, str):
            if multiprocessing_context not in multiprocessing.get_all_start_methods():
                raise ArgumentError(f"DataLoader: unknown multiprocessing_context {multiprocessing_context!r}; use one "
                                    f"of {multiprocessing.get_all_start_methods()}")
            multiprocessing_context = multiprocessing.get_context(multiprocessing_context)
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.sampler, self.batch_sampler, self.num_workers = sampler, batch_sampler, num_workers
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if self._auto_collation else default_convert)
        self.pin_memory, self.timeout, self.worker_init_fn = bool(pin_memory), timeout, worker_init_fn
        self.multiprocessing_context, self.generator = multiprocessing_context, generator
        self.prefetch_factor = (2 if prefetch_factor is None else prefetch_factor) if num_workers else None
        self.persistent_workers, self.in_order = bool(persistent_workers), bool(in_order)
        self._iterator = None

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None or self._is_iterable and self.batch_size is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def _base_seed(self):
        """One draw per pass from the loader's generator (the global one by default), as torch."""
        return int((self.generator or default_generator).numpy_generator.integers(0, 1 << 62))

    def __iter__(self):
        if self.num_workers == 0:
            return _single_process(self)
        if self.persistent_workers:
            if self._iterator is None or self._iterator.closed:
                self._iterator = _WorkerPool(self)
            else:
                self._iterator.reset()
            return self._iterator
        return _WorkerPool(self)

    def __len__(self):
        if self._is_iterable:
            n = len(self.dataset)  # a TypeError, as in torch, when the stream has no length
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
            return n
        return len(self._index_sampler)

    def __del__(self):
        it = self.__dict__.get("_iterator")
        if it is not None:
            it.shutdown()


def _single_process(loader):
    loader._base_seed()
    ds, collate = loader.dataset, loader.collate_fn
    if loader._is_iterable:
        stream = iter(ds)
        while True:
            batch = W.next_batch(stream, loader._auto_collation, collate, loader.batch_size, loader.drop_last)
            if batch is W.DONE:
                return
            yield batch
    for indices in loader._index_sampler:
        yield W.fetch(ds, indices, loader._auto_collation, collate)


class _WorkerPool:
    """num_workers processes fed index messages; results come back on one queue and are yielded in
    task order (in_order=True) or as they arrive. Up to prefetch_factor tasks per worker are in flight."""

    def __init__(self, loader):
        self.loader, self.closed, self.epoch = loader, False, -1
        ctx = loader.multiprocessing_context or multiprocessing.get_context()
        self.result_queue = ctx.Queue()
        self.index_queues, self.workers = [], []
        seed, n = loader._base_seed(), loader.num_workers
        try:
            for i in range(n):
                q = ctx.Queue()
                q.cancel_join_thread()
                w = ctx.Process(target=W.worker_loop, daemon=True, name=f"gradc-DataLoader-worker-{i}",
                                args=(loader.dataset, loader._is_iterable, q, self.result_queue, loader.collate_fn,
                                      loader._auto_collation, loader.batch_size, loader.drop_last, seed, i, n,
                                      loader.worker_init_fn, os.getpid()))
                w.start()
                self.index_queues.append(q)
                self.workers.append(w)
        except BaseException:
            self.shutdown()
            raise
        self.reset()

    def reset(self):
        self.epoch += 1
        n = self.loader.num_workers
        self.tasks = None if self.loader._is_iterable else iter(self.loader._index_sampler)
        self.active = [True] * n
        self.turn = itertools.cycle(range(n))
        self.sent = self.next_idx = 0
        self.outstanding, self.ready = {}, {}
        for _ in range(self.loader.prefetch_factor * n):
            self._send()

    def _send(self):
        if self.tasks is not None:
            try:
                indices = next(self.tasks)
            except StopIteration:
                return
        else:
            indices = None
        for _ in range(len(self.workers)):
            w = next(self.turn)
            if self.active[w]:
                break
        else:
            return  # every worker's stream is exhausted
        self.index_queues[w].put((self.epoch, self.sent, indices))
        self.outstanding[self.sent] = w
        self.sent += 1

    def __iter__(self):
        return self

    def __next__(self):
        if self.closed:
            raise StopIteration
        while True:
            if self.loader.in_order:
                while self.next_idx < self.sent and self.next_idx not in self.ready \
                        and self.next_idx not in self.outstanding:
                    self.next_idx += 1  # a task that ended a worker's stream: nothing to yield for it
                if self.next_idx in self.ready:
                    payload = self.ready.pop(self.next_idx)
                    self.next_idx += 1
                    return self._deliver(payload)
            elif self.ready:
                return self._deliver(self.ready.pop(next(iter(self.ready))))
            if not self.outstanding:
                if not self.loader.persistent_workers:
                    self.shutdown()
                raise StopIteration
            epoch, idx, data = self._get()
            if epoch != self.epoch or idx not in self.outstanding:
                continue  # from an epoch that was abandoned midway
            w = self.outstanding.pop(idx)
            payload = pickle.loads(data)
            if isinstance(payload, str) and payload == W.DONE:
                self.active[w] = False
                self._send()
                continue
            self.ready[idx] = payload

    def _deliver(self, payload):
        self._send()
        if isinstance(payload, W.Failure):
            payload.reraise()
        return payload

    def _get(self):
        timeout = self.loader.timeout
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            wait = _POLL_S if deadline is None else max(0.0, min(_POLL_S, deadline - time.monotonic()))
            try:
                return self.result_queue.get(timeout=wait)
            except queue.Empty:
                pass
            dead = [(i, w) for i, w in enumerate(self.workers) if not w.is_alive()]
            if dead:
                i, w = dead[0]
                self.shutdown()
                raise LoaderError(f"DataLoader worker {i} (pid {w.pid}) exited unexpectedly with exit code "
                                  f"{w.exitcode}; it may have run out of memory or crashed in native code. Run with "
                                  "num_workers=0 to see the error in the main process")
            if deadline is not None and time.monotonic() >= deadline:
                raise LoaderError(f"DataLoader timed out: no batch came from the workers within timeout={timeout} s")

    def shutdown(self):
        if self.closed:
            return
        self.closed = True
        # At interpreter exit (a pool that a traceback cycle kept alive) a queue cannot start its
        # feeder thread any more: put() would wait forever, so the workers are stopped directly.
        finalizing = sys.is_finalizing()
        for q in () if finalizing else self.index_queues:
            try:
                q.put(None)
            except (OSError, ValueError):
                pass
        for w in self.workers:
            if not finalizing:
                w.join(timeout=2.0)
            if w.is_alive():
                w.terminate()
                w.join(timeout=1.0)
        for q in self.index_queues + [self.result_queue]:
            q.cancel_join_thread()
            q.close()

    def __del__(self):
        self.shutdown()
