"""One script for a fresh GPU machine, run from the checkout without installing gradc:

    python benchmarks/gpu_check.py [--out DIR] [--budget-s 450] [--repeat 20] [--skip-tests] [--strict]

Stages, each in its own try/except and under its own deadline, so that a failure becomes that
stage's row of the table and the run goes on to the next:

  environment  Python, NumPy, gradc (which copy), CuPy (CUDA runtime and driver, the GPU), PyTorch,
               JAX, nvcc and nvidia-smi; more than one CuPy package installed is an error
  cuda_tests   pytest tests/test_cuda.py tests/test_cupy_signatures.py, in a subprocess with a timeout
               (its output in DIR/cuda_tests.log)
  W1 .. W4     the reference workloads of gradc.workloads at full size on the GPU: median ms of gradc
               eager on CuPy, gradc compiled (backend="cuda"), PyTorch eager and torch.compile (when
               PyTorch has CUDA); compiled results are checked against eager ones
  bandwidth    W2's compiled step as GB/s (the bytes it cannot avoid moving: read x, write x.grad)
               against a device-to-device copy measured in the same run

The whole run stays within --budget-s (default 450 s, under 8 minutes): each stage gets a share,
ends at its deadline (an alarm, and time checks in the timing loops), and a stage that finds no
time left is skipped. DIR/gpu_check.json (one entry per stage) is rewritten after every stage, so
a run stopped from outside keeps what it measured; a short table is printed at the end. Exit
status 0 once the JSON is written; with --strict, 1 if any stage did not pass."""
import argparse
import contextlib
import datetime
import importlib.metadata as metadata
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's gradc, installed or not

import numpy as np  # noqa: E402

# Relative shares of the time left: each stage may use its share of what remains (less a margin of
# 5% of the budget) among itself and the stages after it, so time a stage does not use goes on.
SHARES = {"environment": 0.06, "cuda_tests": 0.40, "W1": 0.12, "W2": 0.10, "W3": 0.14, "W4": 0.10,
          "bandwidth": 0.08}
MIN_STAGE_S = {"environment": 15.0}   # the environment probes need a few seconds on any budget
TEST_FILES = ("tests/test_cuda.py", "tests/test_cupy_signatures.py")


class StageTimeout(BaseException):
    """Raised in the main thread when a stage reaches its deadline (a BaseException, so that the
    `except Exception` of a candidate does not swallow it)."""


@contextlib.contextmanager
def deadline(seconds):
    if not hasattr(signal, "setitimer"):  # no interval timer (Windows): the timing loops' checks remain
        yield
        return

    def ring(signum, frame):
        raise StageTimeout(f"ran past its deadline of {seconds:.0f} s")
    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _error(e):
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}"


# ---------------------------------------------------------------------------------------- environment
def _run(cmd, timeout, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return (r.stdout + r.stderr).strip()


def stage_environment(until):
    env = {"python": platform.python_version(), "platform": platform.platform(), "numpy": np.__version__}
    problems = []

    def probe(name, fn):
        try:
            env[name] = fn()
        except StageTimeout:
            raise
        except Exception as e:
            env[name] = {"error": _error(e)}

    def gradc_info():
        import gradc
        return {"version": gradc.__version__, "path": os.path.dirname(gradc.__file__),
                "from_checkout": os.path.dirname(os.path.dirname(os.path.abspath(gradc.__file__))) == ROOT}

    def cupy_info():
        dists = sorted({d.metadata["Name"] for d in metadata.distributions()
                        if (d.metadata["Name"] or "").lower().startswith("cupy")})
        if len(dists) > 1:
            problems.append(f"more than one CuPy package is installed ({', '.join(dists)}): they overwrite each "
                            "other's files; uninstall all but one (pip install 'gradc[cuda]' picks cupy-cuda13x)")
        if not dists:
            return {"installed": False}
        import cupy
        rt = cupy.cuda.runtime
        info = {"packages": dists, "version": cupy.__version__}
        info["runtime"], info["driver"] = rt.runtimeGetVersion(), rt.driverGetVersion()
        info["devices"] = rt.getDeviceCount()
        if info["devices"]:
            props = rt.getDeviceProperties(0)
            info["device0"] = {"name": props["name"].decode(),
                               "memory_gib": round(props["totalGlobalMem"] / 2 ** 30, 1),
                               "compute_capability": f"{props['major']}.{props['minor']}"}
        return info

    def torch_info():
        import torch
        info = {"version": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
        if info["cuda_available"]:
            info["device0"] = torch.cuda.get_device_name(0)
        return info

    def jax_info():
        try:
            version = metadata.version("jax")
        except metadata.PackageNotFoundError:
            return {"installed": False}
        # In a subprocess: JAX's backend reserves most of the GPU's memory when it starts.
        code = "import jax; print(jax.__version__, [str(d) for d in jax.devices()])"
        child = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
        out = _run([sys.executable, "-c", code], max(1, min(60, until - time.monotonic())), child)
        return {"version": version, "devices": out.splitlines()[-1:]}

    def tool(name, args):
        path = shutil.which(name)
        if path is None:
            return {"found": False}
        out = _run([path] + args, max(1, min(20, until - time.monotonic())))
        return {"path": path, "output": out.splitlines()[-3:]}

    probe("gradc", gradc_info)
    probe("cupy", cupy_info)
    probe("torch", torch_info)
    probe("jax", jax_info)
    probe("nvcc", lambda: tool("nvcc", ["--version"]))
    probe("nvidia_smi", lambda: tool("nvidia-smi", ["--query-gpu=name,driver_version,memory.total",
                                                    "--format=csv,noheader"]))
    if problems:
        raise EnvironmentProblem("; ".join(problems), env)
    return env


class EnvironmentProblem(Exception):
    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


# ---------------------------------------------------------------------------------------- tests
def stage_cuda_tests(until, out_dir):
    log = os.path.join(out_dir, "cuda_tests.log")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TEST_FILES]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    timeout = until - time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # pytest and whatever it started (nvcc, g++)
            proc.wait()
            code = None
    with open(log) as f:
        lines = [ln.rstrip() for ln in f if ln.strip()]
    summary = next((ln for ln in reversed(lines) if re.search(r"\d+ (passed|failed|skipped|error)", ln)), "")
    result = {"command": " ".join(["python"] + cmd[1:]), "exit": code, "summary": summary, "log": log,
              "tail": lines[-15:]}
    if code is None:
        raise StageFailure(f"timed out after {timeout:.0f} s (pytest killed; partial output in {log})", result)
    if code != 0:
        raise StageFailure(f"pytest exit {code}: {summary or (lines[-1] if lines else 'no output')}", result)
    return result


class StageFailure(Exception):
    """A stage that ran to its end and failed, with what it measured."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


# ---------------------------------------------------------------------------------------- workloads
def _require_gpu():
    import gradc
    gradc.zeros(1, device="cuda")  # gradc's own DeviceError says what is missing (CuPy, a driver, a GPU)
    return gradc


def gradc_workloads(dev):
    """key -> build() returning (fn, args) on `dev`: gradc.workloads' W1-W4 at full size, from the
    same seeds and values (so the numbers compare with `gradc bench`'s)."""
    import gradc
    import gradc.nn.functional as F
    from gradc import nn, optim
    from gradc.workloads import Block

    def tensor(a, **kw):
        return gradc.tensor(a, device=dev, **kw)

    def mlp():
        gradc.manual_seed(0)
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)).to(dev)

    def w1():
        model = mlp()
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        rng = np.random.default_rng(1)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        return step, (tensor(rng.standard_normal((128, 784), dtype=np.float32)), tensor(rng.integers(0, 10, 128)))

    def w2():
        rng = np.random.default_rng(2)
        x = tensor(rng.standard_normal((4096, 1024), dtype=np.float32), requires_grad=True)
        w, b = (tensor(v.astype(np.float32), requires_grad=True)
                for v in (1 + 0.1 * rng.standard_normal(1024), 0.1 * rng.standard_normal(1024)))
        ln = nn.LayerNorm(1024).to(dev)
        with gradc.no_grad():
            ln.weight.copy_(tensor((1 + 0.1 * rng.standard_normal(1024)).astype(np.float32)))
            ln.bias.copy_(tensor((0.1 * rng.standard_normal(1024)).astype(np.float32)))
        leaves = [w, b, ln.weight, ln.bias]

        def step(x):
            for t in [x] + leaves:
                t.grad = None
            loss = ln(F.gelu(x * w + b) + x).sum()
            loss.backward()
            return loss
        return step, (x,)

    def w3():
        gradc.manual_seed(3)
        block = Block(d=256, heads=4, hidden=1024, seq=128).to(dev)
        opt = optim.Adam(block.parameters(), lr=1e-3)

        def step(x):
            opt.zero_grad()
            loss = (block(x) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        return step, (tensor(np.random.default_rng(3).standard_normal((8, 128, 256), dtype=np.float32)),)

    def w4():
        model = mlp().eval()

        def infer(x):
            with gradc.no_grad():
                return model(x)
        return infer, (tensor(np.random.default_rng(1).standard_normal((1, 784), dtype=np.float32)),)
    return {"W1": w1, "W2": w2, "W3": w3, "W4": w4}


def torch_workloads(torch):
    """The same four computations in PyTorch on the GPU (PyTorch's own initial weights)."""
    dev, tF = "cuda", torch.nn.functional

    def mlp():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                                   torch.nn.ReLU(), torch.nn.Linear(512, 10)).to(dev)

    def w1():
        model = mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = tF.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        return step, (torch.randn(128, 784, device=dev), torch.randint(0, 10, (128,), device=dev))

    def w2():
        x = torch.randn(4096, 1024, device=dev, requires_grad=True)
        w, b = (torch.randn(1024, device=dev, requires_grad=True) for _ in range(2))
        ln = torch.nn.LayerNorm(1024).to(dev)

        def step(x):
            for t in (x, w, b, ln.weight, ln.bias):
                t.grad = None
            loss = ln(tF.gelu(x * w + b) + x).sum()
            loss.backward()
            return loss
        return step, (x,)

    def w3():
        d, heads, hidden, seq = 256, 4, 1024, 128
        p = torch.nn.ModuleDict({"ln1": torch.nn.LayerNorm(d), "ln2": torch.nn.LayerNorm(d),
                                 "qkv": torch.nn.Linear(d, 3 * d), "proj": torch.nn.Linear(d, d),
                                 "fc1": torch.nn.Linear(d, hidden), "fc2": torch.nn.Linear(hidden, d)}).to(dev)
        mask = torch.triu(torch.full((seq, seq), -1e9, device=dev), 1)
        opt = torch.optim.Adam(p.parameters(), lr=1e-3)

        def block(x):  # gradc.workloads.Block, written in PyTorch
            bsz, t, _ = x.shape
            hd = d // heads
            qkv = p["qkv"](p["ln1"](x)).reshape(bsz, t, 3, heads, hd).permute(2, 0, 3, 1, 4)
            att = torch.softmax(qkv[0] @ qkv[1].transpose(-2, -1) * hd ** -0.5 + mask, dim=-1)
            x = x + p["proj"]((att @ qkv[2]).permute(0, 2, 1, 3).reshape(bsz, t, d))
            return x + p["fc2"](tF.gelu(p["fc1"](p["ln2"](x)), approximate="tanh"))

        def step(x):
            opt.zero_grad()
            loss = (block(x) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        return step, (torch.randn(8, seq, d, device=dev),)

    def w4():
        model = mlp().eval()

        def infer(x):
            with torch.no_grad():
                return model(x)
        return infer, (torch.randn(1, 784, device=dev),)
    return {"W1": w1, "W2": w2, "W3": w3, "W4": w4}


def timed(call, sync, repeat, until, warmup=3):
    """First call (timed on its own: it includes compiling), warm-up, then up to `repeat` timed
    calls, fewer when `until` (time.monotonic()) comes first."""
    t0 = time.perf_counter()
    first = call()
    sync()
    first_s = time.perf_counter() - t0
    for _ in range(warmup):
        if time.monotonic() > until:
            break
        call()
    sync()
    ms = []
    while len(ms) < repeat and (not ms or time.monotonic() < until):
        t0 = time.perf_counter()
        call()
        sync()
        ms.append((time.perf_counter() - t0) * 1e3)
    return first, {"median_ms": statistics.median(ms), "min_ms": min(ms), "calls": len(ms),
                   "first_call_s": round(first_s, 3)}


def _torch():
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return None, "PyTorch has no CUDA device (torch.cuda.is_available() is False)"
    return torch, None


def stage_workload(key, until, repeat):
    """Times the four candidates of one workload; each candidate's failure is its own entry."""
    result = {"candidates": {}}
    try:
        return _workload(key, until, repeat, result)
    except StageTimeout as e:   # keep what the earlier candidates measured
        raise StageFailure(f"StageTimeout: {e}; " + "; ".join(
            f"{n}: {c['error']}" for n, c in result["candidates"].items() if "error" in c), result) from None


def _workload(key, until, repeat, result):
    cands = result["candidates"]
    names = ("gradc eager (CuPy)", "gradc compiled (cuda)", "pytorch eager", "torch.compile")
    firsts = {}

    def run(name, make, sync):
        left = len(names) - len(cands)
        share = time.monotonic() + (until - time.monotonic()) / max(left, 1)
        try:
            fn, args = make()
            firsts[name], cands[name] = timed(lambda: fn(*args), sync, repeat, share)
        except StageTimeout:
            cands[name] = {"error": "the stage's deadline came during this candidate"}
            raise
        except Exception as e:
            cands[name] = {"error": _error(e)}
    try:
        gradc = _require_gpu()
    except Exception as e:
        for name in names[:2]:
            cands[name] = {"error": _error(e)}
    else:
        build = gradc_workloads(gradc.device("cuda"))[key]
        sync = gradc.cuda.synchronize
        run(names[0], build, sync)

        def compiled():
            fn, args = build()
            return gradc.compile(fn, backend="cuda"), args
        run(names[1], compiled, sync)
        if names[0] in firsts and names[1] in firsts:
            from gradc.bench import rel_diff
            diff = rel_diff(firsts[names[1]], firsts[names[0]])
            cands[names[1]]["max_rel_diff_vs_eager"] = diff
            if diff is None or diff > 1e-3:
                cands[names[1]]["error"] = f"compiled result differs from eager (max rel diff {diff})"
    torch, why = _torch()
    if torch is None:
        for name in names[2:]:
            cands[name] = {"skipped": why}
    else:
        tbuild = torch_workloads(torch)[key]
        run(names[2], tbuild, torch.cuda.synchronize)

        def tcompiled():
            fn, args = tbuild()
            return torch.compile(fn), args
        run(names[3], tcompiled, torch.cuda.synchronize)
    eager, comp = cands[names[0]], cands[names[1]]
    if "median_ms" in eager and "median_ms" in comp:
        result["compiled_speedup_vs_eager"] = eager["median_ms"] / comp["median_ms"]
    errors = {}   # error -> candidates: one line for "no GPU" rather than one per candidate
    for n, c in cands.items():
        if "error" in c:
            errors.setdefault(c["error"], []).append(n)
    if errors:
        raise StageFailure("; ".join(f"{' and '.join(ns)}: {e}" for e, ns in errors.items()), result)
    return result


# ---------------------------------------------------------------------------------------- bandwidth
def stage_bandwidth(until, repeat):
    gradc = _require_gpu()
    import cupy
    sync = gradc.cuda.synchronize
    n = 64 * 2 ** 20   # 256 MiB of float32 per buffer: far past the GPU's caches
    src, dst = cupy.ones(n, dtype=cupy.float32), cupy.empty(n, dtype=cupy.float32)
    half = time.monotonic() + (until - time.monotonic()) / 2
    _, copy = timed(lambda: cupy.copyto(dst, src), sync, repeat, half)
    copy_gbps = 2 * src.nbytes / (copy["median_ms"] * 1e6)
    del src, dst
    fn, args = gradc_workloads(gradc.device("cuda"))["W2"]()
    step = gradc.compile(fn, backend="cuda")
    _, w2 = timed(lambda: step(*args), sync, repeat, until)
    must_move = 2 * args[0].numel() * 4   # read x, write x.grad (the 1024-vectors are noise)
    result = {"copy": dict(copy, GBps=copy_gbps, bytes=2 * n * 4), "w2_compiled": w2, "w2_bytes_must_move": must_move,
              "w2_GBps": must_move / (w2["median_ms"] * 1e6)}
    result["w2_fraction_of_copy"] = result["w2_GBps"] / copy_gbps
    try:
        stats = step.lower(*args).stats
    except Exception as e:
        stats = {}
        result["stats_error"] = _error(e)
    if "launches" in stats:   # kernel launches per call without a CUDA graph (a replay is one)
        result["w2_launches"] = stats["launches"]
    if "global_bytes" in stats:   # what the generated kernels read and write per call, as planned
        result["w2_global_bytes"] = stats["global_bytes"]
        result["w2_global_GBps"] = stats["global_bytes"] / (w2["median_ms"] * 1e6)
    return result


# ---------------------------------------------------------------------------------------- driver
class Run:
    def __init__(self, args):
        self.args, self.start = args, time.monotonic()
        self.end = self.start + args.budget_s
        self.path = os.path.join(args.out, "gpu_check.json")
        self.stages = []
        self.doc = {"script": "benchmarks/gpu_check.py",
                    "started": datetime.datetime.now().isoformat(timespec="seconds"),
                    "budget_s": args.budget_s, "repeat": args.repeat, "stages": self.stages}

    def stage(self, name, fn, *extra):
        entry = {"name": name, "status": None, "seconds": 0.0}
        self.stages.append(entry)
        left = self.end - time.monotonic()
        later = list(SHARES)[list(SHARES).index(name):]
        usable = left - 0.05 * self.args.budget_s
        cap = max(usable * SHARES[name] / sum(SHARES[n] for n in later), MIN_STAGE_S.get(name, 0.0))
        if name == "cuda_tests" and self.args.skip_tests:
            entry.update(status="skipped", error="--skip-tests")
        elif left < 1.0:
            entry.update(status="skipped", error=f"time budget spent (--budget-s {self.args.budget_s:g})")
        else:
            seconds = min(cap, left)
            until = time.monotonic() + seconds
            t0 = time.monotonic()
            try:
                with deadline(seconds + 5):  # the loops stop at `until`; the alarm catches what does not return
                    entry["result"] = fn(until, *extra)
                entry["status"] = "ok"
            except (StageFailure, EnvironmentProblem) as e:
                entry.update(status="failed", error=str(e), result=e.result)
            except StageTimeout as e:
                entry.update(status="failed", error=f"StageTimeout: {e}")
            except Exception as e:  # anything else: its error in the table, then the next stage
                entry.update(status="failed", error=_error(e))
                if not type(e).__module__.startswith("gradc"):  # gradc's named errors say enough
                    entry["traceback"] = traceback.format_exc(limit=8)
            entry["seconds"] = round(time.monotonic() - t0, 2)
        self.save()
        print(f"gpu_check: {name}: {entry['status']} ({entry['seconds']} s)"
              + (f": {entry['error'][:200]}" if entry.get("error") else ""), file=sys.stderr, flush=True)
        return entry

    def save(self):
        self.doc["elapsed_s"] = round(time.monotonic() - self.start, 2)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.doc, f, indent=1, default=str)
            f.write("\n")
        os.replace(tmp, self.path)


def _version(v):
    if not isinstance(v, dict):
        return str(v)
    if "error" in v:
        return "error"
    return str(v.get("version", "not installed" if v.get("installed") is False else "?"))


def _ms(c):
    if "median_ms" in c:
        return f"{c['median_ms']:.3f}"
    return "failed" if "error" in c else "-"


def print_table(stages, file=sys.stdout):
    print(f"\n{'stage':12} {'status':8} {'seconds':>8}  result", file=file)
    for s in stages:
        r = s.get("result") or {}
        note = s.get("error", "")
        if s["status"] == "ok" and s["name"] == "cuda_tests":
            note = r.get("summary", "")
        elif s["status"] == "ok" and s["name"] == "bandwidth":
            note = (f"W2 compiled {r['w2_GBps']:.0f} GB/s vs device copy {r['copy']['GBps']:.0f} GB/s "
                    f"({100 * r['w2_fraction_of_copy']:.0f}% of copy)")
        elif s["status"] == "ok" and s["name"] == "environment":
            note = ", ".join(f"{k} {_version(r[k])}" for k in ("gradc", "numpy", "cupy", "torch", "jax") if k in r)
        print(f"{s['name']:12} {s['status']:8} {s['seconds']:8.1f}  {note[:160]}", file=file)
    rows = [s for s in stages if s["name"].startswith("W") and "candidates" in (s.get("result") or {})]
    if rows:
        print(f"\n{'median ms':9} {'eager-CuPy':>11} {'compiled':>9} {'speed-up':>8} {'torch':>8} "
              f"{'torch.compile':>13}", file=file)
        for s in rows:
            c = s["result"]["candidates"]
            sp = s["result"].get("compiled_speedup_vs_eager")
            print(f"{s['name']:9} {_ms(c.get('gradc eager (CuPy)', {})):>11} "
                  f"{_ms(c.get('gradc compiled (cuda)', {})):>9} "
                  f"{(f'{sp:.2f}x' if sp else '-'):>8} {_ms(c.get('pytorch eager', {})):>8} "
                  f"{_ms(c.get('torch.compile', {})):>13}", file=file)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".", help="directory for gpu_check.json and cuda_tests.log (default: here)")
    ap.add_argument("--budget-s", type=float, default=450.0, help="seconds for the whole run (default %(default)s)")
    ap.add_argument("--repeat", type=int, default=20, help="timed calls per candidate at most (default %(default)s)")
    ap.add_argument("--skip-tests", action="store_true", help="skip the cuda_tests stage")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 when a stage failed or found no time left (--skip-tests is not a failure)")
    args = ap.parse_args(argv)
    if args.budget_s <= 0 or args.repeat < 1:
        ap.error("--budget-s must be positive and --repeat at least 1")
    os.makedirs(args.out, exist_ok=True)
    run = Run(args)
    run.stage("environment", stage_environment)
    run.stage("cuda_tests", stage_cuda_tests, args.out)
    for key in ("W1", "W2", "W3", "W4"):
        run.stage(key, lambda until, key=key: stage_workload(key, until, args.repeat))
    run.stage("bandwidth", stage_bandwidth, args.repeat)
    print_table(run.stages)
    print(f"\nfull results: {run.path}")
    missed = [s for s in run.stages
              if s["status"] == "failed" or (s["status"] == "skipped" and s["error"] != "--skip-tests")]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
