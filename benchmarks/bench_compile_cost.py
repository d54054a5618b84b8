"""What compiling costs, separately from what the compiled program computes.

  per-call overhead   W4 (batch-1 MLP inference) compiled on the NumPy backend: median time of
                      `step(x)` (signature key, guards, bindings, write-backs, wrapping) minus the
                      median time of the generated entry function on the same arrays, timed in
                      alternating rounds; wall time (median and min) and this thread's CPU time
                      (which a busy machine inflates less). And `step(x)` with the generated entry
                      replaced by one that returns its outputs at once: gradc's own Python per call,
                      without the cache and clock effects the difference of two timings carries
  cold compile        a fresh process with an empty GRADC_CACHE_DIR: import time, then the first
                      call's trace + passes + codegen + load (W1, W3), each in its own process;
                      with --backend c that includes the C compiler (the once-per-machine compiler
                      probe and block tuning are copied into the folder first, as a machine keeps them)
  warm compile        the same in a fresh process whose cache folder is already populated

    python benchmarks/bench_compile_cost.py [--repeat N] [--only overhead|cold|warm] [--against DIR]
                                            [--backend numpy|c]

Medians over --repeat fresh processes (compile) or many calls (overhead); with --against, another
gradc source tree (e.g. `git archive` of an older commit) is measured in the same run, its
processes alternating with this tree's."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import gradc
from gradc import compiler
from gradc.runtime import program, tuning
from gradc.workloads import WORKLOADS
t1 = time.perf_counter()
spent = {"builds": [], "tuning": 0.0, "load": 0.0, "cpu": 0.0, "tuning_cpu": 0.0}

def timed(key, f):
    def wrapper(*a, **k):
        s, c = time.perf_counter(), time.process_time()
        try:
            return f(*a, **k)
        finally:
            d = time.perf_counter() - s
            spent[key].append(d) if key == "builds" else spent.__setitem__(key, spent[key] + d)
            spent["tuning_cpu" if key == "tuning" else "cpu"] += time.process_time() - c
    return wrapper

compiler.CompiledFunction._build = timed("builds", compiler.CompiledFunction._build)
tuning.measure = timed("tuning", tuning.measure)
program.Program._entry = timed("load", program.Program._entry)
fn, args = WORKLOADS[sys.argv[1]].build("full")
step = gradc.compile(fn, backend=sys.argv[2])
t2 = time.perf_counter()
for _ in range(3):
    step(*args)
t3 = time.perf_counter()
total = sum(spent["builds"]) + spent["load"]
print(json.dumps({"import_s": t1 - t0, "traces": step.trace_count, "tuning_s": spent["tuning"],
                  "compile_s": total - spent["tuning"], "per_trace_s": (total - spent["tuning"]) / step.trace_count,
                  "compile_cpu_s": spent["cpu"] - spent["tuning_cpu"],
                  "three_calls_s": t3 - t2}))
"""


_OVERHEAD = r"""
import json, sys, time
import gradc
from gradc.workloads import WORKLOADS
fn, args = WORKLOADS["W4"].build(sys.argv[1])
step = gradc.compile(fn, backend="numpy")
step(*args)
prog = next(iter(step._programs.values()))[0]
run = prog._entry()
arrays = [t._data for t in prog.resolve(list(args))]
outs = run(*arrays)
noop = lambda *a: outs
calls = {"step": lambda: step(*args), "entry": lambda: run(*arrays), "no-op": lambda: step(*args)}
pooled = {k + suffix: [] for k in calls for suffix in ("", " cpu")}
for _ in range(int(sys.argv[2])):
    for name, f in calls.items():
        prog._entry = (lambda: noop) if name == "no-op" else (lambda: run)
        for _ in range(20):
            f()
        t0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(200):
            f()
        pooled[name].append((time.perf_counter() - t0) / 200 * 1e6)
        pooled[name + " cpu"].append((time.thread_time() - c0) / 200 * 1e6)
assert step.trace_count == 1, step.trace_count
print(json.dumps(pooled))
"""


def overhead(roots, scale="full", processes=3, rounds=20):
    """Per-call overhead of W4 for each source tree in `roots`, processes alternating between them."""
    pooled = {r: {"step": [], "entry": [], "no-op": [], "step cpu": [], "entry cpu": [], "no-op cpu": []} for r in roots}
    for _ in range(processes):
        for root in roots:
            got = json.loads(_run(root, _OVERHEAD, [scale, str(rounds)], {}).strip().splitlines()[-1])
            for k, v in got.items():
                pooled[root][k] += v
    out = {}
    for root, p in pooled.items():
        med = {k: statistics.median(v) for k, v in p.items()}
        low = {k: min(v) for k, v in p.items()}
        out[root] = {"step us": round(med["step"], 2), "entry us": round(med["entry"], 2),
                     "overhead us (median)": round(med["step"] - med["entry"], 2),
                     "overhead us (min)": round(low["step"] - low["entry"], 2),
                     "overhead us (thread cpu, median)": round(med["step cpu"] - med["entry cpu"], 2),
                     "overhead us (no-op entry, median)": round(med["no-op"], 2)}
    return out


def _run(root, code, argv, env):
    env = dict(os.environ, GRADC_DEBUG="0", **env)
    tree = _HERE if root == "." else os.path.abspath(root)
    env["PYTHONPATH"] = tree + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True,
                         cwd=tempfile.gettempdir())
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return out.stdout


def _child(root, key, cache, backend):
    return json.loads(_run(root, _CHILD, [key, backend], {"GRADC_CACHE_DIR": cache}).strip().splitlines()[-1])


def compile_cost(roots, key, repeat, warm, backend="numpy"):
    """Medians over `repeat` fresh processes per tree, alternating between the trees."""
    runs = {r: [] for r in roots}
    with tempfile.TemporaryDirectory() as shared:
        for i in range(repeat):
            for root in roots:
                folder = os.path.join(shared, str(roots.index(root)))
                if i == 0:
                    _child(root, key, folder, backend)   # populate (and probe the compiler, tune blocks)
                if warm:
                    runs[root].append(_child(root, key, folder, backend))
                else:
                    with tempfile.TemporaryDirectory() as fresh:
                        for name in ("native.json", "tuning.json"):   # what a machine keeps across programs
                            if os.path.exists(os.path.join(folder, name)):
                                shutil.copy(os.path.join(folder, name), fresh)
                        runs[root].append(_child(root, key, fresh, backend))
    return {r: {k: round(statistics.median(x[k] for x in v), 4)
                for k in ("import_s", "traces", "tuning_s", "compile_s", "per_trace_s", "compile_cpu_s")} for r, v in runs.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="fresh processes per compile measurement")
    ap.add_argument("--only", choices=("overhead", "cold", "warm"))
    ap.add_argument("--scale", choices=("full", "small"), default="full", help="W4's size for the overhead")
    ap.add_argument("--against", metavar="DIR", help="another gradc source tree, measured side by side")
    ap.add_argument("--backend", choices=("numpy", "c"), default="numpy", help="the backend compiled for (default numpy)")
    ns = ap.parse_args(argv)
    roots = ([ns.against] if ns.against else []) + ["."]
    result = {}

    def show(name, per_root):
        result[name] = per_root
        for root, v in per_root.items():
            print(f"{name:12s} {'this tree' if root == '.' else root:12s} {v}", flush=True)

    if ns.only in (None, "overhead"):
        show("W4 overhead", overhead(roots, ns.scale))
    for kind in ("cold", "warm"):
        if ns.only in (None, kind):
            for key in ("W1", "W3"):
                show(f"{key} {kind}", compile_cost(roots, key, ns.repeat, kind == "warm", ns.backend))
    return result


if __name__ == "__main__":
    main()
