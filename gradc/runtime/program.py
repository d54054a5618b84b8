"""gradc.Program: one compiled signature of a function.

It owns the optimised graph, the generated source and the loaded entry function, and knows how to
call it: gather input arrays from their bindings (arguments, state tensors, `.grad` slots), run,
write state back, and wrap the returned arrays as tensors."""
import json
import threading
from pathlib import Path

import numpy as np

from .. import dtypes as D
from ..errors import GradcError, ShapeError
from ..tensor import Tensor, CPU
from . import cache


class Effect:
    """A write the program performs after each run: output `out` goes into binding `slot` as its
    data ("data"), as its `.grad` ("grad", out None = set to None), or into a new tensor ("new")."""
    __slots__ = ("kind", "slot", "out", "target")

    def __init__(self, kind, slot=None, out=None, target=None):
        self.kind, self.slot, self.out, self.target = kind, slot, out, target


class Program:
    def __init__(self, ir, bindings, effects, n_returned, out_spec, backend, source, stats, guards=(),
                 one_shot=False, backward=None):
        self.ir = ir
        self.bindings = bindings
        self.effects = effects
        self.n_returned = n_returned
        self.out_spec = out_spec
        self.backend = backend
        self._source = source
        self.stats = stats
        self.guards = list(guards)
        self.one_shot = one_shot
        self.backward = backward   # (Program for the gradients, wiring) when outputs need eager backward
        self._run = None
        self._copy_out = {i for i, o in enumerate(ir.outputs) if ir.node(o)["op"] in ("input", "const")}
        self._inplace = {}
        self._expected = None
        self._kernels = []
        self.device = None   # where the outputs live (CUDA programs: the inputs' device)
        self._lock = threading.Lock()  # buffers are shared between calls: one call at a time

    def set_plan(self, copy_out, inplace_state):
        """Outputs to copy before handing out, and state outputs the program already wrote in place."""
        self._copy_out = set(copy_out)
        self._inplace = dict(inplace_state)

    # ------------------------------------------------------------------ inspection
    @property
    def graph(self):
        """The optimised IR as a networkx.MultiDiGraph."""
        return self.ir.g

    @property
    def source(self):
        """{filename: generated source}."""
        return dict(self._source)

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
                self._run = cuda.load(self._source["kernels.cu"], self._source["host.py"], consts)
            else:
                self._run = cache.load_module(self._source["program.py"]).make(consts)
        return self._run

    def resolve(self, flat_args):
        """The tensor behind each binding for this call."""
        tensors = []
        for b in self.bindings:
            if b.kind == "arg":
                t = flat_args[b.ref]
            elif b.kind == "state":
                t = b.ref
            elif b.kind == "random":
                t = _draw(b.ref, tensors)
            else:
                t = tensors[b.owner].grad
            tensors.append(t)
        return tensors

    def guards_hold(self, flat_args):
        """Whether the state this program was traced against still looks the same."""
        if self._expected is None:  # what each state input looked like when traced (computed once)
            self._expected = [(b, self.ir.node(nid)["shape"], D.ALL[self.ir.node(nid)["dtype"]])
                              for b, nid in zip(self.bindings, self.ir.inputs) if b.kind in ("state", "grad")]
        for b, shape, dtype in self._expected:
            t = b.ref if b.kind == "state" else self._owner(b, flat_args).grad
            if t is None or t.shape != shape or t.dtype is not dtype or t._data is None:
                return False
        for guard in self.guards:
            if not guard(flat_args):
                return False
        return True

    def _owner(self, b, flat_args):
        ob = self.bindings[b.owner]
        return flat_args[ob.ref] if ob.kind == "arg" else (ob.ref if ob.kind == "state" else
                                                           self._owner(ob, flat_args).grad)

    def execute(self, arrays):
        """Run on raw arrays (in input order); returns the raw output arrays."""
        outs = self._entry()(*arrays)
        if self.backend == "cuda":
            return [o.copy() if i in self._copy_out else o for i, o in enumerate(outs)]
        return [np.array(o) if i in self._copy_out else (o if type(o) is np.ndarray else np.asarray(o))
                for i, o in enumerate(outs)]

    def call_flat(self, flat_args):
        tensors = self.resolve(flat_args)
        with self._lock:
            outs = self.execute([t._data for t in tensors])
        for e in self.effects:
            if e.kind == "data":
                t = tensors[e.slot]
                if self._inplace.get(e.out) != e.slot:
                    t._data[...] = outs[e.out]
                t._version[0] += 1
            elif e.kind == "grad":
                tensors[e.slot].grad = None if e.out is None else _wrap(outs[e.out], self.ir, self.ir.outputs[e.out],
                                                                       tensors[e.slot].device)
            else:  # a tensor the traced call created and stored somewhere: it becomes concrete now
                t = e.target
                t._data, t._sym = outs[e.out], None
                t.requires_grad, t._grad_fn = False, None
        dev = tensors[0].device if tensors else None
        returned = [_wrap(outs[i], self.ir, self.ir.outputs[i], dev) for i in range(self.n_returned)]
        if self.backward is not None:
            from .aot import attach_backward
            attach_backward(self, tensors, outs, returned)
        return returned

    def __call__(self, *args):
        """Run with positional tensor arguments (in the traced order)."""
        from ..pytree import flatten, unflatten
        flat, _ = flatten(list(args))
        self.check_args(flat)
        return unflatten(self.out_spec, self.call_flat(flat))

    def check_args(self, flat_args):
        """A program runs only on the argument shapes and dtypes it was traced for: say which differs."""
        specs = (getattr(self, "artifact_info", None) or {}).get("inputs")
        refs = [b.ref for b in self.bindings if b.kind == "arg"]
        expected = len(specs) if specs is not None else max(refs, default=-1) + 1
        if len(flat_args) != expected:
            raise GradcError(f"this program takes {expected} tensor argument(s), got {len(flat_args)}")
        for b, nid in zip(self.bindings, self.ir.inputs):
            if b.kind == "arg":
                t, d = flat_args[b.ref], self.ir.node(nid)
                if tuple(t.shape) != tuple(d["shape"]) or t.dtype.name != d["dtype"]:
                    name = specs[b.ref]["name"] if specs else b.ref
                    raise ShapeError(f"argument {name}: this program was compiled for {d['dtype']}{list(d['shape'])}, "
                                     f"got {t.dtype.name}{list(t.shape)}; compile or export it again for new shapes")

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


def _draw(spec, tensors):
    """A fresh random input, on the device of the program's other inputs."""
    from ..random import sample
    dev = next((t.device for t in tensors if t is not None), CPU)
    data = sample(spec)
    return Tensor._wrap(data if dev is CPU else dev.xp.asarray(data), D.ALL[spec[2]], dev)


def _wrap(array, ir, nid, device=None):
    d = ir.node(nid)
    return Tensor._wrap(array, D.ALL[d["dtype"]], device or CPU)


def planned_peak(ir, units, plan):
    """Peak bytes of a call as planned: inputs, the persistent pool, and at the worst unit the
    freshly allocated outputs made so far plus the live values of ops that allocate."""
    size = {n: int(np.prod(ir.node(n)["shape"], dtype=np.int64)) * D.ALL[ir.node(n)["dtype"]].itemsize
            for n in ir.g.nodes}
    base = sum(size[n] for n in ir.inputs) + plan.nbytes()
    last = {}
    for i, u in enumerate(units):
        for m in u.members:
            for a in ir.args(m):
                last[a] = i
    outs = set(ir.outputs)
    live, peak = 0, 0
    for i, u in enumerate(units):
        for m in u.members:
            st = plan.storage.get(m)
            if (st is None and plan.root.get(m) == m and ir.node(m).get("group") is None) or (st and st[0] == "fresh"):
                live += size[m]
        peak = max(peak, live)
        for a, j in last.items():
            st = plan.storage.get(a)
            if j == i and a not in outs and plan.root.get(a) == a and ir.node(a)["op"] not in ("input", "const") \
                    and (st is None or st[0] == "fresh"):
                live -= size[a]
    return base + peak
