"""CUDA kernels rendered from the kernel IR, checked on the host (each kernel runs its real grid and
block, phases as loops over the block's threads, warp shuffles emulated) and, through conftest,
compiled with `nvcc -ptx` for sm_80 and sm_90 wherever nvcc exists."""
import re

import numpy as np
import pytest

import gradc
import gradc.nn.functional as F
from gradc import optim
from gradc.codegen import cuda_kernels
from gradc.runtime import cuda_emulation

pytestmark = pytest.mark.skipif(not cuda_emulation.available(), reason="needs g++ to build kernels for the host")


@pytest.fixture(autouse=True, scope="module")
def _cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADC_CACHE_DIR", str(tmp_path_factory.mktemp("gradc_cache")))
        yield


def _lower(fn, *args):
    return gradc.compile(fn, backend="cuda").lower(*args)


def _run(prog, arrays):
    return cuda_emulation.run(prog, arrays)


def _misaligned(shape, rng):
    """A contiguous float32 array whose data starts 4 bytes past a 16-byte boundary."""
    n = int(np.prod(shape))
    base = np.empty(n + 8, dtype=np.float32)
    skip = (-(base.ctypes.data // 4)) % 4 + 1
    out = base[skip:skip + n].reshape(shape)
    out[...] = rng.standard_normal(shape)
    assert out.ctypes.data % 16 == 4 and out.flags.c_contiguous
    return out


def test_flat_kernel_uses_vector_loads_behind_an_alignment_check():
    def f(a, b):
        return (a * b + 1.0).tanh()
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((64, 64)).astype(np.float32) for _ in range(2))
    prog = _lower(f, gradc.tensor(a), gradc.tensor(b))
    src = prog.kernels[0][1]
    assert "gradc_load4(" in src and "gradc_vec = gradc_aligned(" in src and "else for (int l = 0" in src
    want = np.tanh(a * b + 1.0)
    np.testing.assert_allclose(_run(prog, [a, b])[0], want, rtol=1e-6, atol=1e-6)
    # x[1:]-style operands start 4 bytes past an aligned address: the scalar path, same results
    am, bm = _misaligned((64, 64), rng), _misaligned((64, 64), rng)
    np.testing.assert_allclose(_run(prog, [am, bm])[0], np.tanh(am * bm + 1.0), rtol=1e-6, atol=1e-6)


def test_program_over_a_slice_takes_the_scalar_path():
    x = gradc.randn(65, 64)

    def f(x):
        return x * 2.0 + 1.0
    view = x[1:]
    assert view._data.ctypes.data % 16 == 0   # rows of 64 floats: the slice stays aligned
    flat = gradc.randn(4097)[1:].reshape(64, 64)
    prog = _lower(f, flat)
    got = _run(prog, [t._data for t in prog.resolve([flat])])[0]
    np.testing.assert_allclose(got, flat.numpy() * 2 + 1, rtol=1e-6)


def test_host_check_catches_a_vector_load_on_a_misaligned_pointer():
    src = gradc.codegen.templates.render("cuda/kernels.cu.j2", version="t", graph_hash="t", kernels=[{"source": (
        '// __global__ void\n#ifndef GRADC_DEVICE\nextern "C" void bad(const float* p, float* o) { float v[4]; gradc_load4(p, v);'
        ' o[0] = v[0]; }\n#endif\n')}])
    module = cuda_emulation.build(src)
    kernel = module.get_function("bad")
    a = np.zeros(8, dtype=np.float32)
    out = np.zeros(1, dtype=np.float32)
    kernel((1,), (1,), (a[4:], out))   # aligned: fine
    with pytest.raises(cuda_emulation.KernelFault, match="misaligned"):
        kernel((1,), (1,), (a[1:], out))


def test_index_width_switches_at_the_2_31_boundary():
    grid, block = 8192, 256
    edge = 2 ** 31 - grid * block
    assert cuda_kernels.index_type(edge - 1, grid, block) == "int"
    assert cuda_kernels.index_type(edge, grid, block) == "long long"
    # the generated kernel of a large tensor (lowered from shapes alone, nothing allocated)
    big = gradc.ir.Graph()
    n = 2 ** 31 - 8
    x = big.add_input("in0", (n,), "float32")
    c = big.add_const(np.float32(2.0))
    e = big.add("expand", [big.add("reshape", [c], (1,), "float32", {"shape": (1,)})], (n,), "float32",
                {"shape": (n,)})
    big.outputs = [big.add("mul", [x, e], (n,), "float32")]
    from gradc.lower import Spec, lower
    prog = lower(big, Spec(backend="cuda", bindings=[], effects=[], n_returned=1, out_spec=None))
    src = prog.kernels[0][1]
    assert "long long i" in src or "long long q" in src
    small = _lower(lambda a: a * 2.0 + 1.0, gradc.zeros(7, 3)).kernels[0][1]
    assert re.search(r"for \(int [iq] ", small)


def test_empty_tensors_launch_nothing():
    def f(x, w):
        y = (x * w).sum(0)
        return y, x + 1.0
    x, w = gradc.zeros(0, 8), gradc.randn(8)
    prog = _lower(f, x, w)
    assert prog.stats["launches"] == 1   # the sum over no rows fills its (8,) result; the empty ops launch nothing
    y, z = _run(prog, [x._data, w._data])
    assert y.shape == (8,) and not y.any() and z.shape == (0, 8)
    # its elementwise ops as one generated kernel over 0 rows: nothing to launch, no traffic
    g = prog.ir
    members = [n for n in g.op_nodes() if g.node(n)["op"] in ("mul", "add")]
    kern, why = cuda_kernels.lower(g, members, 0, members, lambda n: n)
    assert kern is not None, why
    assert kern.empty and kern.launches == 0 and kern.global_bytes == 0


def test_row_reductions_with_several_warps_and_slices_per_thread():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 1000)).astype(np.float32)   # 512 threads, 2 elements each, 16 warps
    x[2, 17] = np.nan

    def f(x):
        return F.softmax(x, dim=-1), x.amax(-1)
    prog = _lower(f, gradc.tensor(x))
    assert "__shfl_xor_sync" in prog.source["kernels.cu"] and "atomicAdd" not in prog.source["kernels.cu"]
    sm, mx = _run(prog, [x])
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(sm, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert np.isnan(mx[2]) and np.isnan(sm[2]).all()
    np.testing.assert_array_equal(np.delete(mx, 2), np.delete(x.max(-1), 2))


def test_column_sums_are_per_block_partials_with_the_same_bits_every_run():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((3000, 37)) * 100).astype(np.float32)

    def f(x):
        return (x * x).sum(0), x.sum()
    prog = _lower(f, gradc.tensor(x))
    src = prog.source["kernels.cu"]
    # per-block partials, combined in block order by the block that takes the last (integer) ticket
    assert "atomicAdd(gradc_ticket, 1)" in src and "atomicAdd(&" not in src
    assert prog.stats["launches"] == 2   # two groups, one launch each
    a = _run(prog, [x])
    b = _run(prog, [x.copy()])
    for u, v in zip(a, b):
        assert u.tobytes() == v.tobytes()
    np.testing.assert_allclose(a[0], (x.astype(np.float64) ** 2).sum(0), rtol=1e-5)
    np.testing.assert_allclose(a[1], x.astype(np.float64).sum(), rtol=1e-4)


def test_in_place_state_update_is_not_restrict():
    w = gradc.randn(64, 32, requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.9)

    def step(x):
        opt.zero_grad()
        loss = ((x @ w) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    x = gradc.randn(16, 64)
    step(x)
    prog = _lower(step, x)
    assert prog.stats["inplace_state_updates"] >= 1
    sigs = re.findall(r'extern "C" __global__ void __launch_bounds__\(\d+\) (g\d+)\(([^)]*)\)', prog.source["kernels.cu"])
    unrestricted = [s for _, s in sigs if any("__restrict__" not in p for p in s.split(", "))]
    assert unrestricted, sigs   # the state read and the state written are one buffer


def test_stats_report_launches_and_global_bytes():
    rng = np.random.default_rng(3)
    C = 128
    vals = [rng.standard_normal(s).astype(np.float32) for s in ((64, C), (C,), (C,), (C,), (C,))]
    args = [gradc.tensor(v, requires_grad=True) for v in vals]

    def ln_gelu(x, w, b, g, be):
        loss = F.layer_norm(F.gelu(x * w + b) + x, (C,), g, be).sum()
        loss.backward()
        return loss, x.grad, w.grad, b.grad, g.grad, be.grad
    prog = _lower(ln_gelu, *args)
    s = prog.stats
    # 64 x 128 elements: one block, its accumulators are the results (no second pass)
    assert s["launches"] == 1 and not s["host_groups"]
    # x read, x.grad written, 4 vectors read and 4 written (the bias gradient, a count of rows, is a
    # constant of the program), the loss
    compulsory = 2 * 64 * C * 4 + 7 * C * 4 + 4
    assert s["global_bytes"] == compulsory
    big = [gradc.tensor(np.resize(v, (1024,) + v.shape[1:]), requires_grad=True) if v.ndim == 2 else
           gradc.tensor(v, requires_grad=True) for v in vals]
    s = _lower(ln_gelu, *big).stats
    assert s["launches"] == 1   # per-block partials, combined by the last block of the same launch
    compulsory = 2 * 1024 * C * 4 + 7 * C * 4 + 4
    assert s["global_bytes"] == compulsory + 2 * 8 * 160 * (3 * C + 1)


def test_int64_inputs_are_plain_loads():
    def f(x, y):
        return x * y.float()
    x, y = gradc.randn(16, 8), gradc.randint(0, 5, (16, 8))
    prog = _lower(f, x, y)
    assert "const long long* __restrict__" in prog.kernels[0][1]
    np.testing.assert_allclose(_run(prog, [x._data, y._data])[0], x.numpy() * y.numpy(), rtol=1e-6)


def test_float16_is_stored_as_half_and_computed_in_float():
    rng = np.random.default_rng(4)
    a, b = (rng.standard_normal((32, 64)).astype(np.float16) for _ in range(2))

    def f(a, b):
        return a * b + 1.0, F.softmax(a, dim=-1)
    ta, tb = gradc.tensor(a), gradc.tensor(b)
    prog = _lower(f, ta, tb)
    assert not prog.stats["host_groups"] and prog.stats["launches"] == 2
    src = prog.source["kernels.cu"]
    assert "const gradc_half* __restrict__" in src and "gradc_aligned(p0, 8)" in src   # two half2 per access
    want = [w.numpy() for w in f(ta, tb)]
    for arrays in ([a, b], [_misaligned((32, 64), rng).astype(np.float16), b]):
        if arrays[0] is not a:   # 2 bytes past an 8-byte boundary: the element-by-element path
            base = np.empty(32 * 64 + 4, dtype=np.float16)
            arrays[0] = base[1:1 + 32 * 64].reshape(32, 64)
            arrays[0][...] = a
            assert arrays[0].ctypes.data % 8 != 0
        got = _run(prog, arrays)
        for g, w in zip(got, want):
            assert g.dtype == np.float16
            np.testing.assert_allclose(g.astype(np.float32), w.astype(np.float32), rtol=1e-3, atol=1e-3)


def test_consecutive_independent_kernels_share_one_launch():
    rng = np.random.default_rng(5)
    ws = [gradc.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in ((8, 6), (6,), (6, 3))]
    opt = optim.SGD(ws, lr=0.1, momentum=0.9)

    def step(x):
        opt.zero_grad()
        loss = (((x @ ws[0] + ws[1]).tanh() @ ws[2]) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    x = gradc.tensor(rng.standard_normal((5, 8)).astype(np.float32))
    step(x)
    prog = _lower(step, x)
    batched = re.findall(r"// (\d+) groups in one launch", prog.source["kernels.cu"])
    assert batched and sum(int(n) - 1 for n in batched) >= 1
    numpy_prog = gradc.compile(step, backend="numpy").lower(x)
    arrays = [t._data.copy() for t in prog.resolve([x])]
    want = numpy_prog.execute([a.copy() for a in arrays])
    got = _run(prog, arrays)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-6)


def test_a_view_of_a_buffer_counts_as_that_buffer():
    from gradc.codegen.cuda_backend import storage_key

    class Plan:
        storage = {3: ("pool", 0), 5: ("pool", 0)}
        root = {4: 3}
    g = gradc.ir.Graph()
    g.add_input("in0", (2,), "float32")
    key = storage_key(g, Plan())
    assert key(4) == key(3) == key(5) == ("pool", 0) and key(0) == ("input", 0)


def test_float16_row_sums_are_rounded_to_half_as_eager_rounds_them():
    rng = np.random.default_rng(6)
    a = gradc.tensor((rng.standard_normal((4, 300)) * 10).astype(np.float16))

    def f(a):
        return a - a.sum(-1, keepdim=True) * 0.01
    prog = _lower(f, a)
    assert not prog.stats["host_groups"]
    got = _run(prog, [a._data])[0]
    np.testing.assert_array_equal(got, f(a).numpy())


def test_two_column_sums_in_a_row_build_and_match_eager():
    """Kernels with cross-row partials keep their own launch: batched, their partial and ticket
    parameters collided and the unit did not compile."""
    def f(a, b):
        return (a * 2.0).sum(0), (b + 1.0).sum(0)
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((4096, 64)).astype(np.float32) for _ in range(2))
    prog = gradc.compile(f, backend="cuda").lower(gradc.tensor(a), gradc.tensor(b))
    out = cuda_emulation.run(prog, [a, b])
    want = f(gradc.tensor(a), gradc.tensor(b))
    for o, w in zip(out, want):
        np.testing.assert_allclose(o, w.numpy(), rtol=1e-4, atol=1e-3)


def test_float64_to_float16_rounds_once_as_numpy():
    """Through float, these values would round twice: to a float that is a tie between two halves,
    then to the even one; NumPy (and the kernels, __double2half on the device) round once."""
    ties = np.array([1 + 2.0 ** -11 + 2.0 ** -40,          # just above a tie: up
                     -(1 + 3 * 2.0 ** -11 - 2.0 ** -40),    # just below a tie: down, not to the even neighbour
                     2.0 ** -25 * (1 + 2.0 ** -29),         # a subnormal just above a tie
                     65519.99999999,                        # below the overflow threshold: 65504, not inf
                     -0.0, 3.0, np.inf, -np.inf, np.nan, 1e-30, 7e4, 0.1, 2.0 ** -14, 2.0 ** -24],
                    dtype=np.float64) / 2.0
    x = np.resize(ties, (4, 64))
    with np.errstate(over="ignore"):   # 7e4 overflows to inf, as it should
        through_float = (x * 2.0).astype(np.float32).astype(np.float16)
        want = (x * 2.0).astype(np.float16)
    assert not np.array_equal(through_float[0, :4], want[0, :4], equal_nan=True)

    def f(a):
        return (a * 2.0).half()
    prog = _lower(f, gradc.tensor(x))
    assert not prog.stats["host_groups"] and "gradc_round_half_d(" in prog.kernels[0][1]
    got = _run(prog, [x])[0]
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    np.testing.assert_array_equal(got.view(np.uint16), f(gradc.tensor(x)).numpy().view(np.uint16))
