"""One script for a GPU machine: run the CUDA tests, then time W1-W4 on the GPU and print a short
table (median ms): gradc eager on CuPy, gradc compiled to CUDA, PyTorch eager and torch.compile
when installed. Also reports the bandwidth of the largest fused elementwise kernel next to a
device-to-device copy measured in the same run. Full results go to a JSON file.

    python benchmarks/gpu_check.py [--json gpu_check.json] [--skip-tests] [--repeat 20]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import gradc
import gradc.nn.functional as F
from gradc import nn, optim
from gradc.workloads import Block


def sync():
    import cupy
    cupy.cuda.runtime.deviceSynchronize()


def timed(fn, repeat, warmup=3, torch_sync=None):
    for _ in range(warmup):
        fn()
    done = torch_sync or sync
    done()
    ms = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        done()
        ms.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ms)


def gradc_workloads(dev):
    """key -> (step function, args), fresh state each call."""
    def w1():
        gradc.manual_seed(0)
        m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)).to(dev)
        opt = optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        x, y = gradc.randn(128, 784, device=dev), gradc.randint(0, 10, (128,), device=dev)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            return loss
        return step, (x, y)

    def w2():
        gradc.manual_seed(0)
        x = gradc.randn(4096, 1024, device=dev, requires_grad=True)
        w, b = gradc.randn(1024, device=dev, requires_grad=True), gradc.randn(1024, device=dev, requires_grad=True)
        g, be = gradc.ones(1024, device=dev, requires_grad=True), gradc.zeros(1024, device=dev, requires_grad=True)

        def step(x, w, b, g, be):
            for t in (x, w, b, g, be):
                t.grad = None
            loss = F.layer_norm(F.gelu(x * w + b) + x, (1024,), g, be).sum()
            loss.backward()
            return loss
        return step, (x, w, b, g, be)

    def w3():
        gradc.manual_seed(0)
        blk = Block(d=256, heads=4, hidden=1024, seq=128).to(dev)
        opt = optim.Adam(blk.parameters(), lr=1e-3)
        x = gradc.randn(8, 128, 256, device=dev)

        def step(x):
            opt.zero_grad()
            loss = (blk(x) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        return step, (x,)

    def w4():
        gradc.manual_seed(0)
        m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)).to(dev)
        x = gradc.randn(1, 784, device=dev)

        def infer(x):
            with gradc.no_grad():
                return m(x)
        return infer, (x,)
    return {"W1": w1, "W2": w2, "W3": w3, "W4": w4}


def torch_workloads(torch):
    dev = "cuda"

    def w1():
        m = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(),
                                torch.nn.Linear(512, 10)).to(dev)
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        x, y = torch.randn(128, 784, device=dev), torch.randint(0, 10, (128,), device=dev)

        def step():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
        return m, step

    def w2():
        x = torch.randn(4096, 1024, device=dev, requires_grad=True)
        w, b = torch.randn(1024, device=dev, requires_grad=True), torch.randn(1024, device=dev, requires_grad=True)
        ln = torch.nn.LayerNorm(1024).to(dev)

        def step():
            x.grad = None
            ln(torch.nn.functional.gelu(x * w + b) + x).sum().backward()
        return None, step

    def w4():
        m = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(),
                                torch.nn.Linear(512, 10)).to(dev)
        x = torch.randn(1, 784, device=dev)

        def step():
            with torch.no_grad():
                m(x)
        return None, step
    return {"W1": w1, "W2": w2, "W4": w4}


def bandwidth(repeat):
    """GB/s of a large fused elementwise kernel (y = tanh(a*b + a)) next to a device-to-device copy."""
    import cupy
    n = 64 * 1024 * 1024
    a, b = cupy.random.standard_normal(n, dtype=cupy.float32), cupy.random.standard_normal(n, dtype=cupy.float32)
    out = cupy.empty_like(a)
    copy_ms = timed(lambda: out.__setitem__(Ellipsis, a), repeat)
    fa, fb = gradc.Tensor._wrap(a, gradc.float32, gradc.device("cuda")), gradc.Tensor._wrap(b, gradc.float32,
                                                                                         gradc.device("cuda"))
    fused = gradc.compile(lambda x, y: (x * y + x).tanh(), backend="cuda")
    fused_ms = timed(lambda: fused(fa, fb), repeat)
    copy_gbs = 2 * n * 4 / copy_ms / 1e6
    fused_gbs = 3 * n * 4 / fused_ms / 1e6
    return {"elements": n, "copy_ms": copy_ms, "copy_GBps": copy_gbs, "fused_ms": fused_ms, "fused_GBps": fused_gbs,
            "fused_vs_copy": fused_gbs / copy_gbs}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default="gpu_check.json", help="where to write full results (default %(default)s)")
    ap.add_argument("--skip-tests", action="store_true", help="only the benchmarks")
    ap.add_argument("--repeat", type=int, default=20, help="timed calls per candidate (default %(default)s)")
    args = ap.parse_args(argv)
    if not gradc.cuda.is_available():
        print("gpu_check: no CUDA GPU with CuPy here; nothing to check", file=sys.stderr)
        return 2
    results = {"tests": None, "workloads": {}, "bandwidth": None}
    if not args.skip_tests:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_cuda.py", "-p", "no:cacheprovider"],
                           capture_output=True, text=True)
        results["tests"] = {"exit": r.returncode, "summary": r.stdout.strip().splitlines()[-1:]}
        print(f"CUDA tests: exit {r.returncode}: {r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ''}")
    try:
        import torch
        has_torch = torch.cuda.is_available()
    except ImportError:
        torch, has_torch = None, False
    dev = gradc.device("cuda")
    rows = []
    for key, build in gradc_workloads(dev).items():
        fn, fargs = build()
        eager_ms = timed(lambda: fn(*fargs), args.repeat)
        fn2, fargs2 = build()
        compiled = gradc.compile(fn2, backend="cuda")
        compiled_ms = timed(lambda: compiled(*fargs2), args.repeat)
        row = {"workload": key, "gradc_eager_cupy_ms": eager_ms, "gradc_compiled_cuda_ms": compiled_ms,
               "speedup": eager_ms / compiled_ms}
        if has_torch and key in torch_workloads(torch):
            tsync = torch.cuda.synchronize
            _, tstep = torch_workloads(torch)[key]()
            row["torch_eager_ms"] = timed(tstep, args.repeat, torch_sync=tsync)
            try:
                _, tstep2 = torch_workloads(torch)[key]()
                cstep = torch.compile(tstep2)
                row["torch_compile_ms"] = timed(cstep, args.repeat, torch_sync=tsync)
            except Exception as e:  # torch.compile needs a working Triton; report, don't fail
                row["torch_compile_error"] = f"{type(e).__name__}: {e}"[:200]
        rows.append(row)
        results["workloads"][key] = row
    results["bandwidth"] = bandwidth(args.repeat)
    print(f"\n{'workload':8} {'eager-CuPy':>11} {'compiled':>9} {'speed-up':>8} {'torch':>8} {'torch.compile':>13}")
    for r in rows:
        print(f"{r['workload']:8} {r['gradc_eager_cupy_ms']:11.3f} {r['gradc_compiled_cuda_ms']:9.3f} "
              f"{r['speedup']:7.2f}x {r.get('torch_eager_ms', float('nan')):8.3f} "
              f"{r.get('torch_compile_ms', float('nan')):13.3f}")
    bw = results["bandwidth"]
    print(f"\nfused elementwise over {bw['elements']:,} floats: {bw['fused_GBps']:.0f} GB/s vs copy "
          f"{bw['copy_GBps']:.0f} GB/s ({100 * bw['fused_vs_copy']:.0f}% of copy)")
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
    print(f"full results: {args.json}")
    return 0 if not results["tests"] or results["tests"]["exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
