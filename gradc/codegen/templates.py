"""Finds and loads the jinja2 templates that every generated line comes from.

Installed, they live in the package (gradc/templates); in a source checkout, in the top-level
templates/ folder beside the package. The filters here are the only way values reach generated
code: `lit` renders checked literals, `npdtype` known dtype names, `where` a sanitised location."""
import functools
import math
import re
from pathlib import Path

import jinja2

from .. import dtypes as D
from ..errors import GradcError

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
    if isinstance(value, (tuple, list)):
        inner = ", ".join(lit(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    raise GradcError(f"refusing to put a value of type {type(value).__name__} into generated code")


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


@functools.lru_cache(maxsize=None)
def environment():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir())), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    env.filters.update(lit=lit, lit_or_dtype=lit_or_dtype, npdtype=npdtype, where=where, ident=ident)
    return env


def render(name, **context):
    return environment().get_template(name).render(**context)


@functools.lru_cache(maxsize=None)
def macros(name):
    """The macros of a template, callable from Python (one per op in <backend>/ops.j2)."""
    return environment().get_template(name).module
