"""Mixed precision: the autocast policy (eager and traced alike), GradScaler against hand-computed
scales and against torch.amp.GradScaler, amp training against float32 training, compiled amp
against eager amp, cast CSE, saved-activation bytes (prog.stats and tracemalloc), and float32
accumulation of float16 sums in compiled code."""
import gc
import math
import threading
import tracemalloc

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn, optim
from gradc.amp import AmpError, GradScaler, autocast

F16, F32, F64 = gradc.float16, gradc.float32, gradc.float64
INF = float("inf")


# ---------------------------------------------------------------------- models and data
def spirals(n_per_class, turns=1.5, noise=0.2, seed=0):
    """The two-spirals data of examples/train_mlp.py."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.0, 1.0, n_per_class)) * turns * 2 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (turns * 2 * np.pi) * 4
    x = np.concatenate([arm, -arm]) + rng.normal(0.0, noise, (2 * n_per_class, 2))
    y = np.concatenate([np.zeros(n_per_class), np.ones(n_per_class)]).astype(np.int64)
    order = rng.permutation(2 * n_per_class)
    return x[order].astype(np.float32), y[order]


def example_mlp():
    """The model of examples/train_mlp.py."""
    return nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))


class Block(nn.Module):
    """A pre-LayerNorm transformer block: multi-head self-attention and a GELU MLP, both residual."""

    def __init__(self, d=32, heads=4, hidden=64):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1) * (1.0 / math.sqrt(d // self.heads))).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class BlockClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.block, self.head = Block(), nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.block(x).mean(1))


SPIRAL_X, SPIRAL_Y = spirals(1000)
_rng = np.random.default_rng(1)
SEQ_X = _rng.standard_normal((256, 8, 32)).astype(np.float32)
SEQ_Y = SEQ_X[:, :, :4].mean(1).argmax(1)


def batches(x, y, size):
    """Batch i (a fixed random draw); i = -1 is the whole set."""
    def get(i):
        idx = np.arange(len(x)) if i < 0 else np.random.default_rng(i).choice(len(x), size, replace=False)
        return gradc.from_numpy(x[idx]), gradc.from_numpy(y[idx])
    return get


def train(model_fn, data, steps, amp, compiled=False, poison_steps=()):
    """Adam training with autocast + GradScaler when amp; returns (full-data loss, scales, model).
    At poison_steps the loss gets an inf term, so every gradient of the first layer is inf."""
    gradc.manual_seed(0)
    model = model_fn()
    opt = optim.Adam(model.parameters(), lr=0.01)
    scaler = GradScaler(enabled=amp)
    first = next(iter(model.parameters()))

    def step(x, y, poison):
        opt.zero_grad()
        with autocast(enabled=amp):
            loss = F.cross_entropy(model(x), y) + first.sum() * poison
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss

    fn = gradc.compile(step, fullgraph=True) if compiled else step
    scales = []
    for i in range(steps):
        fn(*data(i), gradc.tensor(INF if i in poison_steps else 0.0))
        scales.append(scaler.get_scale())
    x_all, y_all = data(-1)
    with gradc.no_grad():
        loss = F.cross_entropy(model(x_all), y_all).item()
    return loss, scales, model, fn


# ---------------------------------------------------------------------- the policy
def test_policy_table_comes_from_the_op_table():
    table = gradc.amp.policy()
    assert table["fp16"] == ["matmul", "window_matmul"]   # a convolution is its window product, as in autocast
    assert {"exp", "log", "pow", "sum", "max", "sub"} <= set(table["fp32"])
    assert {"tan", "asin", "acos", "sinh", "cosh"} <= set(table["fp32"])   # PyTorch's autocast float32 list
    assert {"add", "mul", "div", "where", "tanh", "erf", "reshape", "cast"} <= set(table["follow"])
    assert {"atan", "atan2", "asinh", "erfc", "lgamma", "hypot", "fmax"} <= set(table["follow"])
    names = [n for group in table.values() for n in group]
    assert sorted(names) == sorted(gradc.ops.OPS) and len(names) == len(set(names))


def _categories(x32, w32, x16):
    """(op, result) per category of the README table, computed under autocast."""
    lin = nn.Linear(w32.shape[1], w32.shape[0])
    b3 = gradc.randn(2, x32.shape[0], x32.shape[1])
    return {
        "fp16": {"matmul": x32 @ w32.T, "mm": gradc.mm(x32, w32.T), "bmm": b3 @ b3.transpose(1, 2),
                 "F.linear": F.linear(x32, w32), "nn.Linear": lin(x32), "mixed matmul": x16 @ w32.T},
        "fp32": {"sum": x16.sum(), "mean": x16.mean(1), "amax": x16.amax(0), "var": x16.var(1),
                 "softmax": x16.softmax(1), "log_softmax": x16.log_softmax(1),
                 "layer_norm": F.layer_norm(x16, x16.shape[1:]), "exp": x16.exp(), "log": x16.abs().log(),
                 "pow": x16 ** 3.0, "sub": x16 - x16, "tan": x16.tan(), "sinh": x16.sinh(), "mse_loss": F.mse_loss(x16, x16 * 0.5),
                 "cross_entropy": F.cross_entropy(x16, gradc.zeros(x16.shape[0], dtype=gradc.int64))},
        "follow16": {"add": x16 + x16, "mul": x16 * 2.0, "relu": F.relu(x16), "gelu": F.gelu(x16),
                     "tanh": x16.tanh(), "where": gradc.where(x16 > 0, x16, 0.0), "reshape": x16.reshape(-1),
                     "atan2": gradc.atan2(x16, x16), "fmax": gradc.fmax(x16, x16)},
        "follow32": {"add": x32 + x32, "tanh": x32.tanh(), "gelu": F.gelu(x32)},
    }


def test_autocast_dtype_of_each_category_follows_the_table():
    gradc.manual_seed(0)
    x32, w32 = gradc.randn(6, 5), gradc.randn(3, 5)
    x16 = x32.half()
    want = {"fp16": F16, "fp32": F32, "follow16": F16, "follow32": F32}
    with autocast():
        got = _categories(x32, w32, x16)
    for cat, results in got.items():
        for name, t in results.items():
            assert t.dtype is want[cat], f"{name}: {t.dtype!r}, the table says {want[cat]!r}"
    # float64 is never touched; outside the region nothing is cast
    with autocast():
        assert (x32.double() @ w32.double().T).dtype is F64
    assert (x32 @ w32.T).dtype is F32 and x16.sum().dtype is F16


def test_autocast_forms_nesting_and_threads():
    a = gradc.randn(4, 4)

    @autocast()
    def called():
        return (a @ a).dtype

    @autocast
    def bare():
        return (a @ a).dtype

    assert called() is F16 and bare() is F16 and (a @ a).dtype is F32
    with autocast():
        assert gradc.amp.is_autocast_enabled()
        with autocast(enabled=False):
            assert (a @ a).dtype is F32 and not gradc.amp.is_autocast_enabled()
        assert (a @ a).dtype is F16
        seen = []
        worker = threading.Thread(target=lambda: seen.append((a @ a).dtype))
        worker.start()
        worker.join()
        assert seen == [F32]  # autocast state is per thread, as grad mode is
    assert not gradc.amp.is_autocast_enabled()
    with autocast("cpu"):  # torch.autocast's device_type first, accepted
        assert (a @ a).dtype is F16


def test_bfloat16_is_refused_with_a_reason():
    for dtype in ("bfloat16", gradc.float64):
        with pytest.raises(gradc.DTypeError, match="bfloat16"):
            autocast(dtype=dtype)


def test_gradients_flow_back_through_the_casts_in_parameter_dtypes():
    gradc.manual_seed(0)
    model = BlockClassifier()
    x, y = batches(SEQ_X, SEQ_Y, 16)(0)
    with autocast():
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    assert logits.dtype is F16 and loss.dtype is F32
    loss.backward()
    amp_grads = {n: p.grad for n, p in model.named_parameters()}
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.dtype is F32 and amp_grads[name].dtype is F32, name
        ref = p.grad.numpy()
        np.testing.assert_allclose(amp_grads[name].numpy(), ref, rtol=0.05, atol=0.02 * np.abs(ref).max(),
                                   err_msg=name)


# ---------------------------------------------------------------------- GradScaler
def _scripted_run(compiled):
    """growth_interval=2, init 8: overflow (inf gradients) at steps 2 and 4."""
    gradc.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = optim.Adam(model.parameters(), lr=0.1)
    scaler = GradScaler(init_scale=8.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=2)
    x = gradc.randn(4, 3)

    def step(poison):
        opt.zero_grad()
        loss = (model(x) ** 2.0).mean() + model.weight.sum() * poison
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    fn = gradc.compile(step, fullgraph=True) if compiled else step
    scales, trackers, params = [], [], []
    for i in range(8):
        before = [p.detach().numpy().copy() for p in model.parameters()]
        fn(gradc.tensor(INF if i in (2, 4) else 0.0))
        scales.append(scaler.get_scale())
        trackers.append(scaler.state_dict()["_growth_tracker"])
        params.append([not np.array_equal(b, p.detach().numpy()) for b, p in zip(before, model.parameters())])
    return scales, trackers, params, opt, model, fn


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_grad_scaler_scripted_sequence_gives_the_hand_computed_scales(compiled):
    scales, trackers, changed, opt, model, fn = _scripted_run(compiled)
    # clean steps count up to growth_interval=2 and double the scale; an overflow halves it and resets
    assert scales == [8.0, 16.0, 8.0, 8.0, 4.0, 4.0, 8.0, 8.0]
    assert trackers == [1, 0, 0, 1, 0, 1, 0, 1]
    assert [all(c) for c in changed] == [True, True, False, True, False, True, True, True]
    assert [any(c) for c in changed] == [True, True, False, True, False, True, True, True]
    assert opt.state[model.weight]["step"].item() == 6.0  # skipped steps leave Adam's state alone
    if compiled:
        # the skip is data, not a retrace: the same program runs clean and overflowing steps
        assert fn.trace_count <= 2


def test_grad_scaler_unscales_exactly_and_skips_like_a_plain_run():
    """With a power-of-two scale, scaled-and-unscaled gradients equal the plain ones bit for bit, so
    the scaler run equals a plain SGD run that leaves out the overflowing steps."""
    def run(use_scaler):
        gradc.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1))
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        scaler = GradScaler(init_scale=2.0 ** 10, growth_interval=3)
        for i in range(7):
            x = gradc.tensor(np.random.default_rng(i).standard_normal((4, 3)).astype(np.float32))
            bad = i in (0, 4)
            opt.zero_grad()
            loss = model(x).square().mean()
            if use_scaler:
                loss = loss + model[0].weight.sum() * (INF if bad else 0.0)
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                scaler.step(opt)
                scaler.update()
            elif not bad:
                loss.backward()
                opt.step()
        return [p.detach().numpy() for p in model.parameters()], opt

    scaled, opt_s = run(True)
    plain, opt_p = run(False)
    for a, b in zip(scaled, plain):
        np.testing.assert_array_equal(a, b)
    assert len(opt_s.state) == len(opt_p.state)  # the skipped first step created no momentum buffers


def test_grad_scaler_misuse_raises():
    model = nn.Linear(2, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    scaler = GradScaler()
    with pytest.raises(AmpError, match="no inf checks"):
        scaler.update()
    scaler.scale(model(gradc.ones(1, 2)).sum()).backward()
    scaler.unscale_(opt)
    with pytest.raises(AmpError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(AmpError, match="after step"):
        scaler.unscale_(opt)
    with pytest.raises(AmpError, match="already been called since the last update"):
        scaler.step(opt)
    scaler.update()
    scaler.scale(model(gradc.ones(1, 2)).sum()).backward()
    scaler.step(opt)  # a new iteration is allowed again
    scaler.update()
    with pytest.raises(RuntimeError):  # AmpError is a RuntimeError, as PyTorch raises
        scaler.update()
    model.weight.grad = gradc.zeros(1, 2, dtype=F16)
    with pytest.raises(gradc.DTypeError, match="float16 gradients"):
        scaler.unscale_(opt)


def test_grad_scaler_disabled_is_a_no_op():
    gradc.manual_seed(0)
    model = nn.Linear(2, 1)
    opt = optim.SGD(model.parameters(), lr=0.5)
    scaler = GradScaler(enabled=False)
    loss = model(gradc.ones(3, 2)).sum()
    assert scaler.scale(loss) is loss
    loss.backward()
    grad = model.weight.grad.numpy().copy()
    before = model.weight.detach().numpy().copy()
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    np.testing.assert_array_equal(model.weight.detach().numpy(), before - 0.5 * grad)
    assert scaler.get_scale() == 1.0 and scaler.state_dict() == {} and not scaler.is_enabled()


def test_grad_scaler_state_dict_round_trip():
    a = GradScaler(init_scale=256.0, growth_factor=4.0, backoff_factor=0.25, growth_interval=7)
    a.scale(gradc.ones(()))
    a._growth_tracker.fill_(3)
    state = a.state_dict()
    assert state == {"scale": 256.0, "growth_factor": 4.0, "backoff_factor": 0.25, "growth_interval": 7,
                     "_growth_tracker": 3}
    b = GradScaler()
    b.load_state_dict(state)
    assert b.state_dict() == state
    assert [b.get_growth_factor(), b.get_backoff_factor(), b.get_growth_interval()] == [4.0, 0.25, 7]
    with pytest.raises(AmpError, match="empty"):
        GradScaler().load_state_dict(GradScaler(enabled=False).state_dict())
    assert GradScaler().scale([gradc.ones(()), (gradc.ones(()) * 2.0,)])[1][0].item() == 2.0 ** 17


@pytest.mark.parametrize("opt_name", ["sgd_dampening", "adam"])
def test_grad_scaler_equals_torch(opt_name):
    torch = pytest.importorskip("torch")
    gradc.manual_seed(0)
    g_model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    t_model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    with torch.no_grad():
        for tp, gp in zip(t_model.parameters(), g_model.parameters()):
            tp.copy_(torch.from_numpy(gp.detach().numpy().copy()))
    if opt_name == "adam":
        g_opt, t_opt = optim.Adam(g_model.parameters(), lr=0.05), torch.optim.Adam(t_model.parameters(), lr=0.05)
    else:  # dampening makes a skipped first step observable: torch creates no momentum buffer then
        g_opt = optim.SGD(g_model.parameters(), lr=0.1, momentum=0.9, dampening=0.5)
        t_opt = torch.optim.SGD(t_model.parameters(), lr=0.1, momentum=0.9, dampening=0.5)
    kwargs = dict(init_scale=2.0 ** 8, growth_factor=2.0, backoff_factor=0.5, growth_interval=2)
    g_scaler, t_scaler = GradScaler(**kwargs), torch.amp.GradScaler("cpu", **kwargs)
    rng = np.random.default_rng(0)
    for i in range(10):
        x = rng.standard_normal((5, 4)).astype(np.float32)
        poison = INF if i in (0, 3, 4) else 0.0
        for opt, model, scaler, lib in ((g_opt, g_model, g_scaler, gradc), (t_opt, t_model, t_scaler, torch)):
            opt.zero_grad()
            first = next(iter(model.parameters()))
            loss = (model(lib.tensor(x)) ** 2).mean() + first.sum() * poison
            scaler.scale(loss).backward()
            if i % 2:
                scaler.unscale_(opt)
            scaler.step(opt)
            scaler.update()
        assert g_scaler.get_scale() == t_scaler.get_scale(), i
        assert g_scaler.state_dict() == t_scaler.state_dict(), i
        for gp, tp in zip(g_model.parameters(), t_model.parameters()):
            np.testing.assert_allclose(gp.detach().numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- training with amp
def test_example_mlp_trained_with_amp_reaches_the_fp32_loss():
    """100 Adam steps on the two spirals: amp's full-data loss within 0.03 of float32's (the
    starting loss is about 0.69)."""
    data = batches(SPIRAL_X, SPIRAL_Y, 64)
    fp32, _, _, _ = train(example_mlp, data, 100, amp=False)
    amp, scales, _, _ = train(example_mlp, data, 100, amp=True)
    assert fp32 < 0.15 and abs(amp - fp32) < 0.03, (fp32, amp)
    assert scales[-1] >= 2.0 ** 16  # no overflow on this problem: the scale never backed off


def test_transformer_block_trained_with_amp_reaches_the_fp32_loss():
    """15 Adam steps on a sequence task: amp's full-data loss within 2% of float32's."""
    data = batches(SEQ_X, SEQ_Y, 64)
    fp32, _, _, _ = train(BlockClassifier, data, 15, amp=False)
    amp, _, _, _ = train(BlockClassifier, data, 15, amp=True)
    assert fp32 < 0.6 and abs(amp - fp32) < 0.02 * fp32, (fp32, amp)


# ---------------------------------------------------------------------- the compiler
def test_compile_amp_is_tracing_under_autocast():
    gradc.manual_seed(0)
    model = BlockClassifier()
    x = gradc.from_numpy(SEQ_X[:16])
    with autocast():
        eager = model(x)
    compiled = gradc.compile(model, amp="fp16")
    out = compiled(x)
    assert out.dtype is F16 and eager.dtype is F16
    np.testing.assert_allclose(out.detach().numpy().astype(np.float32), eager.detach().numpy().astype(np.float32),
                               rtol=1e-2, atol=1e-2)
    # the same graph whether the option asks for amp or the caller's autocast region does
    ambient = gradc.compile(model)
    with autocast():
        traced_under = ambient.lower(x)
    assert traced_under.stats["graph_hash"] == compiled.lower(x).stats["graph_hash"]
    # autocast state is part of the call signature: leaving the region retraces
    plain = ambient(x)
    with autocast():
        assert ambient(x).dtype is F16
    assert plain.dtype is F32 and ambient.trace_count == 3  # lower() and one trace per autocast state


@pytest.mark.parametrize("model_fn,data,steps", [
    (example_mlp, batches(SPIRAL_X, SPIRAL_Y, 64), 12),
    (BlockClassifier, batches(SEQ_X, SEQ_Y, 32), 5),
], ids=["mlp", "transformer_block"])
def test_compiled_amp_training_equals_eager_amp(model_fn, data, steps):
    """Whole training steps (autocast, GradScaler with an overflow at step 1, Adam) compiled with
    fullgraph=True, so nothing in them reads a value back to the host."""
    e_loss, e_scales, e_model, _ = train(model_fn, data, steps, amp=True, poison_steps=(1,))
    c_loss, c_scales, c_model, fn = train(model_fn, data, steps, amp=True, compiled=True, poison_steps=(1,))
    assert c_scales == e_scales and e_scales[1] == 2.0 ** 15
    for (name, ep), cp in zip(e_model.named_parameters(), c_model.parameters()):
        c, e = cp.detach().numpy(), ep.detach().numpy()
        if name.endswith("qkv.bias"):
            # The key bias's gradient is zero in exact arithmetic (softmax ignores a shift shared by
            # all keys), so what it gets is float16 rounding noise, which Adam scales up to +-lr
            # steps in either program; compare the query and value biases only.
            d = e.shape[0] // 3
            c, e = np.concatenate([c[:d], c[2 * d:]]), np.concatenate([e[:d], e[2 * d:]])
        np.testing.assert_allclose(c, e, rtol=1e-2, atol=1e-3, err_msg=name)
    assert abs(c_loss - e_loss) < 1e-2 * max(e_loss, 0.1)
    assert fn.trace_count <= 2  # the first step creates Adam's state (a one-shot program), then one program


def _casts_by_input(graph, slot):
    """Cast nodes that read input `slot` directly or through views."""
    frontier, casts = [graph.inputs[slot]], []
    while frontier:
        for v in graph.users(frontier.pop()):
            op = graph.node(v)["op"]
            if op in ("permute", "reshape", "expand"):
                frontier.append(v)
            elif op == "cast":
                casts.append(v)
    return casts


def test_cse_casts_each_weight_once():
    """A layer used twice in a training step: tracing casts its weight once per use, CSE merges the
    casts, so the forward casts each weight once (the backward reads that cast, or the recompute
    pass re-casts it once instead of keeping it alive)."""
    from gradc.passes.simplify import simplify
    gradc.manual_seed(0)
    lin, head = nn.Linear(16, 16), nn.Linear(16, 3)
    opt = optim.SGD(list(lin.parameters()) + list(head.parameters()), lr=0.1)
    x, y = gradc.randn(8, 16), gradc.randint(0, 3, (8,))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(head(F.relu(lin(F.relu(lin(x))))), y)
        loss.backward()
        opt.step()
        return loss

    compiled = gradc.compile(step, amp="fp16")
    tracer, _, _ = compiled._trace((x, y), {}, lowering=True)
    graph = tracer.graph
    slots = {name: next(i for i, b in enumerate(tracer.bindings) if b.kind == "state" and b.ref is t)
             for name, t in (("lin.weight", lin.weight), ("head.weight", head.weight))}
    assert len(_casts_by_input(graph, slots["lin.weight"])) == 2  # one per call of lin
    counts = simplify(graph)
    assert counts["cse"] >= 1
    for name, slot in slots.items():
        assert len(_casts_by_input(graph, slot)) == 1, name
    prog = compiled.lower(x, y)
    assert prog.stats["simplify"]["cse"] >= 1
    for name, slot in slots.items():
        casts = _casts_by_input(prog.ir, slot)
        forward = [c for c in casts if prog.ir.node(c).get("phase") not in ("backward", "recompute")]
        assert len(forward) == 1 and len(casts) <= 2, name


def _gelu_mlp():
    return nn.Sequential(nn.Linear(16, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 4))


@pytest.mark.parametrize("model_fn,x", [
    (_gelu_mlp, np.random.default_rng(0).standard_normal((256, 16)).astype(np.float32)),
    (example_mlp, SPIRAL_X[:512]),
    (BlockClassifier, SEQ_X[:32]),
], ids=["gelu_mlp", "example_mlp", "transformer_block"])
def test_saved_activation_bytes_with_amp_at_most_0_6_of_fp32(model_fn, x):
    """prog.stats["saved_activation_bytes"]: bytes of the forward values that backward nodes read,
    after the recompute pass, for a whole compiled training step."""
    gradc.manual_seed(0)
    model = model_fn()
    opt = optim.SGD(model.parameters(), lr=0.01)
    x = gradc.from_numpy(x)
    y = gradc.zeros(x.shape[0], dtype=gradc.int64)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    saved = {amp: gradc.compile(step, amp=amp).lower(x, y).stats["saved_activation_bytes"] for amp in (None, "fp16")}
    assert 0 < saved["fp16"] <= 0.6 * saved[None], saved


def test_saved_activation_bytes_match_tracemalloc():
    """Compiled forward, eager backward: the forward program hands its saved activations to the
    backward program. The bytes tracemalloc sees held after the forward match the program's stats,
    and amp holds at most 0.6x what float32 holds."""
    gradc.manual_seed(0)
    model = _gelu_mlp()
    x, y = gradc.randn(1024, 16), gradc.randint(0, 4, (1024,))
    held, stats = {}, {}
    for amp in (None, "fp16"):
        forward = gradc.compile(lambda x, y: F.cross_entropy(model(x), y), amp=amp)
        forward(x, y).backward()  # compile, load and run once, so the measured call allocates only its results
        stats[amp] = forward.lower(x, y).stats["saved_activation_bytes"]
        model.zero_grad()
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            loss = forward(x, y)
            held[amp] = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        loss.backward()
        assert stats[amp] <= held[amp] <= stats[amp] * 1.02 + 16384, (amp, stats[amp], held[amp])
    assert held["fp16"] <= 0.6 * held[None], held


def test_compiled_float16_sums_accumulate_in_float32():
    """Row sums of float16 stay out of fused groups (whose blocks would add in float16): compiled
    equals eager, which accumulates in float32."""
    x = gradc.tensor(np.random.default_rng(0).uniform(0.9, 1.1, (4096, 8)).astype(np.float16))

    def f(x):
        return (x * 1.5).sum(0), (x * 1.5).sum(1), x.sum()

    compiled = gradc.compile(f)
    for e, c in zip(f(x), compiled(x)):
        np.testing.assert_array_equal(c.numpy(), e.numpy())
    exact = (x.numpy().astype(np.float64) * 1.5).sum(0)
    np.testing.assert_allclose(compiled(x)[0].numpy().astype(np.float64), exact, rtol=1e-3)
