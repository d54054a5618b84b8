"""Finds and loads the jinja2 templates that every generated line comes from.

Installed, they live in the package (gradc/templates); in a source checkout, in the top-level
templates/ folder beside the package. The filters here are the only way values reach generated
code: `lit` renders checked literals, `npdtype` known dtype names, `where` a sanitised location.

Each backend has an op table (numpy/ops.j2; cuda/ops.j2 for device expressions, cuda/host_ops.j2
for what runs on the host): one macro per primitive, named after it. `lowering` finds a
primitive's macro there, or in the jinja2 source the primitive's entry carries for that table (a
primitive defined outside gradc), and refuses with what to add when there is neither."""
import functools
import math
import re
from pathlib import Path

import jinja2

from .. import dtypes as D
from ..errors import GradcError
from ..ops import OPS
from ..lowered_sizes import c_code, code
from ..symint import is_live, show

_PKG = Path(__file__).resolve().parent.parent


def template_dir():
    for candidate in (_PKG / "templates", _PKG.parent / "templates"):
        if (candidate / "numpy").is_dir():
            return candidate
    raise FileNotFoundError(f"gradc's templates are missing (looked in {_PKG / 'templates'} and "
                            f"{_PKG.parent / 'templates'}); reinstall gradc")


def lit(value):
    """A Python literal for a checked attribute value (numbers, bools, None, tuples of them)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else '-float("inf")'
        return repr(float(value))
    if is_live(value):   # a symbolic size of a program generated for every size (gradc.dynamic)
        return code(value)
    if isinstance(value, (tuple, list)):
        inner = ", ".join(lit(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    raise GradcError(f"refusing to put a value of type {type(value).__name__} into generated code")


def size(value):
    """A size for a comment: a number, or the expression of a symbolic one (gradc.dynamic)."""
    return show(value.p) if is_live(value) else str(int(value))


def csize(value):
    """A size in C: a number as it is, a symbolic one as its expression over the kernel's S<k>."""
    return c_code(value) if is_live(value) else str(int(value))


def clong(value):
    """A size in C as a long: 16L, or a symbolic one's expression (long already)."""
    return c_code(value) if is_live(value) else f"{int(value)}L"


def npdtype(name):
    if name not in D.ALL:
        raise GradcError(f"unknown dtype {name!r} in generated code")
    return "bool_" if name == "bool" else name


def lit_or_dtype(value):
    """`lit`, plus the names of gradc dtypes as quoted strings (the cast op's attribute)."""
    if isinstance(value, str):
        npdtype(value)
        return f'"{value}"'
    return lit(value)


_IDENT = re.compile(r"[a-z_][a-z0-9_]*")


def ident(name):
    """An op or attribute name (they come from the op table; anything else is refused)."""
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise GradcError(f"refusing to put the name {name!r} into generated code")
    return name


_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/\\() <>+-]")


def where(text):
    """A source location made safe for a one-line comment."""
    return _UNSAFE.sub("?", str(text))[:200] if text else ""


def new_environment(bytecode_cache=None):
    """A jinja2 Environment over gradc's templates with its filters (`environment()` is the one
    every renderer shares)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir())), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
                             bytecode_cache=bytecode_cache)
    env.filters.update(lit=lit, lit_or_dtype=lit_or_dtype, npdtype=npdtype, where=where, ident=ident, size=size,
                       csize=csize, clong=clong)
    return env


_BYTECODE = {"cache": None}


@functools.lru_cache(maxsize=None)
def environment():
    return new_environment(_BYTECODE["cache"])


def use_bytecode_cache(bytecode_cache):
    """Keep compiled templates in `bytecode_cache` (a jinja2.BytecodeCache; None: compile them in
    every process). The pipeline installs gradc's, which lives in the cache folder. The shared
    environment is made when something is first rendered, so this finds no templates yet."""
    _BYTECODE["cache"] = bytecode_cache
    if environment.cache_info().currsize:
        environment().bytecode_cache = bytecode_cache


def render(name, **context):
    return environment().get_template(name).render(**context)


@functools.lru_cache(maxsize=None)
def macros(name):
    """The macros of a template, callable from Python (one per op in <backend>/ops.j2)."""
    return environment().get_template(name).module


@functools.lru_cache(maxsize=None)
def _snippet(source):
    """Macros defined by a primitive's own template source, compiled like the files (same filters)."""
    return environment().from_string(source).module


def lowering(table, op):
    """The macro of primitive `op` in template table `table` (e.g. "numpy/ops.j2"): the table's own,
    else the one the op's entry carries for that table (`Primitive.templates`)."""
    fn = getattr(macros(table), op, None)
    if callable(fn):
        return fn
    prim = OPS.get(op)
    source = prim.templates.get(table) if prim is not None else None
    if source is None:
        raise GradcError(f"the {table.split('/')[0]} backend has no lowering for primitive {op!r}: add a macro "
                         f"named {op!r} to templates/{table} (a primitive defined outside gradc can carry its own: "
                         f"primitive(..., templates={{{table!r}: jinja2 source of that macro}}))")
    fn = getattr(_snippet(source), op, None)
    if not callable(fn):
        raise GradcError(f"primitive {op!r}: its templates[{table!r}] defines no macro named {op!r}; "
                         f"define one with the signature of the other macros in templates/{table}")
    return fn


_KERNEL_CALL = re.compile(r"\bK_([a-z_][a-z0-9_]*)\(")


def kernel_refs(*texts):
    """The primitives whose eager kernels (`K_<op>(`) rendered code calls: what a generated module
    binds, read off the code itself so that no list has to follow the templates."""
    names = {name for text in texts for name in _KERNEL_CALL.findall(text)}
    unknown = sorted(names - OPS.keys())
    if unknown:
        raise GradcError(f"generated code calls the eager kernel of {', '.join(unknown)}, which the op table "
                         "(gradc.ops.OPS) does not have; a template may only call K_<op> of a registered primitive")
    return names
