"""DistributedDataParallel benchmark: training throughput (samples per second) of the W1 MLP with 1 and
2 MPI ranks on this machine, eager and compiled, beside the same step without DDP, in one run.

  W1 mlp-train  MLP 784-512-512-10 (ReLU), batch 128 per rank, cross-entropy on int labels,
                SGD lr 0.01 momentum 0.9; one step = zero_grad + forward + backward (+ gradient
                averaging across ranks) + update

The script starts the MPI jobs itself (mpiexec -n R python bench_ddp.py --worker), alternating the
rank counts over --launches rounds. Each rank's BLAS uses --threads threads (default 1: one rank per
core, as DDP is meant to be used; multi-threaded BLAS on a shared, busy machine mostly measures the
contention). A job also checks that every rank ends with the same parameters.

Usage: python benchmarks/bench_ddp.py [--ranks 1,2] [--steps 20] [--launches 2] [--threads 1] [--json FILE]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIZES = (784, 512, 512, 10)
BATCH = 128
LR, MOMENTUM = 0.01, 0.9


# ---------------------------------------------------------------------------------------------- in a rank
def worker(args):
    import gradc
    import gradc.distributed as dist
    from gradc import nn, optim

    dist.init_process_group(backend="mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    rng = np.random.default_rng(1000 + rank)  # each rank its own data
    x = gradc.from_numpy(rng.standard_normal((BATCH, SIZES[0]), dtype=np.float32))
    y = gradc.from_numpy(rng.integers(0, SIZES[-1], size=BATCH, dtype=np.int64))

    def model():
        gradc.manual_seed(0)
        return nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(), nn.Linear(SIZES[1], SIZES[2]), nn.ReLU(),
                             nn.Linear(SIZES[2], SIZES[3]))

    def make(ddp, compiled):
        net = nn.parallel.DistributedDataParallel(model()) if ddp else model()
        opt = optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            return loss
        return net, (gradc.compile(step) if compiled else step)

    configs = [("DDP eager", True, False), ("DDP compiled", True, True)]
    if world == 1:
        configs = [("no DDP eager", False, False), ("no DDP compiled", False, True)] + configs
    built = [(name, ddp) + make(ddp, compiled) for name, ddp, compiled in configs]
    for _, _, _, step in built:
        for _ in range(args.warmup):
            step()
    times = {name: [] for name, _, _, _ in built}
    for _ in range(args.rounds):  # the configurations take turns, so a busy patch of the machine hits all
        for name, _, _, step in built:
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            t = gradc.tensor(time.perf_counter() - t0, dtype=gradc.float64)
            dist.all_reduce(t, op="max")  # a round lasts until its slowest rank is done
            times[name].append(t.item() / args.steps)
    rows = []
    for name, ddp, net, _ in built:
        if ddp:  # every rank must hold the same model, or this is not the program being claimed
            flat = gradc.cat([p.detach().reshape(-1) for p in net.parameters()])
            spread = flat.clone()
            dist.broadcast(spread, src=0)
            spread = (spread - flat).abs().amax()
            dist.all_reduce(spread, op="max")
            if spread.item() != 0.0:
                raise SystemExit(f"{name}: the ranks' parameters differ by {spread.item()}")
        sec = statistics.median(times[name])
        rows.append({"impl": name, "ranks": world, "ms_per_step": sec * 1e3, "samples_per_s": world * BATCH / sec})

    # The collective alone: one average of a gradient-sized float32 buffer (what DDP's bucket costs).
    n = sum(a * b + b for a, b in zip(SIZES[:-1], SIZES[1:]))
    buf = gradc.zeros(n)
    for _ in range(args.warmup):
        dist.all_reduce(buf, op="avg")
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(args.steps * 2):
        dist.all_reduce(buf, op="avg")
    comm = (time.perf_counter() - t0) / (args.steps * 2)
    if rank == 0:
        print("BENCH " + json.dumps({"rows": rows, "allreduce_ms": comm * 1e3, "grad_bytes": n * 4}), flush=True)
    dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------- the driver
def find_mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def launch(ranks, args, threads):
    env = dict(os.environ)
    root = str(HERE.parent)
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [find_mpiexec(), "-n", str(ranks), sys.executable, str(Path(__file__).resolve()), "--worker",
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--rounds", str(args.rounds)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise SystemExit(f"the {ranks}-rank job failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH "))
    return json.loads(line[len("BENCH "):])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="1,2", help="comma-separated rank counts (default: 1,2)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per job, configurations taking turns")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (tracing happens here)")
    parser.add_argument("--launches", type=int, default=2, help="jobs per rank count, alternating the counts")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads per rank")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one job may take")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    try:
        import mpi4py  # noqa: F401
    except ImportError:
        raise SystemExit("this benchmark needs mpi4py and MPICH: pip install 'gradc[dist]'")
    if find_mpiexec() is None:
        raise SystemExit("mpiexec not found (pip install 'gradc[dist]' installs MPICH's)")
    cores = os.cpu_count() or 1
    counts = [int(r) for r in args.ranks.split(",") if r.strip()]
    print(f"{cores} CPU cores; {args.threads} BLAS thread(s) per rank; batch {BATCH} per rank")
    samples, comm, grad_bytes = {}, {}, 0
    for _ in range(args.launches):
        for ranks in counts:
            out = launch(ranks, args, args.threads)
            grad_bytes = out["grad_bytes"]
            comm.setdefault(ranks, []).append(out["allreduce_ms"])
            for r in out["rows"]:
                samples.setdefault((r["impl"], ranks), []).append(r["samples_per_s"])

    base = {impl: statistics.median(v) for (impl, ranks), v in samples.items() if ranks == min(counts)}
    rows = []
    for (impl, ranks), v in samples.items():
        sps = statistics.median(v)
        ddp_impl = impl if impl.startswith("DDP") else None
        rows.append({"impl": impl, "ranks": ranks, "samples_per_s": sps, "ms_per_step": ranks * BATCH / sps * 1e3,
                     "vs_1_rank": sps / base[ddp_impl] if ddp_impl and ddp_impl in base else None,
                     "launches": len(v)})
    rows.sort(key=lambda r: (r["impl"].startswith("DDP"), "compiled" in r["impl"], r["ranks"]))
    header = ["W1 mlp-train", "ranks", "samples/s", "ms/step", "x same impl, 1 rank"]
    table = [[r["impl"], str(r["ranks"]), f"{r['samples_per_s']:.0f}", f"{r['ms_per_step']:.2f}",
              "-" if r["vs_1_rank"] is None else f"{r['vs_1_rank']:.2f}"] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    print()
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
    print("  ".join("-" * w for w in widths))
    for t in table:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(t, widths))))
    overhead = {}
    for mode in ("eager", "compiled"):
        plain, ddp = base.get(f"no DDP {mode}"), base.get(f"DDP {mode}")
        if plain and ddp:
            overhead[mode] = plain / ddp - 1
            print(f"DDP overhead at 1 rank, {mode}: {100 * overhead[mode]:+.1f}% time per step "
                  "(bucketing + the collective + its cross-rank check)")
    for ranks, ms in sorted(comm.items()):
        print(f"all_reduce(avg) of the {grad_bytes / 2 ** 20:.2f} MiB gradient at {ranks} rank(s): "
              f"{statistics.median(ms):.3f} ms")
    if args.json:
        sys.path.insert(0, str(HERE))
        from common import write_json
        write_json(args.json, rows, {"allreduce_ms": {str(k): statistics.median(v) for k, v in comm.items()},
                                     "ddp_overhead_1_rank": overhead, "batch_per_rank": BATCH})
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
