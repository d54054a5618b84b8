"""CUDA graphs for compiled programs: a program's shapes are fixed, so once it has run (its
kernels compiled, cuBLAS and CuPy's pool warmed up) its steady-state call is captured into a CUDA
graph and later calls with the same device arrays replay it: one launch per call instead of one
per kernel and host op.

- Calls 1 .. WARMUP run the generated host function as it is. The next call is captured on a
  stream of its own (relaxed mode, with a memory pool of its own that the graph keeps, so no
  other allocation can reuse memory the graph writes) and then launched once.
- A replay needs the same arguments at the same addresses (a training step's parameters and
  state, a fixed input buffer); arguments at other addresses run uncaptured (`misses`), and a
  call whose arguments keep changing never pays for a capture again after MAX_MISSES.
- Results are returned in fresh arrays (the graph's own are overwritten by the next replay),
  except results that are an argument itself (state updated in place).
- A program that cannot be captured (a host op synchronises or reads a device value) runs
  uncaptured from then on; the reason is kept in `disabled`.

- A program with index checks (gather indices, class labels) never reads the device during the
  call: its kernels record a failed check, and the record is read after the call (`checked`),
  outside the capture, raising the error eager mode raises.

Opt out with GRADC_CUDA_GRAPHS=0 (every call then runs the host function directly)."""
import contextlib
import contextvars
import os

WARMUP = 1
MAX_MISSES = 3


_preferred = contextvars.ContextVar("gradc_cuda_graphs", default=None)


def preference():
    """What the compiled function being called chose (its mode): True, False, or None for no choice."""
    return _preferred.get()


def enabled():
    """Whether a CUDA program loaded now runs through captured graphs: as the compiled function's
    mode chose (`preferred`), else as GRADC_CUDA_GRAPHS says (on by default)."""
    chosen = _preferred.get()
    if chosen is not None:
        return chosen
    return os.environ.get("GRADC_CUDA_GRAPHS", "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def preferred(graphs):
    token = _preferred.set(graphs)
    try:
        yield
    finally:
        _preferred.reset(token)


def _key(args):
    return tuple((a.data.ptr, a.shape, a.strides, str(a.dtype)) if hasattr(a, "data") and hasattr(a.data, "ptr")
                 else (type(a).__name__, repr(a)) for a in args)


def checked(run):
    """`run`, raising after each call what a failed index check of the call found (the generated
    host function's `errors`, which reads the check record); `run` itself when it has no checks."""
    errors = getattr(run, "errors", None)
    if errors is None:
        return run

    def call(*args):
        outs = run(*args)
        errors()
        return outs
    call.errors = errors
    return call


class GraphRunner:
    """Calls `run(*args)` (a generated CUDA host function), through a captured graph once warm."""

    def __init__(self, run, cp):
        self.run, self.cp = run, cp
        self.calls = self.replays = self.misses = 0
        self.graph = self.key = self.outs = self.stream = self.pool = None
        self.disabled = None

    def __call__(self, *args):
        outs = self._call(args)
        errors = getattr(self.run, "errors", None)
        if errors is not None:   # outside any capture: a failed index check of this call raises here
            errors()
        return outs

    def _call(self, args):
        self.calls += 1
        if self.disabled is not None or self.calls <= WARMUP:
            return self.run(*args)
        key = _key(args)
        if self.graph is not None:
            if key == self.key:
                return self._replay(args)
            self.misses += 1
            if self.misses >= MAX_MISSES:
                self.disabled = "its arguments change address from call to call"
            return self.run(*args)
        return self._capture(key, args)

    def _capture(self, key, args):
        cp = self.cp
        stream, pool = cp.cuda.Stream(non_blocking=True), cp.cuda.MemoryPool()
        mode = getattr(cp.cuda.runtime, "streamCaptureModeRelaxed", None)
        try:
            with cp.cuda.using_allocator(pool.malloc), stream:
                stream.begin_capture(mode=mode) if mode is not None else stream.begin_capture()
                try:
                    outs = self.run(*args)
                finally:
                    graph = stream.end_capture()
        except Exception as e:   # not capturable: this call and every later one run as they are
            self.disabled = f"capture failed: {type(e).__name__}: {e}"
            return self.run(*args)
        self.graph, self.key, self.outs, self.stream, self.pool = graph, key, outs, stream, pool
        return self._replay(args)

    def _replay(self, args):
        """Launch the graph after the work already queued on the caller's stream; the caller's
        stream then waits for it (and for the copies of the results) before anything else."""
        cp = self.cp
        current = cp.cuda.get_current_stream()
        self.stream.wait_event(current.record())
        self.graph.launch(self.stream)
        self.replays += 1
        by_ptr = {getattr(getattr(a, "data", None), "ptr", None): a for a in args}
        out = []
        with self.stream:
            for o in self.outs:
                a = by_ptr.get(o.data.ptr)
                out.append(a if a is not None and a.shape == o.shape and a.dtype == o.dtype else o.copy())
        current.wait_event(self.stream.record())
        return tuple(out)
