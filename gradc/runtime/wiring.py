"""How a program connects to tensors: where each graph input comes from (`Binding`) and where each
output goes after a run (`Effect`). The tracer creates them, the artifact loader rebuilds them
from a manifest, and a Program resolves them on every call; none of those imports another."""
import numpy as np

from .. import dtypes as D
from ..device import CPU
from ..random import sample
from ..tensor import Tensor


class Binding:
    """Where a graph input comes from at run time: positional argument i, a state tensor held by
    the program, the `.grad` of an argument/state tensor, a fresh random draw (ref = spec), or a
    Python float argument (ref = its position among the call's leaves, as for "arg")."""
    __slots__ = ("kind", "ref", "owner")

    def __init__(self, kind, ref, owner=None):
        self.kind, self.ref, self.owner = kind, ref, owner  # kind: "arg" | "state" | "grad" | "random" | "number"

    def __repr__(self):
        return f"Binding({self.kind}, {self.ref if self.kind == 'arg' else type(self.ref).__name__})"


class Effect:
    """A write the program performs after each run: output `out` goes into binding `slot` as its
    data ("data"), as its `.grad` ("grad", out None = set to None), or into a new tensor ("new");
    or the state tensor at `slot` gets requires_grad = `target` ("requires_grad")."""
    __slots__ = ("kind", "slot", "out", "target")

    def __init__(self, kind, slot=None, out=None, target=None):
        self.kind, self.slot, self.out, self.target = kind, slot, out, target


def resolve(bindings, flat_args, staged=None):
    """The tensor behind each binding for one call with these flat tensor arguments. `staged`: a
    dict a device program keeps, holding the device buffers its float arguments and random draws
    are copied into on every call (see `_stage`)."""
    tensors = []
    for b in bindings:
        if b.kind == "arg":
            t = flat_args[b.ref]
        elif b.kind == "state":
            t = b.ref
        elif b.kind in ("random", "number"):
            t = None   # made below, on the device of the other inputs (which may come later)
        else:
            t = tensors[b.owner].grad
        tensors.append(t)
    real = [t for t in tensors if t is not None]
    dev = next((t.device for t in real), CPU)
    if dev is not CPU and staged is not None:
        _stage(bindings, flat_args, tensors, staged, dev)
        return tensors
    for i, b in enumerate(bindings):
        if b.kind == "random":
            tensors[i] = draw(b.ref, real)
        elif b.kind == "number":
            tensors[i] = number(flat_args[b.ref], real)
    return tensors


def _stage(bindings, flat_args, tensors, staged, dev):
    """Float arguments and random draws of a device program, written into buffers it keeps: every
    call then passes the same addresses (a captured CUDA graph replays only then), and the float
    arguments of a call take one host-to-device copy together, as one float64 block."""
    xp = dev.xp
    numbers = [i for i, b in enumerate(bindings) if b.kind == "number"]
    if numbers:
        block = staged.get("numbers")
        if block is None:
            block = staged["numbers"] = xp.empty(len(numbers), dtype=np.float64)
        block.set(np.array([float(flat_args[bindings[i].ref]) for i in numbers], dtype=np.float64))
        for j, i in enumerate(numbers):
            tensors[i] = Tensor._wrap(block[j:j + 1].reshape(()), D.float64, dev)
    for i, b in enumerate(bindings):
        if b.kind == "random":
            data = sample(b.ref)
            buf = staged.get(i)
            if buf is None or buf.shape != data.shape or buf.dtype != data.dtype:
                buf = staged[i] = xp.empty(data.shape, dtype=data.dtype)
            buf.set(np.ascontiguousarray(data))
            tensors[i] = Tensor._wrap(buf, D.ALL[b.ref[2]], dev)


def number(value, tensors):
    """A Python float argument as the 0-d float64 input a program reads it from, on the device of
    the program's other inputs."""
    dev = next((t.device for t in tensors if t is not None), CPU)
    data = np.array(float(value), dtype=np.float64)
    return Tensor._wrap(data if dev is CPU else dev.xp.asarray(data), D.float64, dev)


def draw(spec, tensors):
    """A fresh random input, on the device of the program's other inputs."""
    dev = next((t.device for t in tensors if t is not None), CPU)
    data = sample(spec)
    return Tensor._wrap(data if dev is CPU else dev.xp.asarray(data), D.ALL[spec[2]], dev)
