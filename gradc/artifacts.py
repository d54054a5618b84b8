"""gradc.export and gradc.load: ahead-of-time programs (the file format is gradc.runtime.artifact).

`export` traces a function into a Program without running it, names its inputs and state after
the function's parameters, modules and optimizers, and refuses programs that are only valid for
one call; `Program.save` writes it (gradc.runtime.artifact). `load` hands the artifact loader the
lowering pipeline, which regenerates the code from the saved graph: the runtime itself never
imports the compiler."""
import inspect

from .compiler import CompiledFunction
from .errors import ArtifactError
from .grad_mode import no_grad
from .lower import lower
from .nn import Module
from .optim.optimizer import Optimizer
from .pytree import flatten
from .runtime import artifact
from .tensor import Tensor


def export(fn, *example_args, backend="auto", amp=None):
    """Trace `fn(*example_args)` into a Program without running it, ready for `Program.save`.

    Only positional arguments are supported; tensors among them become the program's inputs (the
    shapes and dtypes of the examples are fixed), other values are baked in. State the function
    reads (parameters, buffers, optimizer state) is named after the modules and optimizers it is
    reachable from (the module itself, a bound method's object, a closure or a global)."""
    prog = trace(fn, *example_args, backend=backend, amp=amp)
    if prog.one_shot:
        raise ArtifactError(f"gradc.export({getattr(fn, '__name__', type(fn).__name__)}): {artifact.ONE_SHOT}")
    return prog


def trace(fn, *example_args, backend="auto", amp=None):
    """What export does, short of refusing a program that creates state (`gradc dump` shows those)."""
    fuse = True
    if isinstance(fn, CompiledFunction):
        backend = fn.backend if backend == "auto" else backend
        amp = fn.amp if amp is None else amp
        fuse, fn = fn.fuse, fn.fn
    cf = CompiledFunction(fn, backend=backend, amp=amp, fuse=fuse)
    prog = cf.lower(*example_args)
    if prog.backward is not None:
        # The outputs need grad: a loaded program runs without autograd, so save the inference form
        # (no saved activations, no backward program).
        with no_grad():
            prog = cf.lower(*example_args)
    flat, _ = flatten(list(example_args))
    return prog.replace(artifact_info={
        "inputs": [{"name": n, "shape": list(t.shape), "dtype": t.dtype.name}
                   for n, t in zip(_input_names(fn, example_args, len(flat)), flat)],
        "state_names": _state_names(fn, prog.bindings), "amp": amp, "fuse": fuse, "requested_backend": backend})


def load(path):
    """Read, validate and rebuild a saved program (see gradc.runtime.artifact.load): nothing in the
    file is executed; the code is regenerated from the validated graph by gradc.lower.lower."""
    return artifact.load(path, lower)


def _input_names(fn, args, n):
    """Names of the flat tensor arguments: the parameter names of `fn` where it has them."""
    names = []
    try:
        sig = inspect.signature(fn.forward if isinstance(fn, Module) else fn)
        bound = sig.bind(*args)
        for pname, value in bound.arguments.items():
            leaves, _ = flatten(value)
            names += [pname] if isinstance(value, Tensor) else [f"{pname}_{j}" for j in range(len(leaves))]
    except (TypeError, ValueError):
        names = []
    if len(names) != n:
        names = [f"input{i}" for i in range(n)]
    return artifact.unique_names([artifact.safe_name(x, f"input{i}") for i, x in enumerate(names)])


def _roots(fn):
    """(prefix, object) pairs the function's state is reachable from, most specific first."""
    roots = []
    if isinstance(fn, Module):
        roots.append(("", fn))
    func = getattr(fn, "__func__", fn)
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, Module):
        roots.append(("", owner))
    elif owner is not None and hasattr(owner, "__dict__"):
        roots += list(vars(owner).items())
    code = getattr(func, "__code__", None)
    if code is not None:
        for name, cell in zip(code.co_freevars, getattr(func, "__closure__", None) or ()):
            try:
                roots.append((name, cell.cell_contents))
            except ValueError:  # an empty cell
                pass
        glb = getattr(func, "__globals__", {})
        roots += [(name, glb[name]) for name in code.co_names if name in glb]
    return [(p, o) for p, o in roots if isinstance(o, (Module, Optimizer, Tensor))]


def _state_names(fn, bindings):
    """{slot: readable name} for the "state" bindings; unnamed tensors become state<slot>."""
    named = {}
    roots = _roots(fn)
    for prefix, obj in roots:
        if isinstance(obj, Module):
            for n, t in list(obj.named_parameters()) + list(obj.named_buffers()):
                named.setdefault(id(t), f"{prefix}.{n}" if prefix else n)
        elif isinstance(obj, Tensor):
            named.setdefault(id(obj), prefix)
    for prefix, obj in roots:
        if isinstance(obj, Optimizer):
            params = [p for g in obj.param_groups for p in g["params"]]
            for i, p in enumerate(params):
                pname = named.get(id(p), f"param{i}")
                for key, value in obj.state.get(p, {}).items():
                    if isinstance(value, Tensor):
                        named.setdefault(id(value), f"{prefix}.{pname}.{key}")
    names = {slot: artifact.safe_name(named.get(id(b.ref), ""), f"state{slot}")
             for slot, b in enumerate(bindings) if b.kind == "state"}
    return dict(zip(names, artifact.unique_names(list(names.values()))))
