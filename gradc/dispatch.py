"""One dispatch for every primitive call: a stack of modes (the interpreter pattern of JAX).

A mode is an object with `bind(prim, args, attrs)`. Transforms (autocast, order 0) rewrite a
call and pass it to the mode below them; interpreters (order 1) handle it: the tracer while a
function is being traced, eager execution otherwise (the base, installed by gradc.eager). The
interpreter also answers what a tensor operation needs besides a primitive: constants, random
draws, in-place writes, detach, device copies, concrete values and backward.

The stack is process-wide: modes are pushed and popped around a region. A tracer belongs to the
thread that traces (`thread`): another thread's calls pass it by, to the eager interpreter, so
eager work elsewhere is not recorded into a trace."""
import contextlib
import threading

_ident = threading.get_ident

class Value:
    """What the dispatch stack computes on: gradc.Tensor derives from it, so the op table and its
    frontends recognise tensors without importing the Tensor class that sits above them."""
    __slots__ = ()


_modes = []          # pushed modes, kept sorted by order (stable): the first handles a call first
_base = [None]       # the eager interpreter


class Mode:
    order = 1
    below = None     # the next mode down, linked by push/pop
    thread = None    # the thread an interpreter serves (None: every thread)

    def bind(self, prim, args, attrs):
        return self.below.bind(prim, args, attrs)


def set_base(mode):
    _base[0] = mode
    _relink()


def _relink():
    chain = _modes + [_base[0]]
    for upper, lower in zip(chain, chain[1:]):
        upper.below = lower
    global _head
    _head = chain[0]


def push(mode):
    """Activate `mode` (transforms before interpreters, later pushes above earlier ones)."""
    i = len(_modes)
    while i > 0 and _modes[i - 1].order > mode.order:
        i -= 1
    _modes.insert(i, mode)
    _relink()


def pop(mode):
    _modes.remove(mode)
    _relink()


def bind(prim, args, attrs):
    """Apply primitive `prim` to tensor operands `args` under the active modes."""
    return _head.bind(prim, args, attrs)


def _serves(m):
    return m.order >= 1 and (m.thread is None or m.thread == _ident())


def interpreter():
    """The mode that executes: the innermost tracer of this thread, or eager execution."""
    for m in reversed(_modes):
        if _serves(m):
            return m
    return _base[0]


def eager():
    return _base[0]


def tracer():
    """This thread's active tracer, or None when running eagerly."""
    for m in reversed(_modes):
        if _serves(m):
            return m
    return None


@contextlib.contextmanager
def outside_trace():
    """Run a block eagerly even while a function is traced: tensors it creates are real data, not
    graph constants (optimizer state made on the first step, see gradc.optim.optimizer)."""
    held = [m for m in _modes if m.order >= 1]
    for m in held:
        _modes.remove(m)
    _relink()
    try:
        yield
    finally:
        for m in held:
            push(m)


def low_precision():
    """The dtype an open autocast region computes matmuls in on this thread, or None."""
    for m in _modes:
        if m.order == 0:
            low = m.low_dtype()
            if low is not None:
                return low
    return None


_head = None
