"""Which nn.Modules a compiled callable reaches: their training flags and parameters are part of
its call signature (gradc.compiler)."""
from .nn.module import Module


def modules_of(fn):
    """The nn.Modules a compiled callable reaches directly: itself, the instance of a bound method,
    and modules in its closure cells or in the globals its code names (read on every call, so a
    rebound name or a replaced parameter is seen)."""
    return Reach(fn)()


class Reach:
    """_modules_of for one callable, with what cannot change looked up once: the callable and its
    bound instance, its closure cells and the globals dict and names its code reads (the values in
    the cells and globals are read on every call)."""

    def __init__(self, fn):
        self.fixed = [obj for obj in (fn, getattr(fn, "__self__", None)) if isinstance(obj, Module)]
        self.cells = tuple(getattr(fn, "__closure__", None) or ())
        code = getattr(fn, "__code__", None)
        self.globals = getattr(fn, "__globals__", {}) if code is not None else {}
        self.names = code.co_names if code is not None else ()

    def __call__(self):
        found = list(self.fixed)
        for cell in self.cells:
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if isinstance(value, Module) and value not in found:  # (modules compare by identity)
                found.append(value)
        get = self.globals.get
        for name in self.names:
            value = get(name)
            if isinstance(value, Module) and value not in found:
                found.append(value)
        return found


def cell_value(cell):
    try:
        return cell.cell_contents
    except ValueError:
        return None
