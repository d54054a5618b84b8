"""Eager benchmark: gradc eager against PyTorch eager (when installed) and hand-written NumPy, on the
reference workloads of gradc/workloads.py (`gradc bench --help` lists them), measured side by side in one run.

  W1 mlp-train     MLP 784-512-512-10 (ReLU), batch 128, cross-entropy on int labels,
                   SGD lr 0.01 momentum 0.9; one call = zero_grad + forward + backward + update
  W4 mlp-infer-b1  W1's model, batch 1, forward under no_grad; one call = one inference

Usage: python benchmarks/bench_eager.py [--workloads W1,W4] [--rounds 5] [--repeat 20] [--json FILE]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import measure_interleaved, print_table, write_json  # noqa: E402

import gradc  # noqa: E402
from gradc import nn, optim  # noqa: E402

SIZES = (784, 512, 512, 10)
BATCH = 128
LR, MOMENTUM = 0.01, 0.9


def numpy_threads():
    """OpenBLAS/MKL use this many threads unless told otherwise."""
    try:
        import threadpoolctl
        return max(i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")
    except (ImportError, ValueError):
        pass
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return os.cpu_count() or 1


def make_data(batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], size=batch, dtype=np.int64)
    return x, y


def gradc_model(seed=0):
    gradc.manual_seed(seed)
    return nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(), nn.Linear(SIZES[1], SIZES[2]), nn.ReLU(),
                         nn.Linear(SIZES[2], SIZES[3]))


def weights_of(model):
    """[(W, b), ...] as float32 NumPy arrays, W of shape (out, in), in layer order."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    return [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in linears]


# ---------------------------------------------------------------------------------------------- gradc
def gradc_train_step(x, y):
    model = gradc_model()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = gradc.from_numpy(x), gradc.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
        return loss
    return step, model


def gradc_infer(x):
    model = gradc_model()
    model.eval()
    xt = gradc.from_numpy(x)

    def call():
        with gradc.no_grad():
            return model(xt)
    return call, model


# ---------------------------------------------------------------------------------------------- PyTorch
def torch_model(torch, weights):
    layers = []
    for i, (w, b) in enumerate(weights):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(weights) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_train_step(torch, weights, x, y):
    model = torch_model(torch, weights)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
        return loss
    return step


def torch_infer(torch, weights, x):
    model = torch_model(torch, weights).eval()
    xt = torch.from_numpy(x)

    def call():
        with torch.no_grad():
            return model(xt)
    return call


# ---------------------------------------------------------------------------------------------- NumPy
def numpy_train_step(weights, x, y):
    """The same step written by hand with NumPy: the cost of the arithmetic alone on gradc's backend."""
    params = [(w.copy(), b.copy()) for w, b in weights]
    bufs = [(np.zeros_like(w), np.zeros_like(b)) for w, b in weights]
    n = x.shape[0]
    onehot = np.zeros((n, SIZES[-1]), np.float32)
    onehot[np.arange(n), y] = 1

    def step():
        acts = [x]
        h = x
        for i, (w, b) in enumerate(params):
            h = h @ w.T + b
            if i < len(params) - 1:
                h = np.maximum(h, 0)
            acts.append(h)
        logits = acts[-1]
        shifted = logits - logits.max(1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(1, keepdims=True)
        loss = -(shifted[np.arange(n), y] - np.log(s[:, 0])).mean()
        g = (e / s - onehot) / n
        for i in range(len(params) - 1, -1, -1):
            w, b = params[i]
            gw, gb = g.T @ acts[i], g.sum(0)
            if i > 0:
                g = (g @ w) * (acts[i] > 0)
            vw, vb = bufs[i]
            vw *= MOMENTUM
            vw += gw
            vb *= MOMENTUM
            vb += gb
            w -= LR * vw
            b -= LR * vb
        return loss
    return step


def numpy_infer(weights, x):
    params = [(w.copy(), b.copy()) for w, b in weights]

    def call():
        h = x
        for i, (w, b) in enumerate(params):
            h = h @ w.T + b
            if i < len(params) - 1:
                h = np.maximum(h, 0)
        return h
    return call


# ---------------------------------------------------------------------------------------------- main
def check_agreement(name, a, b, tol):
    if not np.allclose(a, b, rtol=tol, atol=tol):
        raise SystemExit(f"{name}: implementations disagree ({a} vs {b}); not benchmarking different maths")


def bench_w1(torch, rounds, repeat):
    x, y = make_data(BATCH)
    g_step, g_model = gradc_train_step(x, y)
    weights = weights_of(g_model)
    candidates = {"gradc eager": g_step, "numpy (hand-written)": numpy_train_step(weights, x, y)}
    if torch is not None:
        candidates["pytorch eager"] = torch_train_step(torch, weights, x, y)
    # Fresh copies start from the same weights, so the loss of their third step (which depends on the
    # gradients and updates of the first two) must agree.
    fresh = {"gradc eager": gradc_train_step(x, y)[0], "numpy (hand-written)": numpy_train_step(weights, x, y)}
    if torch is not None:
        fresh["pytorch eager"] = torch_train_step(torch, weights, x, y)
    third = {name: [float(step()) for _ in range(3)][-1] for name, step in fresh.items()}
    for name, loss in third.items():
        check_agreement(f"W1 third-step loss of {name}", loss, third["numpy (hand-written)"], 1e-4)
    return measure_interleaved(candidates, rounds=rounds, warmup=5, repeat=repeat)


def bench_w4(torch, rounds, repeat):
    x, _ = make_data(1, seed=1)
    g_call, g_model = gradc_infer(x)
    weights = weights_of(g_model)
    candidates = {"gradc eager": g_call, "numpy (hand-written)": numpy_infer(weights, x)}
    if torch is not None:
        candidates["pytorch eager"] = torch_infer(torch, weights, x)
    ref = candidates["numpy (hand-written)"]()
    check_agreement("W4 gradc output", g_call().numpy(), ref, 1e-4)
    if torch is not None:
        check_agreement("W4 pytorch output", candidates["pytorch eager"]().numpy(), ref, 1e-4)
    # A call takes well under a millisecond: time many more of them.
    return measure_interleaved(candidates, rounds=rounds, warmup=50, repeat=repeat * 25)


WORKLOADS = {"W1": ("W1 mlp-train", bench_w1), "W4": ("W4 mlp-infer-b1", bench_w4)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="W1,W4", help="comma-separated subset of W1,W4 (default: both)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds over the implementations")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per implementation per round (W4: x25)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is installed")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args(argv)

    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch is not installed: comparing against hand-written NumPy only")
    threads = numpy_threads()
    if torch is not None:
        torch.set_num_threads(threads)  # the same number of threads as NumPy's BLAS
    print(f"numpy {np.__version__} (BLAS threads: {threads})"
          + (f", torch {torch.__version__} (threads: {torch.get_num_threads()})" if torch is not None else ""))

    rows = []
    for key in [w.strip().upper() for w in args.workloads.split(",") if w.strip()]:
        if key not in WORKLOADS:
            parser.error(f"unknown workload {key!r}; choose from {', '.join(WORKLOADS)}")
        label, bench = WORKLOADS[key]
        for impl, summary in bench(torch, args.rounds, args.repeat).items():
            rows.append({"workload": label, "impl": impl, **summary})

    print()
    print_table(rows, baseline="pytorch eager" if torch is not None else "numpy (hand-written)")
    if args.json:
        write_json(args.json, rows, {"threads": threads, "torch": getattr(torch, "__version__", None)})
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
