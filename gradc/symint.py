"""Symbolic sizes: a dimension that one trace serves for every size (gradc.compile(dynamic=True),
gradc.mark_dynamic, or automatically once only a size changed).

While such a call is traced, the marked dimension of the argument is a `SymInt` instead of a
Python int. Shape arithmetic on it stays symbolic (sizes are polynomials over the symbols with
integer coefficients, so `x.view(x.shape[0], -1)` gives back 784 and not an expression), and
so does size arithmetic that feeds values (`loss.sum() / x.shape[0]`: a constant whose value
is computed for each size). A symbol stands for a size of at least 2 (0 and 1 are traced as
constants, as PyTorch's dynamic shapes do), so `n == 1` or `n > 0` need no guard.

Everything else Python does with a size becomes a guard of the trace, in `Sizes.guards`: a
comparison whose answer depends on the size (`if n > 16`, a reshape that needs `n == 8`) holds
its answer; a size used as a plain number (`range(n)`, `float(n)`, indexing a list) holds its
value. A call whose sizes break a guard traces again, and the reason names the guard and the
line that made it. The trace is lowered with its sizes still symbolic (gradc.lowered_sizes): what
the passes and the code generators assume about a size is a guard of the lowered program, and
one lowering serves every size that keeps its guards (gradc.dynamic.DynamicProgram)."""
import math
import operator

import numpy as np


_RELATIONS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
              ">=": operator.ge}


class Sizes:
    """The symbols of one trace and the guards recorded on them."""

    def __init__(self, where):
        self.symbols = {}    # name -> (flat argument index, dim, what it is called: "x.shape[0]")
        self.guards = {}     # (polynomial, relation) -> (expected answer, where it was made)
        self.aliases = {}    # symbol -> what a guard made it equal to (16, or y.shape[0])
        self.hints = {}      # symbol -> its size in the call being traced
        self.open = True
        self.structural = False   # hash a size by its expression (a lowering's sizes), not its value
        self._where = where  # () -> the user's file:line

    def symbol(self, index, dim, label, size):
        name = f"s{len(self.symbols)}"
        self.symbols[name] = (index, dim, label)
        self.hints[name] = size
        return SymInt(((((name,), 1),)), size, self)

    def expression(self, poly):
        """An integer polynomial as a size: a SymInt, or an int when it is constant."""
        c = constant_of(poly)
        return c if c is not None else SymInt(poly, evaluate(poly, self.hints), self)

    def values(self, flat):
        """{symbol: size} of one call's flat arguments."""
        return {name: flat[i].shape[d] for name, (i, d, _) in self.symbols.items()}

    def hold(self, values):
        return all(_holds(poly, rel, expected, values) for (poly, rel), (expected, _) in self.guards.items())

    def failures(self, values):
        """The guards these sizes break, in words."""
        out = []
        for (poly, rel), (expected, where) in self.guards.items():
            if not _holds(poly, rel, expected, values):
                shown = _relation_text(poly, rel if expected else _NEGATED[rel], self)
                sizes = ", ".join(f"{self.symbols[s][2]} = {values[s]}" for s in sorted(names_of(poly)))
                out.append(f"the trace assumed {shown}{f' at {where}' if where else ''}; now {sizes}")
        return out

    def record(self, poly, rel, hint):
        """The answer of `poly rel 0` for the traced sizes, kept as a guard unless it holds for every size."""
        if self.aliases:
            poly = _substitute(poly, self.aliases)
        known = _decide(poly, rel)
        if known is not None:
            return known
        answer = _RELATIONS[rel](hint, 0)
        self.guards.setdefault((poly, rel), (answer, self._where()))
        solved = _solved(poly) if rel in ("==", "!=") and answer == (rel == "==") else None
        if solved is not None:   # the trace holds from now on that a size is this (16, or another size)
            self.aliases[solved[0]] = solved[1]
            for k, v in self.aliases.items():
                self.aliases[k] = _substitute(v, self.aliases) if k != solved[0] else v
        return answer


def _holds(poly, rel, expected, values):
    try:
        return _RELATIONS[rel](evaluate(poly, values), 0) == expected
    except ZeroDivisionError:   # (n // k with k 0 for these sizes: the trace did not divide by 0)
        return False


_NEGATED = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _relation_text(poly, rel, sizes):
    """`poly rel 0` as a person writes it: `x.shape[0] == 8`, `x.shape[0] != y.shape[0]`."""
    left = tuple((m, c) for m, c in poly if m and c > 0)
    if not left:   # (-n + 4 < 0 reads n > 4)
        return _relation_text(tuple((m, -c) for m, c in poly), _MIRRORED.get(rel, rel), sizes)
    return f"{show(left, sizes)} {rel} {show(tuple((m, -c) for m, c in poly if not m or c < 0), sizes)}"


# A polynomial: a sorted tuple of (monomial, coefficient); a monomial is a sorted tuple of atoms:
# symbol names, or (op, polynomial, polynomial) for what is not a polynomial (n // 3, n % 4, n / 2).
def _poly(terms):
    out = {}
    for mono, c in terms:
        out[mono] = out.get(mono, 0) + c
    return tuple(sorted(((m, c) for m, c in out.items() if c != 0), key=lambda mc: repr(mc[0])))


def _const(c):
    return ((((), c),)) if c != 0 else ()


def _substitute(poly, known):
    """`poly` with each symbol in `known` replaced by its polynomial, and atoms whose operands became
    constants computed."""
    def atom(a):
        if isinstance(a, str):
            return known[a] if a in known else (((a,), 1),)
        x, y = _substitute(a[1], known), _substitute(a[2], known)
        cx, cy = constant_of(x), constant_of(y)
        if cx is not None and cy is not None and cy != 0:
            return _const(_ATOMS[a[0]](cx, cy))
        return ((((a[0], x, y),), 1),)
    total = ()
    for m, c in poly:
        term = _const(c)
        for a in m:
            term = _mul(term, atom(a))
        total = _poly(total + term)
    return total


def _solved(poly):
    """(symbol, polynomial) when `poly == 0` says what a symbol is (n - 16, n - m), else None."""
    if any(type(c) is not int for _, c in poly):
        return None   # (a float expression says nothing about a size)
    for m, c in sorted(poly, key=lambda mc: repr(mc[0]), reverse=True):
        if len(m) == 1 and isinstance(m[0], str) and c in (1, -1):
            rest = tuple((mm, cc) for mm, cc in poly if mm != m)
            if m[0] not in names_of(rest):
                return m[0], tuple((mm, -cc * c) for mm, cc in rest)
    return None


def constant_of(poly):
    if not poly:
        return 0
    if len(poly) == 1 and poly[0][0] == ():
        return poly[0][1]
    return None


def _mul(a, b):
    return _poly((tuple(sorted(ma + mb, key=repr)), ca * cb) for ma, ca in a for mb, cb in b)


def names_of(poly):
    """The symbols a polynomial names."""
    found = set()
    for mono, _ in poly:
        for atom in mono:
            if isinstance(atom, str):
                found.add(atom)
            else:
                found |= names_of(atom[1]) | names_of(atom[2])
    return found


_ATOMS = {"//": operator.floordiv, "%": operator.mod, "/": operator.truediv, "+": operator.add,
          "-": operator.sub, "*": operator.mul}   # (+ - * atoms only in float expressions)


def evaluate(poly, values):
    total = 0
    for mono, c in poly:
        term = c
        for atom in mono:
            term *= values[atom] if isinstance(atom, str) else \
                _ATOMS[atom[0]](evaluate(atom[1], values), evaluate(atom[2], values))
        total += term
    return total


def _decide(poly, rel):
    """The answer of `poly rel 0` when it is the same for every size >= 2, else None."""
    c = constant_of(poly)
    if c is not None:
        return _RELATIONS[rel](c, 0)
    low = _low(poly)
    if low is not None and (low > 0 or low == 0 and rel in ("<", ">=")):   # poly >= low for every size
        return _RELATIONS[rel](low if low > 0 else 0, 0) if rel != "<" else False
    high = _low(tuple((m, -k) for m, k in poly))
    if high is not None and (high > 0 or high == 0 and rel in (">", "<=")):   # poly <= -high
        return _RELATIONS[rel](-high if high > 0 else 0, 0) if rel != ">" else False
    return None


def _low(poly):
    """A lower bound of `poly` for every size >= 2 (None when a term may be negative)."""
    total = 0
    for m, k in poly:
        if m and k < 0:
            return None
        term = k
        for a in m:
            if isinstance(a, str):
                term *= 2
            elif a[0] in ("//", "%") and _at_least(a[1], 0) and _at_least(a[2], 1):
                term *= 0   # (n // 3, n % 4: at least 0)
            else:
                return None
        total += term
    return total


def _at_least(poly, bound):
    low = _low(poly)
    return low is not None and low >= bound


def _operand_text(poly, sizes):
    """An operand of //, % or /: in parentheses unless it is one number or one symbol, so that the
    text (also generated code, gradc.lowered_sizes.code) computes what the expression does."""
    text = show(poly, sizes)
    single = len(poly) == 1 and (not poly[0][0] or poly[0][1] == 1 and len(poly[0][0]) == 1) and poly[0][1] >= 0
    return text if single or not poly else f"({text})"


def show(poly, sizes=None):
    """A polynomial as a person writes it, symbols by their labels when `sizes` is given."""
    def atom_text(a):
        if isinstance(a, str):
            return sizes.symbols[a][2] if sizes is not None else a
        return f"({_operand_text(a[1], sizes)} {a[0]} {_operand_text(a[2], sizes)})"
    parts = []
    for mono, c in poly:
        body = "*".join(atom_text(a) for a in mono)
        parts.append(str(c) if not mono else body if c == 1 else f"-{body}" if c == -1 else f"{c}*{body}")
    return " + ".join(parts).replace("+ -", "- ") or "0"


class SymInt:
    """A traced size (see the module docs): an int to shape arithmetic, a guard to everything else.
    `hint` is its value in the call being traced; `poly` its expression over the symbols."""
    __slots__ = ("poly", "hint", "sizes")

    def __init__(self, poly, hint, sizes):
        self.poly, self.hint, self.sizes = poly, hint, sizes

    @property
    def p(self):
        """The expression with what guards established substituted (n is 16 from a guard on)."""
        known = self.sizes.aliases
        return _substitute(self.poly, known) if known else self.poly

    # arithmetic that stays symbolic
    def _other(self, other):
        if isinstance(other, SymInt):
            if other.sizes is not self.sizes:   # a size another trace left in Python state: its value then
                return (_const(other.hint) if not other.floating else (((), other.hint),)), other.hint
            return other.p, other.hint
        if isinstance(other, (int, np.integer)):   # (bool too)
            return _const(int(other)), int(other)
        return None

    def _make(self, poly, hint):
        c = constant_of(poly)
        if c is not None and not isinstance(self, SymFloat):
            return c
        return type(self)(poly, hint, self.sizes)

    def __add__(self, other):
        o = self._other(other)
        return NotImplemented if o is None else self._make(_poly(self.p + o[0]), self.hint + o[1])

    __radd__ = __add__

    def __neg__(self):
        return self._make(tuple((m, -c) for m, c in self.p), -self.hint)

    def __sub__(self, other):
        o = self._other(other)
        return NotImplemented if o is None else self._make(_poly(self.p + tuple((m, -c) for m, c in o[0])),
                                                           self.hint - o[1])

    def __rsub__(self, other):
        return (-self).__add__(other)

    def __mul__(self, other):
        o = self._other(other)
        return NotImplemented if o is None else self._make(_mul(self.p, o[0]), self.hint * o[1])

    __rmul__ = __mul__

    def __pos__(self):
        return self

    def __abs__(self):
        return self if self >= 0 else -self

    def _atom(self, op, a, b, hint):
        ca, cb = constant_of(a), constant_of(b)
        if ca is not None and cb is not None:
            return _ATOMS[op](ca, cb)
        return self._make(((((op, a, b),), 1),), hint)

    def __floordiv__(self, other):
        o = self._other(other)
        if o is None:
            return NotImplemented
        q = _exact_quotient(self.p, o[0])
        if o[1] == 0:
            raise ZeroDivisionError("integer division or modulo by zero")
        return self._make(q, self.hint // o[1]) if q is not None else self._atom("//", self.p, o[0], self.hint // o[1])

    def __rfloordiv__(self, other):
        o = self._other(other)
        return NotImplemented if o is None else self._atom("//", o[0], self.p, o[1] // self.hint)

    def __mod__(self, other):
        o = self._other(other)
        if o is None:
            return NotImplemented
        if o[1] == 0:
            raise ZeroDivisionError("integer division or modulo by zero")
        return 0 if _exact_quotient(self.p, o[0]) is not None else self._atom("%", self.p, o[0], self.hint % o[1])

    def __rmod__(self, other):
        o = self._other(other)
        return NotImplemented if o is None else self._atom("%", o[0], self.p, o[1] % self.hint)

    def __divmod__(self, other):
        return self // other, self % other

    def __truediv__(self, other):
        o = self._other(other)
        if o is None:
            return NotImplemented
        return SymFloat(((((("/", self.p, o[0]),), 1),)), self.hint / o[1], self.sizes)

    def __rtruediv__(self, other):
        o = self._other(other)
        return NotImplemented if o is None else \
            SymFloat(((((("/", o[0], self.p),), 1),)), o[1] / self.hint, self.sizes)

    def __pow__(self, other):
        if type(other) is int and other >= 0:
            out = 1
            for _ in range(other):
                out = out * self
            return out
        return self._concrete() ** other

    # comparisons: guards (none where the answer is the same for every size)
    def _compare(self, other, rel):
        o = self._other(other)
        if o is None:
            return NotImplemented
        return self.sizes.record(_poly(self.p + tuple((m, -c) for m, c in o[0])), rel, self.hint - o[1])

    def __eq__(self, other):
        return self._compare(other, "==")

    def __ne__(self, other):
        return self._compare(other, "!=")

    def __lt__(self, other):
        return self._compare(other, "<")

    def __le__(self, other):
        return self._compare(other, "<=")

    def __gt__(self, other):
        return self._compare(other, ">")

    def __ge__(self, other):
        return self._compare(other, ">=")

    def __hash__(self):   # (a dict or set lookup compares values: the value, held by a guard)
        return hash(self.p) if self.sizes.structural else hash(self._concrete())

    def __bool__(self):
        return self != 0

    # used as a plain number: the value, held by a guard
    def _concrete(self):
        c = constant_of(self.p)
        if c is None:
            self.sizes.record(_poly(self.p + _const(-self.hint)), "==", 0)
        return self.hint

    def __index__(self):
        return self._concrete()

    __int__ = __index__

    def __float__(self):
        return float(self._concrete())

    def __round__(self, ndigits=None):
        return self if ndigits is None or ndigits >= 0 else round(self._concrete(), ndigits)

    def __floor__(self):
        return self

    __ceil__ = __trunc__ = __floor__

    def __repr__(self):   # (the expression, for messages; str() and format() are the value, held by a guard)
        return show(self.p, self.sizes)

    def __str__(self):
        return str(self._concrete())

    def __format__(self, spec):
        return format(self._concrete(), spec)

    def __copy__(self):   # (immutable: a copy must record its guards where the original does)
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):   # (pickled as the value)
        return type(self._concrete()), (self._concrete(),)

    def __rpow__(self, other):
        return other ** self._concrete()

    def __lshift__(self, other):
        return self._concrete() << other

    def __rshift__(self, other):
        return self._concrete() >> other

    floating = False   # (what dtypes.scalar_dtype reads: int64, or the default float for a SymFloat)


class SymFloat(SymInt):
    """A float computed from sizes (`1 / n`, `n * 0.5`). Floats do not reassociate, so its expression
    is a tree evaluated in the order Python computed it (no polynomial folding): arithmetic stays
    symbolic, anything else is a guard."""
    __slots__ = ()
    floating = True

    def _other(self, other):
        if type(other) is float:
            return (((), other),), other   # (kept as a term even when 0.0: -0.0 + 0.0 is not -0.0)
        return SymInt._other(self, other)

    def __neg__(self):
        return self * -1.0

    def __floordiv__(self, other):
        return self._concrete() // other

    def __mod__(self, other):
        return self._concrete() % other

    def __pow__(self, other):
        return self._concrete() ** other

    def __float__(self):
        return float(self._concrete())

    def __index__(self):
        raise TypeError("a float size expression cannot be used as an integer")

    def __round__(self, ndigits=None):
        return round(self._concrete(), ndigits)

    def _quotient(self):
        """(a, b) as sizes when this is a / b of two integer size expressions, else None."""
        (mono, c), = self.p if len(self.p) == 1 else ((None, None),)
        if c != 1 or len(mono) != 1 or isinstance(mono[0], str) or mono[0][0] != "/":
            return None
        _, a, b = mono[0]
        if any(type(k) is not int for _, k in a + b):
            return None
        return self.sizes.expression(a), self.sizes.expression(b)

    def __floor__(self):   # math.floor(n / 2) is n // 2, math.ceil(n / 2) is -(-n // 2): still sizes
        q = self._quotient()
        return q[0] // q[1] if q is not None else math.floor(self._concrete())

    def __ceil__(self):
        q = self._quotient()
        return -(-q[0] // q[1]) if q is not None else math.ceil(self._concrete())

    __int__ = lambda self: int(self._concrete())


def _float_arith(op, reflected):
    def method(self, other):
        o = self._other(other)
        if o is None:
            return NotImplemented
        (pa, ha), (pb, hb) = (o, (self.p, self.hint)) if reflected else ((self.p, self.hint), o)
        return SymFloat((((((op, pa, pb),), 1),)), _ATOMS[op](ha, hb), self.sizes)
    return method


for _op, _name in (("+", "add"), ("-", "sub"), ("*", "mul"), ("/", "truediv")):
    setattr(SymFloat, f"__{_name}__", _float_arith(_op, False))
    setattr(SymFloat, f"__r{_name}__", _float_arith(_op, True))


def _exact_quotient(a, b):
    """a // b as a polynomial when b is one term that divides every term of a exactly, else None."""
    if not a:
        return ()
    if len(b) != 1 or _decide(b, "!=") is not True:   # (b may be 0 for some size: eager raises there)
        return None
    (mb, cb), = b
    out = []
    for ma, ca in a:
        rest = list(ma)
        for atom in mb:
            if atom not in rest:
                return None
            rest.remove(atom)
        if type(ca) is not int or type(cb) is not int or ca % cb:
            return None
        out.append((tuple(rest), ca // cb))
    return _poly(out)


def is_live(v):
    """Whether `v` is a size of the trace now running (a size an ended trace left behind is a number)."""
    return isinstance(v, SymInt) and v.sizes.open


def is_symbolic(shape):
    return any(is_live(d) for d in shape)


def map_sizes(obj, f):
    """`obj` with every size expression s replaced by f(s); tuples, lists and dicts are walked,
    anything else is kept."""
    t = type(obj)
    if t is int or t is float or t is str or obj is None:
        return obj
    if isinstance(obj, SymInt):
        return f(obj)
    if t is tuple or t is list:
        return t(map_sizes(v, f) for v in obj)
    if t is dict:
        return {map_sizes(k, f): map_sizes(v, f) for k, v in obj.items()}
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):   # a Size held as an op's attribute: a plain tuple
        return tuple(map_sizes(v, f) for v in obj)
    return obj


def concrete(obj, sizes, values):
    """`obj` with every size expression of `sizes` replaced by its value for these sizes (one from
    another trace, kept in Python state, by its value then), walked as map_sizes walks."""
    def value(s):
        v = evaluate(s.poly, values) if s.sizes is sizes else s.hint
        return float(v) if s.floating else v
    return map_sizes(obj, value)


def _promoting(name):
    """A float operand makes an int size a float expression (`n * 0.5`), as Python's int would."""
    method = getattr(SymInt, name)

    def wrapped(self, other):
        if (type(other) is float or isinstance(other, SymFloat)) and not self.floating:
            return getattr(SymFloat(self.p, self.hint, self.sizes), name)(other)
        return method(self, other)
    return wrapped


for _name in ("add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv", "eq", "ne", "lt", "le", "gt", "ge"):
    setattr(SymInt, f"__{_name}__", _promoting(f"__{_name}__"))


def _closed_as_value(name, method):
    """A size kept in Python state after its trace ended is the number it was in that call, as the
    eager call would have left there (a cache sized by the longest input so far, say)."""
    def wrapped(self, *args):
        if self.sizes.open:
            return method(self, *args)
        args = [a.hint if isinstance(a, SymInt) and not a.sizes.open else a for a in args]
        return getattr(self.hint, name)(*args)
    return wrapped


for _cls in (SymInt, SymFloat):
    for _name, _method in list(vars(_cls).items()):
        if _name.startswith("__") and callable(_method) and _name not in ("__init__", "__copy__", "__deepcopy__"):
            setattr(_cls, _name, _closed_as_value(_name, _method))
