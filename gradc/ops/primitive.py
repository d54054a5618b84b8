"""The primitive op table: the one place that says what each primitive is.

Each `Primitive` carries its shape rule, dtype rule, eager kernel (array-module agnostic: it
receives `xp`, NumPy or CuPy), its VJP written with tensor ops (so eager autograd and the
compiler's autodiff pass share it), what the VJP needs saved, its autocast policy, the flags the
passes read, and the public names its frontend is published under (a Tensor method and a
`gradc.*` function each). The backends' renderings live in templates/<backend>/ under the
primitive's name; a completeness test checks that every backend has one."""
from .. import dispatch
from ..errors import ShapeError
from ..shapes import prod

OPS = {}
MAX_ELEMENTS = 2 ** 63  # NumPy's index type; a result this large fails at shape inference, eagerly or traced

# Kinds the fusion pass may put into one elementwise group.
ELEMENTWISE_KINDS = frozenset({"unary", "binary", "compare", "ternary", "cast"})


class Primitive:
    """One primitive op. `nin=None` means variadic (concat).

    Flags the passes read: `view` (the result may share the operand's storage: reshape, permute,
    expand, slice), `diff` (has a VJP), `amp` (autocast policy "fp16", "fp32" or "follow").

    `templates` lets a primitive defined outside gradc carry its own lowerings: {template table
    ("numpy/ops.j2", "cuda/ops.j2", "cuda/host_ops.j2"): jinja2 source defining a macro named after
    the primitive, with the signature of that table's macros}. The codegen uses it where the table
    itself has no macro for the primitive (gradc.codegen.templates.lowering)."""

    def __init__(self, name, kind, nin, shape, dtype, eager, saves=(), amp="follow", diff=True, view=False,
                 templates=None):
        self.name = name
        self.kind = kind
        self.nin = nin
        self.shape_rule = shape
        self.dtype_rule = dtype
        self.eager = eager
        self.saves = frozenset(saves)   # input indices and/or "out" that the VJP reads
        self.saves_for = None           # optional needs -> the subset of `saves` those gradients read
        self.amp = amp
        self.diff = diff
        self.view = view
        self.templates = dict(templates or {})
        self.vjp = None
        self._closed = None
        self.exports = []               # (public names, function, as Tensor method, as gradc.* function)

    def def_vjp(self, fn):
        """Register fn(ctx, g) -> per-input gradients (None where there is none)."""
        self.vjp, self._closed = fn, None
        return fn

    @property
    def closed(self):
        """Whether its rules and VJP are gradc's own code: tracing it runs none of the user's code
        (gradc.internal), which a primitive defined elsewhere does."""
        if self._closed is None:
            self._closed = all(_gradc_code(f) for f in (self.shape_rule, self.dtype_rule, self.vjp))
        return self._closed

    def def_frontend(self, *names, method=True, function=True):
        """Register the user-facing function of this primitive (argument normalisation, then
        `bind`) under `names`: as Tensor methods and/or `gradc.*` functions."""
        def register(fn):
            self.exports.append((names, fn, method, function))
            return fn
        return register

    def bind(self, *args, **attrs):
        return dispatch.bind(self, args, attrs)

    def infer(self, shapes, dtypes, attrs):
        """Output (shape, dtype) for operand shapes/dtypes, checking arity first."""
        if self.nin is not None and len(shapes) != self.nin:
            raise ShapeError(f"{self.name} takes {self.nin} operands, got {len(shapes)}")
        shape = tuple(self.shape_rule(shapes, **attrs))
        if type(n := prod(shape)) is int and n >= MAX_ELEMENTS:   # (symbolic: too large fails when allocated)
            raise ShapeError(f"{self.name}: the result shape {shape} has {prod(shape)} elements, more than an array "
                             f"can index (2**63); check the sizes passed to expand/reshape/repeat")
        return shape, self.dtype_rule(dtypes, **attrs)

    @property
    def elementwise(self):
        return self.kind in ELEMENTWISE_KINDS

    def __repr__(self):
        return f"<primitive {self.name}>"


def _gradc_code(fn):
    fn = getattr(fn, "func", fn)   # (a functools.partial)
    return fn is None or (getattr(fn, "__module__", None) or "").startswith("gradc.")


def primitive(name, kind, nin, shape, dtype, eager, **kw):
    """Create and register a primitive (a test module may register its own the same way)."""
    p = Primitive(name, kind, nin, shape, dtype, eager, **kw)
    OPS[name] = p
    return p


class Ctx:
    """What a VJP sees: saved operands and output (tensors), operand shapes and dtypes, attributes."""
    __slots__ = ("inputs", "out", "shapes", "dtypes", "attrs", "needs")

    def __init__(self, inputs, out, shapes, dtypes, attrs, needs):
        self.inputs, self.out, self.shapes, self.dtypes, self.attrs = inputs, out, shapes, dtypes, attrs
        self.needs = needs  # which operands want a gradient: VJPs skip the rest
