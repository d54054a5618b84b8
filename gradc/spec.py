"""What `gradc.lower.lower(graph, spec)` is asked to build: a typed, immutable request.

It lives in a leaf module because both sides of the pipeline speak it: the compiler describes a
traced call with it, and the artifact loader describes a saved program with it (the runtime never
imports the pipeline; it is handed the pipeline function)."""
from dataclasses import dataclass
from typing import Any, Optional

from .errors import GradcError

BACKENDS = ("numpy", "c", "cuda")


@dataclass(frozen=True)
class Gradients:
    """The autodiff stage's request: gradients of the returned outputs at positions `outputs`
    with respect to the graph inputs at slots `wrt`. Used for a compiled forward whose backward
    runs when the caller calls backward() (a step that calls backward() itself was differentiated
    while it was traced)."""
    outputs: tuple
    wrt: tuple

    def __post_init__(self):
        for name in ("outputs", "wrt"):
            value = tuple(getattr(self, name))
            if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value):
                raise GradcError(f"Gradients.{name} must be non-negative integer positions, got {value!r}")
            object.__setattr__(self, name, value)
        if not self.outputs:
            raise GradcError("Gradients.outputs is empty: name at least one returned output to differentiate")


@dataclass(frozen=True)
class Spec:
    """How to lower one graph, and how the resulting Program connects to tensors.

    backend       "numpy", "c" or "cuda" (gradc.compile resolves "auto" before lowering)
    fuse          run the fusion pass (False: every op is its own unit)
    optimize      run simplify and recompute (False: the graph is already optimised, e.g. an artifact's)
    block_bytes   row-block size of fused NumPy loops; None: the size measured on this machine
    bindings      one Binding per graph input (empty: the Program is only run with `execute(arrays)`)
    effects       Effects applied after each run (state write-backs, new .grad, new tensors)
    n_returned    how many leading graph outputs the call returns (None: all of them)
    out_spec      the pytree spec the returned outputs are unflattened with
    guards        callables on the flat arguments that must hold for the Program to be reused
    one_shot      the Program creates state and is valid for one call only
    gradients     a Gradients request for the autodiff stage, or None
    trace_seconds how long tracing took (recorded in stats with the total compile time), or None"""
    backend: str = "numpy"
    fuse: bool = True
    optimize: bool = True
    block_bytes: Optional[int] = None
    bindings: tuple = ()
    effects: tuple = ()
    n_returned: Optional[int] = None
    out_spec: Any = None
    guards: tuple = ()
    one_shot: bool = False
    gradients: Optional[Gradients] = None
    trace_seconds: Optional[float] = None

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise GradcError(f"Spec.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r} "
                             "(gradc.compile(backend='auto') picks one before lowering)")
        for name in ("bindings", "effects", "guards"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("fuse", "optimize", "one_shot"):
            if not isinstance(getattr(self, name), bool):
                raise GradcError(f"Spec.{name} must be True or False, got {getattr(self, name)!r}")
        if self.block_bytes is not None and (not isinstance(self.block_bytes, int) or self.block_bytes <= 0):
            raise GradcError(f"Spec.block_bytes must be a positive number of bytes or None, got {self.block_bytes!r}")
        if self.n_returned is not None and (not isinstance(self.n_returned, int) or self.n_returned < 0):
            raise GradcError(f"Spec.n_returned must be a non-negative integer or None, got {self.n_returned!r}")
        if self.gradients is not None and not isinstance(self.gradients, Gradients):
            raise GradcError(f"Spec.gradients must be a gradc.lower.Gradients or None, got "
                             f"{type(self.gradients).__name__}")

    def check(self, graph):
        """Say what does not fit `graph` (input and output counts and positions)."""
        n_in, n_out = len(graph.inputs), len(graph.outputs)
        n_ret = self.returned(graph)
        if n_ret > n_out:
            raise GradcError(f"Spec.n_returned is {n_ret} but the graph has {n_out} outputs")
        if self.bindings and len(self.bindings) != n_in:
            raise GradcError(f"the spec binds {len(self.bindings)} inputs but the graph has {n_in}; give one "
                             "Binding per graph input, or none to run the Program on raw arrays only")
        for e in self.effects:
            if e.out is not None and not 0 <= e.out < n_out:
                raise GradcError(f"an effect writes graph output {e.out}, but the graph has {n_out} outputs")
            if e.kind in ("data", "grad") and not (self.bindings and 0 <= e.slot < n_in):
                raise GradcError(f"a {e.kind!r} effect writes input slot {e.slot}, which no binding of the spec "
                                 "provides")
        if self.gradients is not None:
            stored = {e.out for e in self.effects if e.kind == "new"}
            bad = [i for i in self.gradients.outputs if i >= n_ret and i not in stored]
            if bad:
                raise GradcError(f"Gradients.outputs {bad} are neither among the {n_ret} returned outputs nor "
                                 "tensors the call stores ('new' effects)")
            bad = [s for s in self.gradients.wrt if s >= n_in]
            if bad:
                raise GradcError(f"Gradients.wrt {bad} are not input slots of the graph ({n_in} inputs)")

    def returned(self, graph):
        return len(graph.outputs) if self.n_returned is None else self.n_returned
