"""Compiled forward, eager backward: when a compiled call returns tensors that require grad (and
did not call backward itself), the pipeline splits the joint forward+backward graph in two
programs (gradc.passes.split).

The forward program also returns the activations the backward needs; each returned tensor gets an
autograd Node whose VJP runs the backward program, so `loss.backward()` after a compiled forward
works as in eager mode and fills `.grad` of the parameters and inputs."""
from typing import NamedTuple

import numpy as np

from ..autograd import Node
from ..tensor import Tensor


class Backward(NamedTuple):
    """A forward program's backward: the Program computing the gradients, and the wiring between
    the two (saved_outputs, grad_outputs, wrt_slots, has_grad, cot_specs)."""
    program: object
    wiring: dict


class CompiledBackward:
    """Autograd's view of a compiled forward: its VJP runs the backward program."""
    name, saves, saves_for = "compiled", frozenset(), None  # what autograd's Node reads of a primitive
    diff, second_order = True, False  # its gradients come from a program, without history of their own
    saved_attrs = ("saved",)   # the forward's activations: freed after one backward (autograd._release)

    def __init__(self, backward):
        self.bprog, self.wiring = backward

    def vjp(self, ctx, g):
        w = self.wiring
        cots = []
        for k, (shape, dtype) in enumerate(w["cot_specs"]):
            cots.append(g._data if k == ctx.attrs["index"] else np.zeros(shape, dtype=dtype))
        outs = iter(self.bprog.execute(list(ctx.attrs["saved"]) + cots))
        grads = []
        for has, dtype, need in zip(w["has_grad"], ctx.dtypes, ctx.needs):
            arr = next(outs) if has else None
            grads.append(Tensor._wrap(arr, dtype, g.device) if (arr is not None and need) else None)
        return tuple(grads)

    def attach(self, tensors, outs, returned, stored):
        """Give the returned tensors that need it, and those the call stored (`stored`: graph output
        -> tensor), an autograd Node backed by the backward program."""
        w = self.wiring
        saved = [outs[i] for i in w["saved_outputs"]]
        args = [tensors[s] for s in w["wrt_slots"]]
        if not any(a.requires_grad for a in args):
            return
        for k, pos in enumerate(w["grad_outputs"]):
            out = returned[pos] if pos < len(returned) else stored[pos]
            out._grad_fn = Node(self, {"saved": saved, "index": k}, args, out)
            out.requires_grad = True
