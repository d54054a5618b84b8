"""Layer benchmark: whole training steps of a conv net and of an LSTM language model, gradc eager,
gradc compiled and PyTorch eager (when installed), measured side by side in one run.

  L1 convnet-train  PyTorch's MNIST example net without dropout (conv 1->32 3x3, ReLU, conv 32->64
                    3x3, ReLU, max-pool 2, fc 9216->128, ReLU, fc 128->10), batch 64, 1x28x28,
                    cross-entropy, SGD lr 0.01 momentum 0.9; one call = zero_grad + forward +
                    backward + update
  L2 lstm-lm-train  2-layer LSTM language model (embedding 200, hidden 200, decoder to the vocabulary),
                    batch 32, sequence 35, cross-entropy, SGD lr 0.1 (the time loop is unrolled
                    when compiled)

All candidates start from the same weights (a PyTorch state dict loaded into gradc); the loss of
each one's third step must agree before anything is timed.

Usage: python benchmarks/bench_layers.py [--workloads L1,L2] [--rounds 3] [--repeat 5] [--vocab 10000]
                                         [--json FILE]

On a machine whose cores are shared (load above the core count), multithreaded BLAS stalls on
spinning threads far more than PyTorch's pool does and the ratios measure the neighbours; run
with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 there, which times every candidate on one thread.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import measure_interleaved, print_table, write_json  # noqa: E402

import gradc  # noqa: E402
import gradc.nn.functional as F  # noqa: E402
from gradc import nn, optim  # noqa: E402


def convnet(lib):
    return lib.Sequential(lib.Conv2d(1, 32, 3, 1), lib.ReLU(), lib.Conv2d(32, 64, 3, 1), lib.ReLU(), lib.MaxPool2d(2),
                          lib.Flatten(), lib.Linear(9216, 128), lib.ReLU(), lib.Linear(128, 10))


def lstm_lm(lib, vocab, emb=200, hidden=200, layers=2):
    class LM(lib.Module):
        def __init__(self):
            super().__init__()
            self.encoder = lib.Embedding(vocab, emb)
            self.rnn = lib.LSTM(emb, hidden, num_layers=layers)
            self.decoder = lib.Linear(hidden, vocab)

        def forward(self, idx):
            out, _ = self.rnn(self.encoder(idx))
            return self.decoder(out).reshape(-1, vocab)
    return LM()


def load_torch_state(g_model, t_model):
    g_model.load_state_dict({k: v.detach().numpy().copy() for k, v in t_model.state_dict().items()})


def gradc_step(model, opt, x, y):
    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def torch_step(torch, model, opt, x, y):
    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def candidates_for(torch, build, make_opt, make_torch_opt, x, y):
    """{name: step} for gradc eager, gradc compiled and PyTorch eager, all from the same weights."""
    torch.manual_seed(0)
    t_model = build(torch.nn)
    out = {}
    for name in ("gradc eager", "gradc compiled"):
        m = build(nn)
        load_torch_state(m, t_model)
        step = gradc_step(m, make_opt(m.parameters()), gradc.tensor(x), gradc.tensor(y))
        out[name] = gradc.compile(step) if name == "gradc compiled" else step
    tx, ty = torch.tensor(x), torch.tensor(y)
    out["pytorch eager"] = torch_step(torch, t_model, make_torch_opt(t_model.parameters()), tx, ty)
    return out


def agree_and_warm(cands):
    """Three steps each: compiled programs are traced and built here (reported), and the third
    losses must agree (the same maths is being timed)."""
    third, build_s = {}, None
    for name, step in cands.items():
        t0 = time.perf_counter()
        losses = [float(step().detach().item()) for _ in range(3)]
        if name == "gradc compiled":
            build_s = time.perf_counter() - t0
        third[name] = losses[-1]
    ref = third["pytorch eager"]
    for name, loss in third.items():
        if not np.isclose(loss, ref, rtol=1e-3, atol=1e-4):
            raise SystemExit(f"third-step loss of {name} is {loss}, PyTorch's {ref}: not benchmarking different maths")
    return build_s


def bench_l1(torch, rounds, repeat):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    cands = candidates_for(torch, convnet, lambda p: optim.SGD(p, lr=0.01, momentum=0.9),
                           lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), x, y)
    build_s = agree_and_warm(cands)
    return measure_interleaved(cands, rounds=rounds, warmup=2, repeat=repeat), build_s


def bench_l2(torch, rounds, repeat, vocab):
    rng = np.random.default_rng(0)
    seq = rng.integers(0, vocab, (36, 32))
    x, y = seq[:-1], seq[1:].reshape(-1)
    cands = candidates_for(torch, lambda lib: lstm_lm(lib, vocab), lambda p: optim.SGD(p, lr=0.1),
                           lambda p: torch.optim.SGD(p, lr=0.1), x, y)
    build_s = agree_and_warm(cands)
    return measure_interleaved(cands, rounds=rounds, warmup=2, repeat=repeat), build_s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="L1,L2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--vocab", type=int, default=10000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        raise SystemExit("bench_layers needs PyTorch for the shared initial weights and the comparison")
    rows = []
    names = {"L1": "L1 convnet-train", "L2": "L2 lstm-lm-train"}
    for w in args.workloads.split(","):
        if w == "L1":
            res, build_s = bench_l1(torch, args.rounds, args.repeat)
        elif w == "L2":
            res, build_s = bench_l2(torch, args.rounds, args.repeat, args.vocab)
        else:
            raise SystemExit(f"unknown workload {w!r}; choose from L1, L2")
        print(f"{names[w]}: compiled program traced and built in {build_s:.1f} s (first 3 calls)")
        rows += [{"workload": names[w], "impl": impl, **r} for impl, r in res.items()]
    print_table(rows, baseline="pytorch eager")
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
