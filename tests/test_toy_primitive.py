"""A primitive defined outside gradc, here in a test module, gets eager execution, autograd
(checked by float64 finite differences), compiled NumPy and CUDA lowering, without editing any
other file.

What adding a primitive takes:
- the entry: `gradc.ops.primitive(name, kind, nin, shape rule, dtype rule, eager kernel, ...)` and
  its VJP (`def_vjp`). Eager execution, tracing, the autodiff pass and fusion read only the entry.
- one lowering per backend. gradc's own primitives have one macro per backend, named after the
  primitive, in templates/numpy/ops.j2 and in templates/cuda/ops.j2 (elementwise: the C expression
  fused kernels are made of) or templates/cuda/host_ops.j2 (everything else, run from the host on
  CuPy arrays). A primitive defined elsewhere cannot add lines to those files, so its entry carries
  the same macro as jinja2 source, `templates={table: source}`; the code generators take it where
  the table has none, compiled in the same environment as the files (same filters, same imports),
  so every generated line still comes from a template. There is no silent fallback: a primitive
  with neither is refused when a program is lowered (tests/test_op_tables.py).
- NumPy: the macro below calls the primitive's own eager kernel through `kernel`
  (numpy/statements.j2). A generated module binds exactly the eager kernels its code calls (read
  off the rendered code), so no list elsewhere has to know about the new op.
- CUDA: the macro gives the C expression of the op for compute type `ct`.
- a row in tests/opdb.py, which puts a gradc primitive through every op test; here the tests below
  play that part."""
import numpy as np
import pytest

import gradc
from gradc.ops import OPS, primitive
from gradc.ops.rules import elementwise_shape, floating
from gradc.runtime import cuda_emulation
from gradc.testing import assert_close, gradcheck

NAME = "toy_softsign"

NUMPY_TEMPLATE = """{% from "numpy/statements.j2" import kernel %}
{% macro toy_softsign(a, out=None) %}{{ kernel("toy_softsign", [a], out=out) }}{% endmacro %}"""

CUDA_TEMPLATE = """{% from "cuda/statements.j2" import f %}
{% macro toy_softsign(ct, a) %}({{ a }} / (({{ ct }})1 + {{ f("fabs", ct) }}({{ a }}))){% endmacro %}"""


def softsign_kernel(xp, x):
    return x / (x.dtype.type(1) + xp.abs(x))


@pytest.fixture(scope="module")
def softsign():
    """x / (1 + |x|), registered for this module's tests and removed from the op table afterwards."""
    assert NAME not in OPS
    prim = primitive(NAME, "unary", 1, elementwise_shape(NAME), floating(NAME), softsign_kernel, saves=(0,),
                     templates={"numpy/ops.j2": NUMPY_TEMPLATE, "cuda/ops.j2": CUDA_TEMPLATE})

    @prim.def_vjp
    def _vjp(ctx, g):
        d = ctx.inputs[0].abs() + 1.0
        return (g / (d * d),)

    try:
        yield prim
    finally:
        OPS.pop(NAME, None)


def reference(x):
    return x / (1.0 + np.abs(x))


def reference_grad(x):
    return 1.0 / (1.0 + np.abs(x)) ** 2


def _x(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).uniform(-3, 3, shape).astype(dtype)


def model(prim):
    """The toy op inside a fused group (with neighbours) and alone on a second output."""
    def fn(x, w):
        y = prim.bind(x * w + 0.5)
        return y * 2.0 - 1.0, prim.bind(x)
    return fn


def step(prim):
    """A whole training-step shape: forward, backward inside, gradients out."""
    def fn(x, w):
        loss = (prim.bind(x * w) * x).sum()
        loss.backward()
        return loss, x.grad, w.grad
    return fn


def test_eager(softsign):
    for dtype in (np.float32, np.float64):
        x = _x(3, 4, dtype=dtype)
        out = softsign.bind(gradc.tensor(x))
        assert out.dtype is gradc.tensor(x).dtype and out.shape == (3, 4)
        np.testing.assert_allclose(out.numpy(), reference(x.astype(np.float64)), rtol=1e-6)


def test_gradient_matches_finite_differences(softsign):
    x = gradc.tensor(_x(2, 3, 4, dtype=np.float64), requires_grad=True)
    assert gradcheck(lambda t: softsign.bind(t) * 1.5, [x])
    y = softsign.bind(x)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), reference_grad(x.detach().numpy()), rtol=1e-12)


def test_compiled_numpy(softsign):
    x, w = _x(16, 8), _x(8, seed=1)
    fn = model(softsign)
    prog = gradc.compile(fn, backend="numpy").lower(gradc.tensor(x), gradc.tensor(w))
    src = prog.source["program.py"]
    # The generated module binds the kernel its code calls: no list of ops elsewhere knows it.
    assert f'K_{NAME} = _OPS["{NAME}"].eager' in src and f"K_{NAME}(np, " in src
    out = gradc.compile(fn, backend="numpy")(gradc.tensor(x), gradc.tensor(w))
    want = (reference(x * w + 0.5) * 2.0 - 1.0, reference(x))
    for o, e in zip(out, want):
        assert_close(o, e.astype(np.float32), rtol=1e-5, atol=1e-6)


def test_compiled_numpy_training_step(softsign):
    x, w = _x(16, 8), _x(8, seed=1)
    fn = step(softsign)
    eager = fn(gradc.tensor(x, requires_grad=True), gradc.tensor(w, requires_grad=True))
    compiled = gradc.compile(fn, backend="numpy")(gradc.tensor(x, requires_grad=True),
                                                   gradc.tensor(w, requires_grad=True))
    xw = x.astype(np.float64) * w
    want = (np.sum(reference(xw) * x), reference(xw) + x * reference_grad(xw) * w,
            np.sum(x * reference_grad(xw) * x, axis=0))
    for c, e, r in zip(compiled, eager, want):
        assert_close(c, e.detach(), rtol=1e-5, atol=1e-5)
        assert_close(c, r.astype(np.float32), rtol=1e-4, atol=1e-4)


GRAD_SCALE = 1.0


def test_what_a_primitive_defined_elsewhere_reads_while_traced_is_guarded():
    """gradc records its own primitives and VJPs with the read-recording hook off (gradc.internal);
    a primitive defined outside gradc runs its own code there, so what that code reads is guarded."""
    global GRAD_SCALE
    scaled = primitive("toy_scaled", "unary", 1, elementwise_shape("toy_scaled"), floating("toy_scaled"),
                       lambda xp, x: x.copy(), templates={"numpy/ops.j2": """{% from "numpy/statements.j2" import kernel %}
{% macro toy_scaled(a, out=None) %}{{ kernel("toy_scaled", [a], out=out) }}{% endmacro %}"""})
    scaled.def_vjp(lambda ctx, g: (g * GRAD_SCALE,))
    try:
        assert not scaled.closed and OPS["mul"].closed
        x = gradc.ones(3, requires_grad=True)

        def grad_of(x):
            scaled.bind(x * 2.0).sum().backward()
            g, x.grad = x.grad, None
            return g
        compiled = gradc.compile(grad_of, backend="numpy")
        for value in (1.0, 1.0, 0.5):
            GRAD_SCALE = value
            assert_close(compiled(x), np.full(3, 2.0 * value, np.float32))
        assert compiled.trace_count == 2 and "GRAD_SCALE" in compiled.recompile_reasons[-1]
    finally:
        GRAD_SCALE = 1.0
        OPS.pop("toy_scaled", None)


def _kernel_ops(prog):
    """The ops listed in the generated CUDA kernels' headers (`// group gN: op op ...`)."""
    return [line.split(":", 1)[1].split("(")[0].split() for line in prog.source["kernels.cu"].splitlines()
            if line.startswith("// group g")]


@pytest.mark.parametrize("make", [model, step], ids=["forward", "step"])
def test_cuda_lowering(softsign, make):
    x, w = _x(16, 8), _x(8, seed=1)
    fn = make(softsign)
    args = [gradc.tensor(x, requires_grad=make is step), gradc.tensor(w, requires_grad=make is step)]
    prog = gradc.compile(fn, backend="cuda").lower(*args)
    assert any(NAME in ops for ops in _kernel_ops(prog)), prog.source["kernels.cu"]
    assert "fabsf(" in prog.source["kernels.cu"]    # the entry's own device expression
    if not cuda_emulation.available():
        pytest.skip("needs g++ to build the generated kernels for the host")
    eager = fn(*[gradc.tensor(x, requires_grad=make is step), gradc.tensor(w, requires_grad=make is step)])
    got = cuda_emulation.run(prog, [t._data.copy() for t in prog.resolve(args)])
    for g, e in zip(got, eager):
        assert_close(gradc.tensor(np.asarray(g)), e.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not gradc.cuda.is_available(), reason="needs a CUDA GPU with CuPy (pip install 'gradc[cuda]')")
def test_cuda_on_gpu(softsign):
    x, w = _x(64, 32), _x(32, seed=1)
    fn = model(softsign)
    out = gradc.compile(fn, backend="cuda")(gradc.tensor(x).cuda(), gradc.tensor(w).cuda())
    eager = softsign.bind(gradc.tensor(x).cuda())   # the eager kernel on CuPy arrays
    assert_close(eager.cpu(), reference(x), rtol=1e-5, atol=1e-6)
    for o, e in zip(out, (reference(x * w + 0.5) * 2.0 - 1.0, reference(x))):
        assert o.device.type == "cuda"
        assert_close(o.cpu(), e.astype(np.float32), rtol=1e-5, atol=1e-6)
