"""gradc.Program: one compiled signature of a function.

It owns the optimised graph, the generated source and the loaded entry function, and knows how to
call it: gather input arrays from their bindings (arguments, state tensors, `.grad` slots), run,
write state back, and wrap the returned arrays as tensors. Every field is given when it is built
(by gradc.lower.lower); `replace` makes a new Program with some fields changed."""
import json
import threading
from pathlib import Path

import numpy as np

from .. import dtypes as D
from ..device import CPU
from ..errors import DTypeError, GradcError, ShapeError
from ..ops import OPS
from ..pytree import flatten, unflatten
from ..shapes import Size
from ..tensor import Tensor
from . import cache
from .aot import Backward, CompiledBackward
from .stats import Stats
from .wiring import Binding, Effect, resolve  # noqa: F401  (Binding, Effect: part of this module's API)


class ReadOnlyTensorError(GradcError, ValueError):
    """A compiled program must write a tensor whose array is read-only."""


class Program:
    """One lowered signature. `ir`: the graph after all passes; `bindings`/`effects`: where inputs
    come from and outputs go; `source`: {file: generated text}; `stats`: what the passes and code
    generation measured; `kernels`: [(name, source)] of generated kernels; `copy_out`: output
    positions to copy before handing out; `inplace_state`: {output position: input slot} the code
    already wrote in place; `backward`: a `Backward` when outputs need eager backward; `stages`: the
    pipeline's per-stage records in the order they ran; `spec` and `pipeline`: how it was lowered
    (an artifact regenerates its code with them); `artifact_info`: what an export or a load knows;
    `sizes`: {symbol: size} a program generated for symbolic sizes runs with (gradc.dynamic)."""

    def __init__(self, ir, bindings, effects, n_returned, out_spec, backend, source, stats, guards=(),
                 one_shot=False, backward=None, *, kernels=(), copy_out=None, inplace_state=None, stages=(),
                 spec=None, pipeline=None, artifact_info=None, sizes=None):
        self._fields = dict(ir=ir, bindings=bindings, effects=effects, n_returned=n_returned, out_spec=out_spec,
                            backend=backend, source=source, stats=stats, guards=guards, one_shot=one_shot,
                            backward=backward, kernels=kernels, copy_out=copy_out, inplace_state=inplace_state,
                            stages=stages, spec=spec, pipeline=pipeline, artifact_info=artifact_info,
                            sizes=sizes)
        self.ir = ir
        self.bindings = list(bindings)
        self.effects = list(effects)
        self.n_returned = n_returned
        self.out_spec = out_spec
        self.backend = backend
        self._source = dict(source)
        self.stats = stats if isinstance(stats, Stats) else Stats(stats)   # a dict that prints as a table
        self.guards = list(guards)
        self.one_shot = one_shot
        self.backward = None if backward is None else Backward(*backward)
        self.stages = tuple(stages)
        self.spec = spec
        self.pipeline = pipeline
        self.artifact_info = artifact_info
        self.sizes = sizes
        self._kernels = list(kernels)
        self._copy_out = set(copy_out) if copy_out is not None else \
            {i for i, o in enumerate(ir.outputs) if ir.node(o)["op"] in ("input", "const")}
        self._inplace = dict(inplace_state or {})
        self._accumulated = {b.owner for b in self.bindings if b.kind == "grad"}   # slots whose .grad it reads
        self._vjp = None if self.backward is None else CompiledBackward(self.backward)
        self._run = None
        self._half = None
        self._expected = None
        self._plan = None
        self._lock = threading.Lock()  # buffers are shared between calls: one call at a time
        self._staged = {} if self.backend == "cuda" else None
        if self._staged is not None:   # a result viewing a staged buffer is copied: the next call overwrites it
            self._copy_out |= _views_of(ir, [n for b, n in zip(self.bindings, ir.inputs)
                                             if b.kind in ("number", "random")])

    def replace(self, **changes):
        """A new Program with the given fields changed (the rest as in this one)."""
        unknown = set(changes) - set(self._fields)
        if unknown:
            raise GradcError(f"Program.replace: unknown field(s) {', '.join(sorted(unknown))}; "
                             f"fields are {', '.join(self._fields)}")
        return Program(**{**self._fields, **changes})

    # ------------------------------------------------------------------ inspection
    @property
    def graph(self):
        """The optimised IR as a networkx.MultiDiGraph."""
        return self.ir.g

    @property
    def source(self):
        """{filename: generated source}: this program's files, and for a lowering whose outputs
        need a backward (a compiled forward of a training step) the backward program's files too,
        named backward_<file>."""
        src = dict(self._source)
        if self.backward is not None:
            src.update({f"backward_{k}": v for k, v in self.backward[0].own_source.items()})
        return src

    @property
    def own_source(self):
        """{filename: generated source} of this program alone (without its backward program's)."""
        return dict(self._source)

    @property
    def lowered(self):
        """What lowering decided besides the source: the kernel list, the outputs copied before they
        are handed out and the state written in place (what the lowered-program cache keeps)."""
        return {"kernels": list(self._kernels), "copy_out": set(self._copy_out), "inplace_state": dict(self._inplace)}

    @property
    def kernels(self):
        """[(name, source)] of the generated kernels: one CUDA kernel per fused group, or for the
        NumPy backend the generated module."""
        return list(self._kernels) if self._kernels else list(self._source.items())

    def dump(self, directory):
        """Write graph (text, DOT, JSON), generated source and stats into `directory`."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        files = {"graph.txt": self.ir.to_text(), "graph.dot": self.ir.to_dot(), "graph.json": self.ir.to_json(indent=1),
                 "stats.json": json.dumps(self.stats, indent=2, sort_keys=True, default=str) + "\n"}
        files.update(self._source)
        if self.backward is not None:
            bprog = self.backward[0]
            files.update({f"backward_{k}": v for k, v in bprog._source.items()})
            files["backward_graph.txt"] = bprog.ir.to_text()
        for name, text in files.items():
            cache.atomic_write(d / name, text)
        return d

    def __repr__(self):
        return (f"<gradc.Program {self.backend}: {self.stats.get('nodes')} nodes, {len(self.bindings)} inputs, "
                f"{len(self.ir.outputs)} outputs>")

    # ------------------------------------------------------------------ running
    def _entry(self):
        if self._run is None:
            consts = dict(self.ir.constants)
            if self.backend == "cuda":
                from . import cuda
                self._run = cuda.load(self._source["kernels.cu"], self._source["host.py"], consts, self.sizes)
            elif self.backend == "c":
                from . import native
                self._run = native.load(self._source, consts, self.sizes)
            else:
                self._run = cache.load_module(self._source["program.py"]).make(consts, self.sizes)
        return self._run

    def resolve(self, flat_args):
        """The tensor behind each binding for this call (a CUDA program's float arguments and random
        draws in buffers it keeps: wiring._stage)."""
        return resolve(self.bindings, flat_args, self._staged)

    def guards_hold(self, flat_args):
        """Whether the state this program was traced against still looks the same."""
        expected = self._expected
        if expected is None:  # what each state input looked like when traced (computed once)
            expected = self._expected = [(b, self.ir.node(nid)["shape"], D.ALL[self.ir.node(nid)["dtype"]])
                                         for b, nid in zip(self.bindings, self.ir.inputs)
                                         if b.kind in ("state", "grad")]
        for b, shape, dtype in expected:
            t = b.ref if b.kind == "state" else self._owner(b, flat_args).grad
            if t is None or t.shape != shape or t.dtype is not dtype or t._data is None:
                return False
        for guard in self.guards:
            if not guard(flat_args):
                return False
        return True

    def guard_failures(self, flat_args):
        """What no longer holds, one line each (slow path: only asked when a call traces again)."""
        if flat_args is None:
            return []
        self.guards_hold(flat_args)  # computes the expected state once
        out = []
        for b, shape, dtype in self._expected:
            nid = self.ir.inputs[self.bindings.index(b)]
            name = self.ir.node(nid)["attrs"].get("name") or nid
            t = b.ref if b.kind == "state" else self._owner(b, flat_args).grad
            if t is None:
                out.append(f"{name}: is None now")
            elif t.shape != shape or t.dtype is not dtype:
                out.append(f"{name}: {dtype.name}{list(shape)} -> {t.dtype.name}{list(t.shape)}")
        for guard in self.guards:
            if not guard(flat_args):
                explain = getattr(guard, "explain", None)
                out += explain() if explain is not None else [getattr(guard, "__doc__", None) or
                                                              "a guard on state the program read failed"]
        return out

    def _owner(self, b, flat_args):
        ob = self.bindings[b.owner]
        return flat_args[ob.ref] if ob.kind == "arg" else (ob.ref if ob.kind == "state" else
                                                           self._owner(ob, flat_args).grad)

    def execute(self, arrays):
        """Run on raw arrays (in input order); returns the raw output arrays."""
        if self._half is None:   # a mixed-precision program: float16 overflow to inf is expected, not warned
            self._half = any(d.get("dtype") == "float16" for _, d in self.ir.g.nodes(data=True))
        if self._half:
            with np.errstate(over="ignore", invalid="ignore"):
                outs = self._entry()(*arrays)
        else:
            outs = self._entry()(*arrays)
        copy = self._copy_out
        if self.backend == "cuda":
            return [o.copy() if i in copy else o for i, o in enumerate(outs)]
        ndarray = np.ndarray
        return [np.array(o) if i in copy else (o if type(o) is ndarray else np.asarray(o))
                for i, o in enumerate(outs)]

    def _call_plan(self):
        """What every call does, worked out once: the slots checked for a read-only array before
        running, whether bindings are arguments and state only (resolved without the general walk),
        the dtype of each returned output, and the input whose device the outputs get (not a float
        argument's: that is made on the device of the others)."""
        plan = self._plan
        if plan is None:
            plain = all(b.kind in ("arg", "state") for b in self.bindings)
            plan = self._plan = (
                tuple(e.slot for e in self.effects if e.kind == "data"),
                tuple((b.kind == "arg", b.ref) for b in self.bindings) if plain else None,
                tuple(D.ALL[self.ir.node(self.ir.outputs[i])["dtype"]] for i in range(self.n_returned)),
                bool(self.effects),
                next((i for i, b in enumerate(self.bindings) if b.kind != "number"), None))
        return plan

    def call_tree(self, flat_args):
        """call_flat, with the results arranged as the traced function returned them."""
        return unflatten(self.out_spec, self.call_flat(flat_args))

    def call_flat(self, flat_args):
        written, plain, out_dtypes, has_effects, on = self._call_plan()
        with self._lock:   # one call at a time: buffers (and a CUDA program's staged inputs) are shared
            tensors = [flat_args[ref] if is_arg else ref for is_arg, ref in plain] if plain is not None else \
                self.resolve(flat_args)
            for slot in written:  # checked before running: a failed write-back would leave state half updated
                if not getattr(getattr(tensors[slot]._data, "flags", None), "writeable", True):
                    name = self.ir.node(self.ir.inputs[slot])["attrs"].get("name", f"input {slot}")
                    raise ReadOnlyTensorError(
                        f"the compiled program updates {name} in place, but its NumPy array is read-only (e.g. a "
                        "parameter made with gradc.from_numpy of a read-only array); give it a writable copy "
                        "first: p.data = p.data.clone(), or gradc.from_numpy(array.copy())")
            outs = self.execute([t._data for t in tensors])
        if has_effects:
            self._write_back(tensors, outs)
        dev = tensors[on].device if on is not None else CPU
        wrap = Tensor._wrap
        returned = [wrap(outs[i], dtype, dev) for i, dtype in enumerate(out_dtypes)]
        if self._vjp is not None:
            self._vjp.attach(tensors, outs, returned, {e.out: e.target for e in self.effects if e.kind == "new"})
        return returned

    def _write_back(self, tensors, outs):
        for e in self.effects:
            if e.kind == "data":
                t = tensors[e.slot]
                if self._inplace.get(e.out) != e.slot:
                    t._data[...] = outs[e.out]
                t._version[0] += 1
            elif e.kind == "grad":
                t, held = tensors[e.slot], tensors[e.slot].grad
                if e.out is not None and e.slot in self._accumulated and held is not None and held._data is not None \
                        and held.shape == outs[e.out].shape and held.dtype.np == outs[e.out].dtype:
                    held._data[...] = outs[e.out]   # accumulated into the .grad it read: in place, as PyTorch
                    held._version[0] += 1
                else:
                    t.grad = None if e.out is None else _wrap(outs[e.out], self.ir, self.ir.outputs[e.out], t.device)
            elif e.kind == "requires_grad":   # the traced function set it (freezing a discriminator)
                tensors[e.slot].requires_grad = e.target
            else:  # a tensor the traced call created and stored somewhere: it becomes concrete now
                t = e.target
                t._data, t._sym, t.shape = outs[e.out], None, Size(outs[e.out].shape)   # (sizes were symbolic)
                t.requires_grad, t._grad_fn = False, None

    def __call__(self, *args):
        """Run with positional tensor arguments (in the traced order)."""
        flat, _ = flatten(list(args))
        self.check_args(flat, args)
        return unflatten(self.out_spec, self.call_flat(flat))

    def check_args(self, flat_args, args=()):
        """A program runs only on the tensors it was traced for: say which argument differs and what it expects."""
        specs = (self.artifact_info or {}).get("inputs")
        wanted = {b.ref: self.ir.node(nid) for b, nid in zip(self.bindings, self.ir.inputs) if b.kind == "arg"}
        expected = len(specs) if specs is not None else max(wanted, default=-1) + 1
        label = (lambda i: specs[i]["name"]) if specs else (lambda i: i)
        if len(flat_args) != expected:
            shown = ", ".join(f"{label(i)}: " + (f"{wanted[i]['dtype']}{list(wanted[i]['shape'])}" if i in wanted
                                                 else "any") for i in range(expected))
            others = [f"argument {i} is a {type(a).__module__}.{type(a).__qualname__}" for i, a in enumerate(args)
                      if not isinstance(a, (Tensor, tuple, list, dict))]
            hint = ("; " + ", ".join(others) + ", not a gradc Tensor (wrap arrays with gradc.from_numpy(...) or "
                    "gradc.tensor(...))") if others else ""
            raise GradcError(f"this program takes {expected} tensor argument(s) ({shown}), got {len(flat_args)}{hint}")
        for i, d in sorted(wanted.items()):
            t, want = flat_args[i], f"{d['dtype']}{list(d['shape'])}"
            if tuple(t.shape) != tuple(d["shape"]):
                raise ShapeError(f"argument {label(i)}: this program was compiled for {want}, got {t.dtype.name}"
                                 f"{list(t.shape)}; compile or export it again for new shapes")
            if t.dtype.name != d["dtype"]:
                raise DTypeError(f"argument {label(i)}: this program was compiled for {want}, got {t.dtype.name}"
                                 f"{list(t.shape)}; convert it with .to(gradc.{d['dtype']})")

    # ------------------------------------------------------------------ artifacts
    def save(self, path):
        """Write this program to `path` as one ahead-of-time artifact file (see gradc.load)."""
        from .artifact import save
        return save(self, path)

    def state_dict(self):
        """{name: Tensor} of the state the program reads and updates (parameters, buffers, optimizer
        state): its own tensors, not copies."""
        from .artifact import state_dict
        return state_dict(self)


def _views_of(ir, inputs):
    """Positions of the outputs that are `inputs` or views of them (through view ops only)."""
    reach = set(inputs)
    for n in ir.topological():
        prim = OPS.get(ir.node(n)["op"])
        if prim is not None and prim.view and ir.args(n)[0] in reach:
            reach.add(n)
    return {i for i, o in enumerate(ir.outputs) if o in reach}


def _wrap(array, ir, nid, device=None):
    d = ir.node(nid)
    return Tensor._wrap(array, D.ALL[d["dtype"]], device or CPU)
