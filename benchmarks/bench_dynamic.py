"""What a new batch size costs: symbolic sizes (dynamic=True) against specialised traces (dynamic=False).

For the W1 training step (MLP, SGD with momentum) and the W3 training step (transformer block,
Adam), at batch sizes that a data loader's last batch or a varying sequence count would give, one
run measures, side by side:

  first call       trace + passes + codegen (+ the C compile on backend c) at the first size
  new size         the first call at each later size (median over the new sizes): with
                   dynamic=True the buffers made for it (one lowering serves every size), with
                   dynamic=False a whole trace, lowering and build
  steady call      a call at a size seen before (median over sizes of the median of --calls calls),
                   with eager beside it
  traces           how many traces the sizes took
  lowerings        how many times the passes and code generation ran for them

    python benchmarks/bench_dynamic.py [--backend numpy|c] [--calls N]

Each configuration runs in a fresh cache folder, so the disk cache does not carry one's work into
the other; a discarded run first takes the once-per-process costs."""
import argparse
import logging
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import gradc  # noqa: E402
from gradc import nn, optim  # noqa: E402
import gradc.nn.functional as F  # noqa: E402
from gradc.workloads import Block  # noqa: E402


def _w1(batch):
    rng = np.random.default_rng(batch)
    return (gradc.from_numpy(rng.standard_normal((batch, 784), dtype=np.float32)),
            gradc.from_numpy(rng.integers(0, 10, batch)))


def _w3(batch):
    return (gradc.from_numpy(np.random.default_rng(batch).standard_normal((batch, 128, 256), dtype=np.float32)),)


def _steps(key):
    gradc.manual_seed(0)
    if key == "W1":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        return step, _w1, (128, 96, 64, 37)
    model = Block(256, 4, 1024, 128)
    opt = optim.Adam(model.parameters(), lr=1e-3)

    def step(x):
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    return step, _w3, (8, 6, 4, 3)


def _timed(fn, args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


class _Lowerings(logging.Handler):
    """Counts gradc's lowerings of a dynamic trace (its log says each)."""
    def __init__(self):
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record):
        self.count += "lowering the dynamic trace for" in record.getMessage()


def measure(key, dynamic, backend, calls):
    step, data, sizes = _steps(key)
    compiled = step if dynamic == "eager" else gradc.compile(step, dynamic=dynamic, backend=backend)
    inputs = {b: data(b) for b in sizes}
    lowerings = _Lowerings()
    log = logging.getLogger("gradc")
    log.addHandler(lowerings)
    log.setLevel(logging.INFO)
    first = _timed(compiled, inputs[sizes[0]])
    _timed(compiled, inputs[sizes[0]])   # (SGD's momentum buffers: the first step makes them)
    new = [_timed(compiled, inputs[b]) for b in sizes[1:]]
    steady = [statistics.median(_timed(compiled, inputs[b]) for _ in range(calls)) for b in sizes]
    traces = getattr(compiled, "trace_count", 0)
    log.removeHandler(lowerings)
    lowered = lowerings.count if dynamic is True else traces   # (a static trace is lowered once, unlogged)
    return first, statistics.median(new), statistics.median(steady), traces, lowered


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=("numpy", "c"), default="c")
    ap.add_argument("--calls", type=int, default=5)
    ns = ap.parse_args(argv)
    print(f"backend {ns.backend}; times in ms (steady: median over sizes of the median of {ns.calls} calls)")
    with tempfile.TemporaryDirectory() as cache:   # once-per-process costs (block tuning) land here, not in a row
        os.environ["GRADC_CACHE_DIR"] = cache
        measure("W1", False, ns.backend, 1)
    print(f"{'workload':9s}{'mode':15s}{'first call':>12s}{'new size':>10s}{'steady call':>13s}{'traces':>8s}"
          f"{'lowerings':>11s}")
    for key in ("W1", "W3"):
        for mode in (True, False, "eager"):
            with tempfile.TemporaryDirectory() as cache:
                os.environ["GRADC_CACHE_DIR"] = cache
                first, new, steady, traces, lowered = measure(key, mode, ns.backend, ns.calls)
            label = {True: "dynamic=True", False: "dynamic=False", "eager": "eager"}[mode]
            print(f"{key:9s}{label:15s}{first * 1e3:12.1f}{new * 1e3:10.1f}{steady * 1e3:13.2f}{traces:8d}"
                  f"{lowered:11d}")


if __name__ == "__main__":
    main()
