"""Timing helpers shared by the benchmarks: warm up, repeat, report median/min/max in ms, and print
the candidates of one workload side by side with their ratio to a baseline measured in the same run.

Absolute times drift between machines and runs; the ratios printed here are the numbers to compare."""
import json
import os
import platform
import statistics
import sys
import time


def measure(fn, warmup=5, repeat=30, min_time=0.0):
    """Call fn() `warmup` times, then time `repeat` calls (more while under min_time seconds in total).

    Returns a dict with the median, min and max per call in milliseconds and the number of calls timed."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    ms = [t * 1e3 for t in times]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "calls": len(ms)}


def measure_interleaved(candidates, rounds=5, warmup=5, repeat=20):
    """Time several candidates in alternating rounds, so that a slow patch of the machine hits all of
    them alike. `candidates` maps a name to a zero-argument callable; the result maps each name to the
    summary of all its timed calls pooled over the rounds.

    Each round starts with a few untimed calls: the libraries keep their own thread pools, and the
    first calls after switching from one to another pay for waking them."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    pooled = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            for _ in range(max(1, warmup // 2)):
                fn()
            for _ in range(repeat):
                t0 = time.perf_counter()
                fn()
                pooled[name].append((time.perf_counter() - t0) * 1e3)
    return {name: {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "calls": len(ms)}
            for name, ms in pooled.items()}


def format_ms(ms):
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}"


def print_table(rows, baseline=None, file=None):
    """Print rows of {"workload", "impl", "median_ms", "min_ms", "max_ms", "calls"} as a table. With a
    baseline implementation name, each row also shows median / median of the baseline on the same
    workload (higher is slower)."""
    out = file or sys.stdout
    header = ["workload", "impl", "median ms", "min ms", "max ms", "calls"]
    if baseline:
        header.append(f"x {baseline}")
    table = []
    for r in rows:
        line = [r["workload"], r["impl"], format_ms(r["median_ms"]), format_ms(r["min_ms"]),
                format_ms(r["max_ms"]), str(r["calls"])]
        if baseline:
            base = next((b for b in rows if b["workload"] == r["workload"] and b["impl"] == baseline), None)
            line.append(f"{r['median_ms'] / base['median_ms']:.2f}" if base else "-")
        table.append(line)
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in table:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))), file=out)


def environment():
    """What the numbers were measured on, for the JSON report."""
    import numpy as np
    env = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
           "numpy": np.__version__}
    try:
        import threadpoolctl
        env["blas_threads"] = [(i.get("internal_api"), i.get("num_threads")) for i in threadpoolctl.threadpool_info()]
    except ImportError:
        pass
    return env


def write_json(path, rows, extra=None):
    with open(path, "w") as f:
        json.dump({"environment": environment(), **(extra or {}), "results": rows}, f, indent=2)
        f.write("\n")
