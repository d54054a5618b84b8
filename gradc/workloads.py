"""The reference workloads W1-W4 and W1C, defined once for `gradc bench` and the benchmark scripts:
each builds a fresh gradc instance (fixed seed) and, when PyTorch is importable, the same computation
in PyTorch starting from the same weights.

  W1 mlp-train      MLP 784-512-512-10 (ReLU), batch 128, cross-entropy, SGD lr 0.01 momentum 0.9
  W1C mlp-cosine    W1 with a cosine learning-rate schedule (CosineAnnealingLR over 50 steps, stepped
                    after every step, outside the compiled step): the learning rate changes on every
                    call and is a program input
  W2 ln-gelu        y = layer_norm(gelu(x*w + b) + x) over (4096, 1024); loss = y.sum(); fwd + bwd
  W3 block-train    pre-LayerNorm transformer block (batch 8, seq 128, d 256, 4 heads, causal,
                    GELU-tanh MLP 1024), loss = mean(out**2), Adam lr 1e-3
  W4 mlp-infer-b1   W1's model, batch 1, inference under no_grad

`scale="small"` shrinks every size (for smoke tests); timings are only meaningful at "full"."""
import math

import numpy as np

import gradc
from gradc import nn, optim
import gradc.nn.functional as F


class Workload:
    """One workload: `build(scale)` returns a fresh (fn, args) for gradc; `build_torch(torch, scale)`
    the same computation in PyTorch from the same initial values, or None. A fn with an `after_call`
    attribute wants it called after each call, outside what is compiled (a learning-rate schedule's
    step, as training loops call it)."""

    def __init__(self, key, name, description, build, build_torch, calls_per_repeat=1):
        self.key, self.name, self.description = key, name, description
        self.build, self.build_torch = build, build_torch
        self.calls_per_repeat = calls_per_repeat   # sub-millisecond workloads time more calls

    @property
    def label(self):
        return f"{self.key} {self.name}"


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------- W1 / W4: MLP
def _mlp_sizes(scale):
    return (784, 512, 512, 10) if scale == "full" else (32, 16, 16, 4)


def _mlp(scale):
    gradc.manual_seed(0)
    s = _mlp_sizes(scale)
    return nn.Sequential(nn.Linear(s[0], s[1]), nn.ReLU(), nn.Linear(s[1], s[2]), nn.ReLU(), nn.Linear(s[2], s[3]))


def _torch_mlp(torch, model):
    layers = []
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for i, lin in enumerate(linears):
        t = torch.nn.Linear(lin.in_features, lin.out_features)
        _copy(torch, t.weight, lin.weight)
        _copy(torch, t.bias, lin.bias)
        layers.append(t)
        if i < len(linears) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _copy(torch, dst, src):
    with torch.no_grad():
        dst.copy_(torch.from_numpy(src.detach().numpy().copy()))


def _mlp_data(scale, batch):
    s = _mlp_sizes(scale)
    rng = _rng(1)
    return rng.standard_normal((batch, s[0]), dtype=np.float32), rng.integers(0, s[-1], size=batch)


def _w1(scale):
    model = _mlp(scale)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = _mlp_data(scale, 128 if scale == "full" else 8)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step, (gradc.from_numpy(x), gradc.from_numpy(y)), opt


def build_w1(scale="full"):
    return _w1(scale)[:2]


def _w1_torch(torch, scale):
    model = _torch_mlp(torch, _mlp(scale))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = _mlp_data(scale, 128 if scale == "full" else 8)

    def step(x, y):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step, (torch.from_numpy(x), torch.from_numpy(y)), opt


def build_w1_torch(torch, scale="full"):
    return _w1_torch(torch, scale)[:2]


COSINE_STEPS = 50


def build_w1c(scale="full"):
    step, args, opt = _w1(scale)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=COSINE_STEPS)
    step.after_call = sched.step   # the schedule steps between training steps, outside what is compiled
    return step, args


def build_w1c_torch(torch, scale="full"):
    step, args, opt = _w1_torch(torch, scale)
    step.after_call = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=COSINE_STEPS).step
    return step, args


def build_w4(scale="full"):
    model = _mlp(scale).eval()
    x, _ = _mlp_data(scale, 1)

    def infer(x):
        with gradc.no_grad():
            return model(x)
    return infer, (gradc.from_numpy(x),)


def build_w4_torch(torch, scale="full"):
    model = _torch_mlp(torch, _mlp(scale)).eval()
    x, _ = _mlp_data(scale, 1)

    def infer(x):
        with torch.no_grad():
            return model(x)
    return infer, (torch.from_numpy(x),)


# ---------------------------------------------------------------------------------------------- W2: LN(GELU)
def _w2_values(scale):
    rows, d = (4096, 1024) if scale == "full" else (64, 32)
    rng = _rng(2)
    return {"x": rng.standard_normal((rows, d), dtype=np.float32),
            "w": (1 + 0.1 * rng.standard_normal(d)).astype(np.float32),
            "b": (0.1 * rng.standard_normal(d)).astype(np.float32),
            "ln_w": (1 + 0.1 * rng.standard_normal(d)).astype(np.float32),
            "ln_b": (0.1 * rng.standard_normal(d)).astype(np.float32)}


def build_w2(scale="full"):
    v = _w2_values(scale)
    x, w, b = (gradc.tensor(v[k], requires_grad=True) for k in ("x", "w", "b"))
    ln = nn.LayerNorm(v["x"].shape[1])
    with gradc.no_grad():
        ln.weight.copy_(gradc.from_numpy(v["ln_w"]))
        ln.bias.copy_(gradc.from_numpy(v["ln_b"]))
    leaves = [w, b, ln.weight, ln.bias]

    def step(x):
        for t in [x] + leaves:
            t.grad = None
        y = ln(F.gelu(x * w + b) + x)
        loss = y.sum()
        loss.backward()
        return loss
    return step, (x,)


def build_w2_torch(torch, scale="full"):
    v = _w2_values(scale)
    x, w, b = (torch.tensor(v[k], requires_grad=True) for k in ("x", "w", "b"))
    ln = torch.nn.LayerNorm(v["x"].shape[1])
    with torch.no_grad():
        ln.weight.copy_(torch.from_numpy(v["ln_w"]))
        ln.bias.copy_(torch.from_numpy(v["ln_b"]))
    leaves = [w, b, ln.weight, ln.bias]

    def step(x):
        for t in [x] + leaves:
            t.grad = None
        y = ln(torch.nn.functional.gelu(x * w + b) + x)
        loss = y.sum()
        loss.backward()
        return loss
    return step, (x,)


# ---------------------------------------------------------------------------------------------- W3: block
def _w3_sizes(scale):
    return dict(batch=8, seq=128, d=256, heads=4, hidden=1024) if scale == "full" else \
        dict(batch=2, seq=8, d=16, heads=2, hidden=32)


class Block(nn.Module):
    """A pre-LayerNorm transformer block with causal self-attention."""

    def __init__(self, d, heads, hidden, seq):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.act = nn.GELU(approximate="tanh")
        self.register_buffer("mask", gradc.from_numpy(_causal_mask(seq)))

    def forward(self, x):
        b, t, d = x.shape
        hd = d // self.heads
        qkv = self.qkv(self.ln1(x)).reshape(b, t, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = F.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(hd)) + self.mask, dim=-1)
        y = (att @ v).permute(0, 2, 1, 3).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


def _causal_mask(seq):
    return np.triu(np.full((seq, seq), -1e9, dtype=np.float32), 1)


def _w3_model(scale):
    s = _w3_sizes(scale)
    gradc.manual_seed(3)
    return Block(s["d"], s["heads"], s["hidden"], s["seq"]), s


def _w3_input(s):
    return _rng(3).standard_normal((s["batch"], s["seq"], s["d"]), dtype=np.float32)


def build_w3(scale="full"):
    model, s = _w3_model(scale)
    opt = optim.Adam(model.parameters(), lr=1e-3)

    def step(x):
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    return step, (gradc.from_numpy(_w3_input(s)),)


def build_w3_torch(torch, scale="full"):
    g, s = _w3_model(scale)
    tf = torch.nn.functional
    m = {name: torch.nn.Parameter(torch.from_numpy(p.detach().numpy().copy())) for name, p in g.named_parameters()}
    mask = torch.from_numpy(_causal_mask(s["seq"]))
    heads, d = s["heads"], s["d"]
    opt = torch.optim.Adam(list(m.values()), lr=1e-3)

    def block(x):
        b, t, _ = x.shape
        hd = d // heads
        h = tf.layer_norm(x, (d,), m["ln1.weight"], m["ln1.bias"])
        qkv = tf.linear(h, m["qkv.weight"], m["qkv.bias"]).reshape(b, t, 3, heads, hd).permute(2, 0, 3, 1, 4)
        att = torch.softmax(qkv[0] @ qkv[1].transpose(-2, -1) * (1.0 / math.sqrt(hd)) + mask, dim=-1)
        y = (att @ qkv[2]).permute(0, 2, 1, 3).reshape(b, t, d)
        x = x + tf.linear(y, m["proj.weight"], m["proj.bias"])
        h = tf.gelu(tf.linear(tf.layer_norm(x, (d,), m["ln2.weight"], m["ln2.bias"]), m["fc1.weight"], m["fc1.bias"]),
                    approximate="tanh")
        return x + tf.linear(h, m["fc2.weight"], m["fc2.bias"])

    def step(x):
        opt.zero_grad()
        loss = (block(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    return step, (torch.from_numpy(_w3_input(s)),)


WORKLOADS = {w.key: w for w in (
    Workload("W1", "mlp-train", "MLP 784-512-512-10, batch 128, cross-entropy, SGD momentum; one training step",
             build_w1, build_w1_torch),
    Workload("W1C", "mlp-cosine", "W1 with a cosine learning-rate schedule stepped every call (the lr is a "
             "program input: no retrace)", build_w1c, build_w1c_torch),
    Workload("W2", "ln-gelu", "layer_norm(gelu(x*w + b) + x) on (4096, 1024), sum, forward + backward",
             build_w2, build_w2_torch),
    Workload("W3", "block-train", "pre-LN transformer block (8x128x256, 4 heads, causal), Adam; one training step",
             build_w3, build_w3_torch),
    Workload("W4", "mlp-infer-b1", "W1's MLP, batch 1, no_grad inference; latency per call",
             build_w4, build_w4_torch, calls_per_repeat=25),
)}
