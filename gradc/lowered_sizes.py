"""Sizes in a lowering: a trace's symbolic sizes (gradc.symint) as the passes and the code
generators see them when one lowering serves every size (gradc.dynamic).

The graph is lowered with its sizes bound to a Sizes of the lowering's own (`rebound`), so that
what a pass assumes about a size is a guard of the lowered program. Passes that only need a size
to be the same for every size compare `size_key`s; choices that are correct at every size and
only faster at some read the `hint`; code generators write a size as `code` over the symbols,
which the generated module binds (`symbols_of`) when it is made for a call's sizes."""
from .errors import GradcError
from .symint import constant_of, evaluate, is_live, map_sizes, show


def rebound(obj, sizes, values, target):
    """`obj` with every size expression of `sizes` made one of `target` (a Sizes with the same
    symbols), whose hint is its value for these sizes: what the lowering of a trace sees, so that
    what the passes and code generation assume about a size becomes a guard of the lowered program."""
    def bind(s):
        if s.sizes is not sizes:   # (one another trace left in Python state: its value then, as concrete takes it)
            return float(s.hint) if s.floating else s.hint
        p = s.p
        c = None if s.floating else constant_of(p)
        return c if c is not None else type(s)(p, evaluate(p, values), target)
    return map_sizes(obj, bind)


def symbols_of(obj):
    """The names of the symbols of the lowering whose sizes `obj` holds, sorted: all of them, since
    code made before a guard fixed a size may still name it."""
    found = set()
    map_sizes(obj, lambda s: found.update(s.sizes.symbols if s.sizes.open else ()))
    return sorted(found)


def size_key(v):
    """What identifies a size for every size at once: a live size expression by its polynomial, a
    number by itself. Equal keys are equal sizes whatever the symbols are; sizes that are only
    equal now (n and 16 at n = 16) have different keys, which no guard needs to record."""
    return ("size", v.p) if is_live(v) else v


def hint(v):
    """A size's value at the sizes being lowered, with no guard: for choices that are correct at
    every size and only faster at some (what to recompute, when to transpose), never for one that
    a program's correctness rests on."""
    return v.hint if is_live(v) else v


def c_code(v):
    """A live size expression as C (long arithmetic) over the symbols, each S<k> in a kernel;
    // and % as Python's (gradc_floordiv, gradc_mod), whatever the signs."""
    def poly(p):
        terms = []
        for mono, c in p:
            if type(c) is not int:
                raise GradcError(f"the size expression {show(v.p)} is not an integer")
            parts = [] if c == 1 and mono else [f"{c}L"]
            for a in mono:
                if isinstance(a, str):
                    parts.append(a.upper())
                elif a[0] in ("//", "%"):
                    parts.append(f"gradc_{'floordiv' if a[0] == '//' else 'mod'}({poly(a[1])}, {poly(a[2])})")
                else:
                    raise GradcError(f"the size expression {show(v.p)} is not an integer")
            terms.append("*".join(parts))
        return f"({' + '.join(terms)})" if terms else "0L"
    return poly(v.p)


def code(v):
    """A live size expression as Python source over the symbols' names (s0, s1, ...)."""
    text = show(v.p)
    if "inf" in text or "nan" in text:
        raise GradcError(f"the size expression {text} has no Python source")
    return f"({text})"
