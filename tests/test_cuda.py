"""The CUDA backend.

Without a GPU: every op-database row and the example models are lowered to CUDA; the generated
kernels are built as host C++ (one thread per block) and run with the generated host module on
NumPy, and must match eager results (conftest also compiles every generated source with nvcc).
With a GPU: the same programs run on the device and must match the NumPy backend."""
import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import nn, optim
from gradc.ops import OPS
from gradc.runtime import cuda_emulation
from gradc.testing import assert_close

from opdb import case_id, cases

needs_gpu = pytest.mark.skipif(not gradc.cuda.is_available(),
                               reason="needs a CUDA GPU with CuPy (pip install 'gradc[cuda]')")
needs_gxx = pytest.mark.skipif(not cuda_emulation.available(), reason="needs g++ to build kernels for the host")


@pytest.fixture(autouse=True, scope="module")
def _cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADC_CACHE_DIR", str(tmp_path_factory.mktemp("gradc_cache")))
        yield


def _first_samples():
    """One float32 case per op row (the first sample, which has dims, so that its elementwise work
    becomes generated kernels), skipping data-dependent indexing."""
    seen, out = set(), []
    for case in cases(dtypes=("float32",)):
        row, _, sample, _ = case
        key = sample.kwargs.get("key")
        keys = key if isinstance(key, tuple) else (key,)
        if row.name in seen or any(isinstance(k, np.ndarray) and k.dtype == np.bool_ for k in keys):
            continue
        seen.add(row.name)
        out.append(case)
    return out


CASES = _first_samples()


def _emulate(fn, *args):
    """(eager outputs, outputs of the generated CUDA program run on the host)."""
    prog = gradc.compile(fn, backend="cuda").lower(*args)
    assert prog.backend == "cuda" and "kernels.cu" in prog.source and "host.py" in prog.source
    arrays = [t._data.copy() for t in prog.resolve(list(args))]
    return prog, cuda_emulation.run(prog, arrays)


def _tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


@needs_gxx
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_generated_cuda_matches_eager(case):
    row, _, sample, dtype = case
    fn = lambda *xs: row.fn(*xs, **sample.kwargs)  # noqa: E731
    eager = _tuple(fn(*sample.tensors(dtype)))
    _, got = _emulate(fn, *sample.tensors(dtype))
    rtol, atol = row.tolerance(dtype)
    for e, g in zip(eager, got):
        assert g.shape == e.shape and g.dtype == e.dtype.np
        assert_close(gradc.tensor(g), e.detach(), rtol=max(rtol, 1e-5), atol=max(atol, 1e-5))


def _kernel_ops(prog):
    """The ops inside the generated kernels of a CUDA program (each kernel's `// group` header)."""
    ops = set()
    for line in prog.source["kernels.cu"].splitlines():
        if line.startswith("// group g"):
            ops.update(line.split(":", 1)[1].split("(")[0].split())
    return ops


def test_every_elementwise_primitive_reaches_a_generated_kernel():
    """The rows' cases, lowered to CUDA, put each elementwise primitive into a generated kernel, so
    the tests above run every device expression of templates/cuda/ops.j2 (a case whose values have
    no dims never becomes a kernel: its op would go untested on the device)."""
    seen = set()
    for row, _, sample, dtype in CASES:
        fn = lambda *xs: row.fn(*xs, **sample.kwargs)  # noqa: E731
        seen |= _kernel_ops(gradc.compile(fn, backend="cuda").lower(*sample.tensors(dtype)))
    missing = sorted(name for name, prim in OPS.items() if prim.elementwise and name not in seen)
    assert not missing, f"no op-database case puts these into a CUDA kernel: {missing}"


def _grad_fn(row, sample):
    diff = row.diff_args(sample)

    def step(*xs):
        outs = _tuple(row.fn(*xs, **sample.kwargs))
        loss = None
        for k, o in enumerate(outs):
            if o.requires_grad:
                w = gradc.tensor(np.random.default_rng(k).uniform(-1, 1, o.shape).astype(np.float32))
                term = (o * w).sum()
                loss = term if loss is None else loss + term
        loss.backward()
        return tuple(xs[i].grad for i in diff)
    return step, diff


GRAD_CASES = [c for c in CASES if c[0].diff_args(c[2])]


@needs_gxx
@pytest.mark.parametrize("case", GRAD_CASES, ids=case_id)
def test_generated_cuda_gradients_match_eager(case):
    row, _, sample, dtype = case
    step, diff = _grad_fn(row, sample)
    eager = step(*sample.tensors(dtype, requires_grad=diff))
    if any(g is None for g in eager):
        pytest.skip("output does not depend on every differentiable input")
    _, got = _emulate(step, *sample.tensors(dtype, requires_grad=diff))
    rtol, atol = row.tolerance(dtype)
    for e, g in zip(eager, got):
        assert_close(gradc.tensor(g), e, rtol=max(rtol, 1e-4), atol=max(atol, 1e-4))


class Block(nn.Module):
    def __init__(self, d=32, h=4, ff=64):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2, self.act = nn.Linear(d, ff), nn.Linear(ff, d), nn.GELU(approximate="tanh")

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.reshape(B, T, self.h, C // self.h).transpose(1, 2) for t in self.qkv(self.ln1(x)).split(C, -1))
        att = (q @ k.transpose(-2, -1)) * (1.0 / (C // self.h) ** 0.5)
        causal = gradc.arange(T).unsqueeze(1) >= gradc.arange(T).unsqueeze(0)
        y = (gradc.where(causal, att, float("-inf")).softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


def _models():
    gradc.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))
    sgd = optim.SGD(mlp.parameters(), lr=0.1, momentum=0.9)
    x, y = gradc.randn(16, 20), gradc.randint(0, 5, (16,))

    def mlp_step(x, y):
        sgd.zero_grad()
        loss = F.cross_entropy(mlp(x), y)
        loss.backward()
        sgd.step()
        return loss

    block = Block()
    adam = optim.Adam(block.parameters())
    xb = gradc.randn(2, 8, 32)

    def block_step(x):
        adam.zero_grad()
        loss = (block(x) ** 2).mean()
        loss.backward()
        adam.step()
        return loss

    C = 128
    ln_args = [gradc.randn(64, C, requires_grad=True), gradc.randn(C, requires_grad=True),
               gradc.randn(C, requires_grad=True), gradc.ones(C, requires_grad=True), gradc.zeros(C, requires_grad=True)]

    def ln_gelu(x, w, b, g, be):
        loss = F.layer_norm(F.gelu(x * w + b) + x, (C,), g, be).sum()
        loss.backward()
        return loss, x.grad, w.grad, b.grad, g.grad, be.grad

    mlp_step(x, y)     # optimizer state exists, so the traced step is the steady-state one
    block_step(xb)
    return {"mlp_step": (mlp_step, (x, y)), "block_step": (block_step, (xb,)), "ln_gelu": (ln_gelu, ln_args)}


@needs_gxx
@pytest.mark.parametrize("name", ["mlp_step", "block_step", "ln_gelu"])
def test_generated_cuda_models_match_numpy_backend(name):
    fn, args = _models()[name]
    numpy_prog = gradc.compile(fn, backend="numpy").lower(*args)
    want = numpy_prog.execute([t._data.copy() for t in numpy_prog.resolve(list(args))])
    prog, got = _emulate(fn, *args)
    assert prog.stats["fused_groups"] >= 1 and len(prog.kernels) >= 1
    # Reductions add in a different order (the host build of a kernel sums each row serially):
    # a loss near 0 that sums 8192 terms of size ~1 may differ by ~1e-4.
    for w, g in zip(want, got):
        assert_close(gradc.tensor(g), gradc.tensor(np.asarray(w)), rtol=1e-4, atol=1e-3)


def test_layer_norm_gelu_step_is_one_kernel():
    fn, args = _models()["ln_gelu"]
    prog = gradc.compile(fn, backend="cuda").lower(*args)
    names = [name for name, _ in prog.kernels]
    assert len(names) == 1, names
    src = prog.kernels[0][1]
    # row reductions as warp butterflies; sums over rows as per-block partials combined by `_fin`
    assert "gradc_warp_sum" in src and "atomicAdd" not in src
    assert prog.stats["launches"] == 1   # 64 rows: one block, no second pass over partials


def test_broadcast_operands_are_read_through_their_strides():
    def f(a, b):
        return (a * b + 1.0).tanh()
    prog = gradc.compile(f, backend="cuda").lower(gradc.randn(64, 63), gradc.randn(63))
    src = prog.kernels[0][1]
    assert "gradc_load4" not in src.split("#else")[0].split("#ifdef GRADC_DEVICE")[1]   # 63 per row: no quads


def test_lowering_needs_no_gpu_and_running_says_what_is_missing():
    fn, args = _models()["mlp_step"]
    prog = gradc.compile(fn, backend="cuda").lower(*args)
    assert prog.source["kernels.cu"].count("__global__") >= 1
    if not gradc.cuda.is_available():
        with pytest.raises(gradc.DeviceError, match="GPU|CuPy"):
            prog.execute([t._data for t in prog.resolve(list(args))])
        with pytest.raises(gradc.DeviceError, match="cuda"):
            gradc.compile(fn, backend="cuda")(*args)


def test_cuda_device_errors_without_gpu():
    if gradc.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert gradc.cuda.device_count() == 0
    with pytest.raises(gradc.DeviceError, match="CuPy|GPU"):
        gradc.ones(3).cuda()
    with pytest.raises(gradc.DeviceError):
        nn.Linear(2, 2).to("cuda")


# ---------------------------------------------------------------------- on a GPU
@needs_gpu
@pytest.mark.parametrize("name", ["mlp_step", "block_step", "ln_gelu"])
def test_cuda_programs_match_numpy_on_gpu(name):
    fn, args = _models()[name]
    numpy_prog = gradc.compile(fn, backend="numpy").lower(*args)
    want = numpy_prog.execute([t._data.copy() for t in numpy_prog.resolve(list(args))])
    prog = gradc.compile(fn, backend="cuda").lower(*args)
    import cupy
    got = prog.execute([cupy.asarray(t._data) for t in prog.resolve(list(args))])
    for w, g in zip(want, got):
        assert_close(gradc.tensor(cupy.asnumpy(g)), gradc.tensor(np.asarray(w)), rtol=1e-4, atol=1e-4)


@needs_gpu
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_eager_cuda_ops_match_cpu(case):
    row, _, sample, dtype = case
    cpu = _tuple(row.fn(*sample.tensors(dtype), **sample.kwargs))
    gpu = _tuple(row.fn(*[t.cuda() for t in sample.tensors(dtype)], **sample.kwargs))
    rtol, atol = row.tolerance(dtype)
    for c, g in zip(cpu, gpu):
        assert g.device.type == "cuda"
        assert_close(g.cpu(), c, rtol=max(rtol, 1e-5), atol=max(atol, 1e-5))


@needs_gpu
def test_compiled_training_on_gpu_matches_cpu():
    gradc.manual_seed(0)
    results = []
    for device in ("cpu", "cuda"):
        gradc.manual_seed(0)
        model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5)).to(device)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x, y = gradc.randn(16, 20).to(device), gradc.randint(0, 5, (16,)).to(device)

        @gradc.compile
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        results.append([step(x, y).item() for _ in range(5)])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4)
