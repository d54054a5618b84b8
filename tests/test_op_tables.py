"""Every primitive has a lowering in every backend's op table, so a missing one fails here, by
name, and never in a user's program.

The tables (one macro per primitive, named after it):
- templates/numpy/ops.j2: the NumPy expression of each primitive, or with `out` the statement that
  writes it into planned storage (fused groups and planned ops);
- templates/cuda/ops.j2: the C expression of each elementwise primitive, what fused kernels are
  made of;
- templates/cuda/host_ops.j2: how each other primitive runs from the host on CuPy arrays
  (reductions outside row kernels, views, gather/scatter, cuBLAS matmul, and the collective
  all_reduce, whose eager kernel hands the CuPy array to the process group: collectives need no
  exemption, they have a host lowering like the rest).
The lookups tested are the ones the code generators call (numpy_backend.lowering,
cuda_backend.lowering); the tests below also show that the check catches a missing macro."""
import re

import numpy as np
import pytest

import gradc
from gradc.codegen import cuda_backend, numpy_backend, templates
from gradc.ops import OPS, primitive
from gradc.ops.rules import elementwise_shape, floating

LOWERINGS = {"numpy": numpy_backend.lowering, "cuda": cuda_backend.lowering}
TABLES = ("numpy/ops.j2", "cuda/ops.j2", "cuda/host_ops.j2")
PACKAGE_OPS = sorted(OPS)   # the package's own primitives (a test may register more while it runs)


def missing_lowerings(lowering, ops=None):
    """The primitives (of `ops`, default all of OPS) that `lowering` refuses."""
    missing = []
    for name in sorted(OPS if ops is None else ops):
        try:
            lowering(name)
        except gradc.GradcError:
            missing.append(name)
    return missing


def table_macros(table):
    """Names of the public macros of a template table."""
    module = templates.macros(table)
    return {name for name, value in vars(module).items() if not name.startswith("_") and callable(value)}


@pytest.mark.parametrize("backend", sorted(LOWERINGS))
@pytest.mark.parametrize("op", PACKAGE_OPS)
def test_primitive_has_a_lowering(backend, op):
    try:
        macro = LOWERINGS[backend](op)
    except gradc.GradcError as e:
        pytest.fail(f"{op}: {e}")
    if backend == "numpy":  # every NumPy lowering can also write into planned storage
        assert "out" in macro.arguments or macro.catch_kwargs, f"numpy/ops.j2: {op} takes no `out`"
    elif OPS[op].elementwise:  # device expressions take the compute type first
        assert macro.arguments[:1] == ("ct",), f"cuda/ops.j2: {op}{macro.arguments} does not start with ct"


@pytest.mark.parametrize("table", TABLES)
def test_tables_name_only_primitives(table):
    """A macro that names no primitive is a typo or a leftover: the primitive it meant has none."""
    stray = sorted(table_macros(table) - OPS.keys())
    assert not stray, f"templates/{table} has macros for no primitive: {stray}"


def test_cuda_tables_split_by_kind():
    # Fused kernels only ever contain elementwise ops; the host runs the rest.
    device = {n for n in table_macros("cuda/ops.j2") if n in OPS}
    host = {n for n in table_macros("cuda/host_ops.j2") if n in OPS}
    assert all(OPS[n].elementwise for n in device), sorted(n for n in device if not OPS[n].elementwise)
    assert not any(OPS[n].elementwise for n in host), sorted(n for n in host if OPS[n].elementwise)


# ---------------------------------------------------------------------- the check can fail
def _without_macro(table, op):
    """The template table's module with the macro of `op` removed from its source."""
    source = (templates.template_dir() / table).read_text()
    pattern = re.compile(r"^\{% macro " + op + r"\(.*$\n", re.M)
    stripped, count = pattern.subn("", source)
    assert count == 1, f"expected one macro {op} in {table}"
    return templates.environment().from_string(stripped).module


@pytest.mark.parametrize("table, op, backend", [("numpy/ops.j2", "exp", "numpy"),
                                                ("cuda/ops.j2", "tanh", "cuda"),
                                                ("cuda/host_ops.j2", "gather", "cuda")])
def test_check_catches_a_deleted_macro(monkeypatch, table, op, backend):
    real = templates.macros
    stripped = _without_macro(table, op)
    monkeypatch.setattr(templates, "macros", lambda name: stripped if name == table else real(name))
    assert missing_lowerings(LOWERINGS[backend], PACKAGE_OPS) == [op]
    with pytest.raises(gradc.GradcError, match=rf"no lowering for primitive '{op}'.*templates/{table}"):
        LOWERINGS[backend](op)


def test_a_deleted_macro_fails_at_lowering_time_not_at_run_time(monkeypatch):
    real = templates.macros
    for table, op, backend in (("numpy/ops.j2", "exp", "numpy"), ("cuda/ops.j2", "exp", "cuda")):
        stripped = _without_macro(table, op)
        monkeypatch.setattr(templates, "macros", lambda name, t=table, s=stripped: s if name == t else real(name))
        x = gradc.randn(3, 7, 5)
        with pytest.raises(gradc.GradcError, match=rf"'{op}'.*add a macro named '{op}' to templates/{table}"):
            gradc.compile(lambda x: (x * 1.25).exp() + 0.5, backend=backend).lower(x)
        monkeypatch.setattr(templates, "macros", real)


@pytest.fixture
def unlowered():
    """Two primitives registered without any lowering (removed from the op table afterwards)."""
    def kernel(xp, x):
        return x * 3
    made = [primitive("toy_unlowered", "unary", 1, elementwise_shape("toy_unlowered"), floating("toy_unlowered"),
                      kernel, diff=False),
            primitive("toy_unlowered_index", "index", 1, elementwise_shape("toy_unlowered_index"),
                      floating("toy_unlowered_index"), kernel, diff=False)]
    try:
        yield made
    finally:
        for p in made:
            OPS.pop(p.name, None)


def test_a_primitive_without_lowerings_is_refused_with_what_to_add(unlowered):
    elementwise, other = unlowered
    for lowering, prim, table in ((numpy_backend.lowering, elementwise, "numpy/ops.j2"),
                                  (numpy_backend.lowering, other, "numpy/ops.j2"),
                                  (cuda_backend.lowering, elementwise, "cuda/ops.j2"),
                                  (cuda_backend.lowering, other, "cuda/host_ops.j2")):
        with pytest.raises(gradc.GradcError) as err:
            lowering(prim.name)
        msg = str(err.value)
        assert f"'{prim.name}'" in msg and f"templates/{table}" in msg and "templates=" in msg, msg
    assert missing_lowerings(numpy_backend.lowering) == ["toy_unlowered", "toy_unlowered_index"]
    assert missing_lowerings(cuda_backend.lowering) == ["toy_unlowered", "toy_unlowered_index"]
    # ... and a program that uses one fails when it is lowered, not with a NameError when it runs.
    x = gradc.randn(4, 6)
    np.testing.assert_allclose(elementwise.bind(x).numpy(), x.numpy() * 3)  # eager needs no template
    for backend in ("numpy", "cuda"):
        with pytest.raises(gradc.GradcError, match="toy_unlowered"):
            gradc.compile(lambda x: elementwise.bind(x * 2.0) + 1.0, backend=backend).lower(x)


def test_an_entry_template_that_defines_the_wrong_macro_is_refused(unlowered):
    prim = unlowered[0]
    prim.templates["numpy/ops.j2"] = "{% macro toy_misnamed(a, out=None) %}{{ a }}{% endmacro %}"
    with pytest.raises(gradc.GradcError, match=r"templates\['numpy/ops.j2'\] defines no macro named 'toy_unlowered'"):
        numpy_backend.lowering(prim.name)


def test_generated_code_may_only_call_kernels_of_primitives(unlowered):
    prim = unlowered[0]
    prim.templates["numpy/ops.j2"] = (
        '{% macro toy_unlowered(a, out=None) %}K_no_such_primitive(np, {{ a }}){% endmacro %}')
    with pytest.raises(gradc.GradcError, match="no_such_primitive"):
        gradc.compile(lambda x: prim.bind(x) + 1.0, backend="numpy").lower(gradc.randn(2, 5))
