"""Attention forward + backward, compiled: the fused `sdpa` primitive (F.scaled_dot_product_attention,
a block of queries at a time) against the same attention written by hand (softmax(q k^T / sqrt(d)) v,
which materialises the T x T scores) and against PyTorch's scaled_dot_product_attention, eager.

    python benchmarks/bench_attention.py [--rounds 5] [--repeat 10]

Batch 4, 8 heads, head dim 64, causal, float32; T = 128 and 512. Medians in ms per forward+backward
call, measured in alternating rounds in one run; ratios against the fused primitive."""
import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gradc  # noqa: E402
import gradc.nn.functional as F  # noqa: E402
from common import measure_interleaved, print_table  # noqa: E402


def manual(q, k, v):
    t = q.shape[-2]
    s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    s = s.masked_fill(gradc.triu(gradc.ones(t, t, dtype=gradc.bool), 1), float("-inf"))
    return s.softmax(-1) @ v


def gradc_step(attn):
    def step(q, k, v, w):
        out = attn(q, k, v)
        (out * w).sum().backward()
        return out
    return gradc.compile(step, fullgraph=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
    rows = []
    for t in (128, 512):
        rng = np.random.default_rng(0)
        arrays = [rng.standard_normal((4, 8, t, 64)).astype(np.float32) for _ in range(4)]
        q, k, v = (gradc.tensor(a, requires_grad=True) for a in arrays[:3])
        w = gradc.tensor(arrays[3])
        fused = gradc_step(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True))
        by_hand = gradc_step(manual)
        candidates = {"gradc compiled, sdpa primitive": lambda: fused(q, k, v, w),
                      "gradc compiled, manual attention": lambda: by_hand(q, k, v, w)}
        if torch is not None:
            tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in arrays[:3])
            tw = torch.tensor(arrays[3])

            def torch_step():
                out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
                (out * tw).sum().backward()
            candidates["pytorch eager sdpa"] = torch_step
        res = measure_interleaved(candidates, rounds=args.rounds, repeat=args.repeat)
        rows += [dict(workload=f"attention T={t}", impl=name, **r) for name, r in res.items()]
    print_table(rows, baseline="gradc compiled, sdpa primitive")


if __name__ == "__main__":
    main()
