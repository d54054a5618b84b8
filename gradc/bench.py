"""`gradc bench`: eager against compiled (and PyTorch eager / torch.compile when importable), timed
side by side in alternating rounds so a slow patch of the machine hits every candidate alike.

Each candidate gets a fresh instance of the workload (same seed, same initial values), so the first
call of each computes the same thing: its outputs are compared with gradc eager's (the `max rel diff`
column). Peak memory is measured with tracemalloc on a separate call (NumPy reports its allocations
to tracemalloc; PyTorch does not, so its column stays empty)."""
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc

import numpy as np

PEERS = ("torch", "torch.compile")
# spread: max/min of a candidate's per-round medians (of its timed calls when there is one round);
# above this the machine's load moved the figures and they are unreliable
SPREAD_LIMIT = 1.3


class Candidate:
    def __init__(self, impl, fn, args, memory=True, after=None):
        self.impl, self.fn, self.args, self.memory, self.after = impl, fn, args, memory, after
        self.times, self.first_s, self.peak_bytes, self.first_out, self.error = [], None, None, None, None
        self.traces = self.overhead_us = None
        self.rounds = []   # the timed calls of each round

    def call(self):
        out = self.fn(*self.args)
        if self.after is not None:   # e.g. a learning-rate schedule's step between training steps
            self.after()
        return out


def gradc_candidates(fn_eager, args_eager, fn_compiled, args_compiled, backend="auto"):
    import gradc
    return [Candidate("gradc eager", fn_eager, args_eager, after=getattr(fn_eager, "after_call", None)),
            Candidate("gradc compiled", gradc.compile(fn_compiled, backend=backend), args_compiled,
                      after=getattr(fn_compiled, "after_call", None))]


def torch_candidates(torch, build, peers):
    out = []
    if torch is None:
        return out
    if "torch" in peers:
        fn, args = build()
        out.append(Candidate("pytorch eager", fn, args, memory=False, after=getattr(fn, "after_call", None)))
    if "torch.compile" in peers:
        fn, args = build()
        out.append(Candidate("torch.compile", torch.compile(fn), args, memory=False,
                             after=getattr(fn, "after_call", None)))
    return out


class Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, total, stream=None, enabled=True):
        self.total, self.done, self.stream, self.enabled = max(1, total), 0, stream or sys.stderr, enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.label, self._last = "", 0.0

    def set(self, label):
        self.label = label
        if self.enabled and not self.tty:
            print(f"gradc bench: {label}", file=self.stream, flush=True)
        self.draw(force=True)

    def step(self, n=1):
        self.done += n
        self.draw()

    def draw(self, force=False):
        if not (self.enabled and self.tty):
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        width = 30
        filled = int(width * min(self.done, self.total) / self.total)
        pct = 100 * min(self.done, self.total) // self.total
        self.stream.write(f"\r[{'#' * filled}{' ' * (width - filled)}] {pct:3d}%  {self.label[:60]:<60}")
        self.stream.flush()

    def close(self):
        if self.enabled and self.tty:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


def _leaves(result):
    """Numeric leaves of a call's result (gradc or torch tensors, arrays, numbers) as float64 arrays."""
    if isinstance(result, (tuple, list)):
        return [a for r in result for a in _leaves(r)]
    if isinstance(result, dict):
        return [a for k in sorted(result, key=str) for a in _leaves(result[k])]
    if hasattr(result, "detach"):
        result = result.detach()
    if hasattr(result, "cpu") and not isinstance(result, np.ndarray):
        result = result.cpu()
    if hasattr(result, "numpy"):
        result = result.numpy()
    try:
        return [np.asarray(result, dtype=np.float64)]
    except (TypeError, ValueError):
        return []


def rel_diff(a, b):
    la, lb = _leaves(a), _leaves(b)
    if len(la) != len(lb) or any(x.shape != y.shape for x, y in zip(la, lb)):
        return None
    worst = 0.0
    for x, y in zip(la, lb):
        if x.size:
            worst = max(worst, float(np.max(np.abs(x - y)) / (np.max(np.abs(y)) + 1e-30)))
    return worst


def measure(label, candidates, rounds, repeat, warmup, progress):
    """First call (kept for the comparison, timed as `first call`), warm-up, then `rounds` rounds of
    `repeat` timed calls per candidate in turn, then one call under tracemalloc."""
    live = []
    for c in candidates:
        progress.set(f"{label}: {c.impl} (first call)")
        try:
            t0 = time.perf_counter()
            c.first_out = c.call()
            c.first_s = time.perf_counter() - t0
            for _ in range(warmup):
                c.call()
            live.append(c)
        except Exception as e:  # a peer that fails (e.g. torch.compile without a compiler) is reported, not fatal
            c.error = f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
        progress.step(1 + warmup)
    for r in range(rounds):
        for c in live:
            progress.set(f"{label}: {c.impl} (round {r + 1}/{rounds})")
            c.call()  # libraries keep their own thread pools: wake them before timing
            c.rounds.append([])
            for _ in range(repeat):
                t0 = time.perf_counter()
                c.call()
                c.times.append((time.perf_counter() - t0) * 1e3)
                c.rounds[-1].append(c.times[-1])
                progress.step()
    for c in live:   # traces so far: what the timed calls cost in tracing (before the overhead probe lowers again)
        if hasattr(c.fn, "trace_count"):
            c.traces = c.fn.trace_count
    for c in live:
        if c.memory:
            progress.set(f"{label}: {c.impl} (peak memory)")
            tracemalloc.start()
            try:
                c.call()
                c.peak_bytes = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        progress.step()
    for c in live:
        if c.impl == "gradc compiled":
            progress.set(f"{label}: {c.impl} (per-call overhead)")
            c.overhead_us = call_overhead(c)
    rows = []
    base = next((c for c in candidates if c.impl == "gradc eager" and c.times), None)
    for c in candidates:
        row = {"workload": label, "impl": c.impl}
        if c.error:
            row["error"] = c.error
        elif c.times:
            med = statistics.median(c.times)
            row.update(median_ms=med, min_ms=min(c.times), max_ms=max(c.times), calls=len(c.times),
                       spread=spread(c.rounds), traces=c.traces,
                       overhead_us=None if c.overhead_us is None else c.overhead_us[0],
                       overhead_err_us=None if c.overhead_us is None else c.overhead_us[1],
                       speedup_vs_eager=(statistics.median(base.times) / med) if base else None,
                       peak_bytes=c.peak_bytes, first_call_s=c.first_s,
                       max_rel_diff_vs_eager=rel_diff(c.first_out, base.first_out) if base else None)
        rows.append(row)
    return rows


def call_overhead(c, budget_s=1.0, least=5, most=200):
    """(microseconds, their standard error) a compiled call spends outside its generated code
    (signature, guards, bindings, write-backs, wrapping), or None: calls and runs of the program's
    entry function on the same arrays alternate in pairs, as many as fit in about `budget_s`, and the
    figure is the median of the pairwise differences. For a workload of many milliseconds the error
    says how much of that the machine's noise hides. Runs last: the entry updates state in place
    without the call's write-backs."""
    import gradc
    prog = c.fn.lower(*c.args)
    flat = [a for a in c.args if isinstance(a, gradc.Tensor)]
    if len(flat) != len(c.args):
        return None
    arrays = [t.detach().numpy() for t in prog.resolve(flat)]
    call, run = (lambda: c.fn(*c.args)), (lambda: prog.execute(arrays))
    t0 = time.perf_counter()
    call()
    run()
    n = max(least, min(most, int(budget_s / max(time.perf_counter() - t0, 1e-9))))
    diffs = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        call()
        t1 = clock()
        run()
        t2 = clock()
        diffs.append((t1 - t0) - (t2 - t1))
    med = statistics.median(diffs)
    mad = statistics.median(abs(d - med) for d in diffs)
    return med * 1e6, 1.2533 * 1.4826 * mad / len(diffs) ** 0.5 * 1e6


def spread(rounds):
    """max/min of the per-round medians (of the calls themselves when there is one round), or None."""
    values = [statistics.median(r) for r in rounds if r] if len(rounds) > 1 else [t for r in rounds for t in r]
    return max(values) / min(values) if values and min(values) > 0 else None


def unreliable(rows, limit=None):
    """The rows whose spread (max/min of their per-round medians) is above `limit` (SPREAD_LIMIT)."""
    return [r for r in rows if (r.get("spread") or 0) > (SPREAD_LIMIT if limit is None else limit)]


def profile_compiled(label, candidates, calls):
    """Time each kernel of the compiled candidates over `calls` calls (see gradc.runtime.profile)."""
    from .runtime.profile import Profiler
    out = []
    for c in candidates:
        if c.impl == "gradc compiled" and c.error is None:
            with Profiler() as p:
                for _ in range(calls):
                    c.call()
            out.append(p.report(f"{label}: {c.impl}"))
    return out


def calls_per_candidate(rounds, repeat, warmup):
    return 1 + warmup + rounds * repeat + 1


def _ms(v):
    return "-" if v is None else (f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.1f}")


def format_table(rows):
    header = ["workload", "impl", "median ms", "min ms", "max ms", "spread", "speed-up", "peak MiB", "first call s",
              "traces", "overhead us", "max rel diff"]
    table = []
    for r in rows:
        if "error" in r:
            table.append([r["workload"], r["impl"], f"failed: {r['error']}"] + [""] * 9)
            continue
        if "median_ms" not in r:
            continue
        sp, pk, d = r.get("speedup_vs_eager"), r.get("peak_bytes"), r.get("max_rel_diff_vs_eager")
        spread, tr, ov = r.get("spread"), r.get("traces"), r.get("overhead_us")
        table.append([r["workload"], r["impl"], _ms(r["median_ms"]), _ms(r["min_ms"]), _ms(r["max_ms"]),
                      "-" if spread is None else f"{spread:.2f}" + ("!" if spread > SPREAD_LIMIT else ""),
                      "-" if sp is None else f"{sp:.2f}x", "-" if pk is None else f"{pk / 2 ** 20:.2f}",
                      f"{r['first_call_s']:.2f}", "-" if tr is None else str(tr),
                      "-" if ov is None else f"{ov:.1f}±{r.get('overhead_err_us') or 0:.1f}",
                      "-" if d is None else f"{d:.1e}"])
    widths = [max([len(h)] + [len(row[i]) for row in table if len(row) > i and not row[2].startswith("failed")])
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))),
             "  ".join("-" * w for w in widths)]
    for row in table:
        if row[2].startswith("failed"):
            lines.append("  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2]]))
        else:
            lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def environment(torch=None):
    import gradc
    env = {"gradc": gradc.__version__, "python": platform.python_version(), "platform": platform.platform(),
           "cpus": os.cpu_count(), "numpy": np.__version__}
    if torch is not None:
        env.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    return env


def write_json(path, rows, settings, torch=None):
    with open(path, "w") as f:
        json.dump({"environment": environment(torch), "settings": settings, "results": rows}, f, indent=2)
        f.write("\n")
