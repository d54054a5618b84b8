"""Python float arguments of a compiled function as program inputs.

While a call is traced, each `float` argument (exact type float: not a bool, an int or a NumPy
scalar; at any depth of the argument tree) is replaced by a `TracedFloat`. Meeting a tensor in an
operator or a binary gradc function (`x * lr`, `lr - y`, `gradc.maximum(x, w)`) it acts as the
Python number would, with the same type promotion (a weak scalar: float16 stays float16, an
integer tensor becomes float32), its value coming from a 0-d float64 program input that is filled
from the argument on every call. So one program serves every value: a changing learning rate or
loss weight does not trace again.

Arithmetic with Python numbers and other float arguments (`1.0 - w`, `lr * 0.1`, `-w`) stays
symbolic, computed in float64 as Python computes it. Anything else the function does with it is
Python work on the number itself (`if lr > 0.1`, `math.cos(lr)`, `float(lr)`, `1 / lr`, printing
it, returning it): that raises `Specialize`, and the call is traced again with every float
argument's value baked in, as any other Python value (a new value traces again)."""
from .dispatch import Value
from .errors import TraceError
from .ops import OPS
from .ops.frontend import binary


class Specialize(BaseException):
    """A traced float argument was used as a Python number: trace again with values baked in.
    (A BaseException, so that a user's `except Exception` does not swallow it.)"""


def _specialize(self):
    self.scope[1] = True   # remembered: a user's bare `except:` may swallow the exception itself
    raise Specialize(self.path)


def _python_use(self, *args):
    if self.scope[0]:
        _specialize(self)
    raise TraceError(f"the float argument {self.path} of a compiled function was kept after its call was traced "
                     "(stored in Python state); store float(value) of it before the call instead")


class TracedFloat:
    """A float argument while its call is traced (see the module docs). `scope` is shared by the
    stand-ins of one trace: [whether it is running, whether one of them was used as a number]."""
    __slots__ = ("tensor", "path", "scope")

    def __init__(self, tensor, path, scope):
        self.tensor, self.path, self.scope = tensor, path, scope

    @property
    def gradc_weak_scalar(self):
        """The 0-d float64 tensor holding the value (what gradc.ops.frontend promotes as a Python
        float); using it once the trace is over is an error."""
        if not self.scope[0]:
            _python_use(self)
        return self.tensor


def _operand(self, other):
    """What `other` is to arithmetic on a stand-in: a Python number, another stand-in's tensor, or
    None (anything else: Python work on the value)."""
    if isinstance(other, TracedFloat):
        return other.gradc_weak_scalar
    return other if type(other) in (int, float) else None


def _arith(name, reflected):
    """Arithmetic with Python numbers and other float arguments stays symbolic, in float64 as Python
    computes it (`1.0 - w`, `w * 0.5`, `a + b`); with a tensor the tensor's reflected operator
    promotes the stand-in as a weak scalar; a division by a Python zero or by a float argument (which
    Python would raise on for zero) is Python work on the value."""
    def method(self, other):
        if not self.scope[0]:
            _python_use(self)
        if isinstance(other, Value):
            return NotImplemented
        o = _operand(self, other)
        if o is None or name == "div" and (reflected or isinstance(o, Value) or o == 0):
            _specialize(self)
        a, b = (o, self.tensor) if reflected else (self.tensor, o)
        return TracedFloat(binary(name, a, b), self.path, self.scope)
    return method


def _unary(name):
    def method(self):
        if not self.scope[0]:
            _python_use(self)
        return TracedFloat(OPS[name].bind(self.tensor), self.path, self.scope)
    return method


for _py, _op in (("add", "add"), ("sub", "sub"), ("mul", "mul"), ("truediv", "div")):
    setattr(TracedFloat, f"__{_py}__", _arith(_op, False))
    setattr(TracedFloat, f"__r{_py}__", _arith(_op, True))
TracedFloat.__neg__ = _unary("neg")
TracedFloat.__abs__ = _unary("abs")
TracedFloat.__pos__ = lambda self: self if self.scope[0] else _python_use(self)


def _with_tensor_only(name):
    def method(self, other):
        if isinstance(other, Value) and self.scope[0]:
            return NotImplemented   # a tensor: its reflected operator promotes us as a weak scalar
        _python_use(self)
    method.__name__ = name
    return method


for _name in ("floordiv", "mod", "pow", "matmul"):
    setattr(TracedFloat, f"__{_name}__", _with_tensor_only(f"__{_name}__"))
    setattr(TracedFloat, f"__r{_name}__", _with_tensor_only(f"__r{_name}__"))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(TracedFloat, f"__{_name}__", _with_tensor_only(f"__{_name}__"))
for _name in ("float", "int", "index", "bool", "round", "trunc", "floor", "ceil", "hash", "str", "repr", "format",
              "complex", "divmod", "rdivmod", "reduce", "reduce_ex", "copy", "deepcopy"):
    setattr(TracedFloat, f"__{_name}__", _python_use)
