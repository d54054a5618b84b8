"""CUDA code generation: each fused group becomes one CUDA C kernel, the rest runs on the host.

Groups of elementwise work become grid-stride kernels that keep every intermediate in registers
(16-byte vector loads when all operands are contiguous float32). Groups with reductions over a
row (softmax, log_softmax + NLL, layer_norm and its gradient) become one kernel with a block per
row. Matmuls go to cuBLAS through CuPy; other ops run through the op table's kernels with CuPy.
Generating the source needs neither a GPU nor CuPy; only running it does."""
import numpy as np

from ..ops import OPS
from ..passes.fusion import ROW_REDUCE, row_role
from ..passes.liveness import last_uses
from ..passes.memory import VIEW_OPS, stored
from ..version import __version__
from .numpy_backend import name_of, storage
from .templates import kernel_refs, lowering as table_lowering, macros, render, where as safe_where

_CTYPE = {"float16": "float", "float32": "float", "float64": "double", "int32": "int", "int64": "long long",
          "bool": "bool"}
_STORE = {"float16": "__half", "float32": "float", "float64": "double", "int32": "int", "int64": "long long",
          "bool": "bool"}
THREADS = 256
DEVICE_TABLE = "cuda/ops.j2"      # the C expression of each elementwise primitive
HOST_TABLE = "cuda/host_ops.j2"   # how each other primitive runs from the host, on CuPy arrays


def lowering(op):
    """The macro that lowers primitive `op` on CUDA: an elementwise primitive's device expression,
    any other primitive's host expression (a GradcError saying what to add if there is none)."""
    return table_lowering(DEVICE_TABLE if OPS[op].elementwise else HOST_TABLE, op)


def _host_lowering(op):
    """The host expression of `op`; an elementwise op outside a kernel calls its eager kernel."""
    if OPS[op].elementwise:
        return lambda *args, **attrs: macros("cuda/host_statements.j2").kernel(op, args, attrs)
    return lowering(op)




def _numel(shape):
    return int(np.prod(shape, dtype=np.int64))


def _strides(shape):
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return list(reversed(out))


def offset_terms(dst_shape, src_shape):
    """(div, size, stride) terms mapping a linear index in dst_shape to the linear index of the
    element it reads in src_shape (NumPy broadcasting: src is right-aligned, size-1 dims repeat)."""
    if tuple(dst_shape) == tuple(src_shape):
        return None  # same index
    dst_strides, src_strides = _strides(dst_shape), _strides(src_shape)
    lead = len(dst_shape) - len(src_shape)
    terms = []
    for k, size in enumerate(src_shape):
        if size == 1:
            continue
        d = lead + k
        terms.append((dst_strides[d], dst_shape[d], src_strides[k]))
    return terms


class _Kernels:
    def __init__(self, graph, plan):
        self.graph, self.plan = graph, plan
        self.ops = macros("cuda/statements.j2")   # loads, stores, offsets, lets (op expressions: lowering)
        self.outputs = set(graph.outputs)

    def dtype(self, n):
        return self.graph.node(n)["dtype"]

    # ------------------------------------------------------------------ elementwise groups
    def elementwise(self, u, kept, external):
        graph, ops = self.graph, self.ops
        domain = max((graph.node(m)["shape"] for m in u.members), key=_numel)
        n = _numel(domain)
        idx_t = "long long" if n >= 2 ** 31 - 1 else "int"
        body, values, index_names = [], {}, {(tuple(domain)): "i"}

        def index_for(shape, base_shape, base_idx):
            terms = offset_terms(base_shape, shape)
            if terms is None:
                return base_idx
            key = (tuple(shape), tuple(base_shape), base_idx)
            if key not in index_names:
                name = f"i{len(index_names)}"
                index_names[key] = name
                body.append(ops.let(idx_t, name, ops.offset(base_idx, terms)))
            return index_names[key]

        def value(v, shape, idx, vec=False):
            """C expression of value v at linear index idx of `shape` (v broadcasts to it)."""
            vshape = graph.node(v)["shape"]
            vidx = index_for(vshape, shape, idx) if _numel(vshape) != _numel(shape) or \
                tuple(vshape) != tuple(shape) else idx
            key = (v, vidx)
            if key in values:
                return values[key]
            d = graph.node(v)
            if v not in u.members:
                expr = f"{name_of(v)}_v" if vec else self.ops.load(name_of(v), vidx, d["dtype"])
                values[key] = expr if vec else ops.convert(_CTYPE[d["dtype"]], expr)
                return values[key]
            if d["op"] in ("reshape", "expand"):
                src = graph.args(v)[0]
                src_idx = vidx if d["op"] == "reshape" else index_for(graph.node(src)["shape"], vshape, vidx)
                values[key] = value(src, graph.node(src)["shape"], src_idx, vec)
                return values[key]
            args = [value(a, vshape, vidx, vec) for a in graph.args(v)]
            name = f"t{v}_{vidx}"
            ct = _CTYPE[d["dtype"]]
            expr = lowering(d["op"])(_op_ctype(graph, v), *args, **d["attrs"])
            body.append(ops.let(ct, name, expr))
            values[key] = name
            return name

        for m in kept:
            v = value(m, domain, "i")
            shape = graph.node(m)["shape"]
            off = index_for(shape, domain, "i") if tuple(shape) != tuple(domain) else "i"
            body.append(ops.store(name_of(m), off, self.dtype(m), v))
        vec4 = (all(self.dtype(m) == "float32" for m in list(u.members) + external)
                and all(tuple(graph.node(x)["shape"]) == tuple(domain) or _numel(graph.node(x)["shape"]) == 1
                        for x in list(u.members) + external)
                and all(graph.node(m)["op"] not in ("reshape", "expand") for m in u.members) and n % 4 == 0)
        ctx = {"id": u.id, "kernel": f"g{u.id}", "ops": " ".join(graph.node(m)["op"] for m in u.members),
               "where": safe_where(graph.node(u.members[0])["where"]), "idx_t": idx_t, "body": body,
               "params": self._params(external, kept), "vec4": False}
        if vec4:
            full = [x for x in external if _numel(graph.node(x)["shape"]) == n]
            body_main = body
            body, values, index_names = [], {}, {tuple(domain): "i"}
            scalars = [x for x in external if x not in full]
            for x in scalars:  # one element, read at offset 0
                index_names[(tuple(graph.node(x)["shape"]), tuple(domain), "i")] = "0"
                values[(x, "0")] = values[(x, "i")] = ops.load(name_of(x), 0, "float32")
            for x in full:
                values[(x, "i")] = f"{name_of(x)}_v"
            stores = [(name_of(m), value(m, domain, "i")) for m in kept]
            ctx.update(vec4=True, vec_loads=[name_of(x) for x in full], vec_body=body, vec_stores=stores,
                       body=body_main)
        return render("cuda/elementwise.cu.j2", **ctx), n

    def _params(self, external, kept):
        params = [(f"const {_STORE[self.dtype(x)]}* __restrict__", name_of(x)) for x in external]
        params += [(f"{_STORE[self.dtype(m)]}* __restrict__", name_of(m)) for m in kept]
        return params

    # ------------------------------------------------------------------ row groups
    def rowwise(self, u, kept, external):
        """Kernel for a group with reductions, or None when a member does not fit the row scheme
        (then the group runs op by op)."""
        graph, ops, rows = self.graph, self.ops, u.rows
        width = _numel(self._row_shape(u))
        kinds = {}
        for m in u.members:
            d = graph.node(m)
            if d["dtype"] not in ("float32", "float16", "bool"):
                return None
            shape, role = d["shape"], row_role(graph, m)
            per_row = _numel(shape[1:])
            if role == ROW_REDUCE:
                src = graph.node(graph.args(m)[0])["shape"]
                axes = tuple(d["attrs"]["axes"])
                if d["op"] != "sum" or _numel(src[1:]) != width or axes not in ((0,), tuple(range(len(src)))):
                    return None
                kinds[m] = "rowreduce" if axes == (0,) else "total"
            elif d["op"] in ("sum", "max"):
                src = graph.node(graph.args(m)[0])["shape"]
                if _numel(src[1:]) != width or per_row != 1:
                    return None
                kinds[m] = "reduce"
            elif per_row == width:
                kinds[m] = "full"
            elif per_row == 1:
                kinds[m] = "scalar"
            else:
                return None
        scratch = {m: f"S{u.id}_{m}" for m in u.members
                   if m not in kept and kinds[m] in ("full", "scalar", "reduce") and graph.node(m)["op"] not in VIEW_OPS}

        def access(v, j):
            """C expression reading value v for row r at in-row index j (of a full-row value)."""
            d = graph.node(v)
            shape = d["shape"]
            if v in u.members and d["op"] in VIEW_OPS:
                return access(graph.args(v)[0], j if kinds[v] == "full" else "0")
            ct = _CTYPE[d["dtype"]]
            ptr = name_of(v) if v not in scratch else scratch[v]
            if v in u.members:
                off = ops.row_index(width if kinds[v] == "full" else 1, j)
                return ops.convert(ct, ops.load(ptr, off, d["dtype"]))
            row_shape = self._row_shape(u)
            if len(shape) == len(row_shape) + 1 and shape[0] == rows:  # one slice per row
                per_row = _numel(shape[1:])
                terms = offset_terms(row_shape, shape[1:])
                inner = j if terms is None else ops.offset(j, terms)
                return ops.convert(ct, ops.load(ptr, ops.row_index(per_row, inner), d["dtype"]))
            if len(shape) == 1 and shape[0] == rows and rows > 1:  # one value per row
                return ops.convert(ct, ops.load(ptr, ops.row_index(1, "j"), d["dtype"]))
            inv = shape[1:] if len(shape) == len(row_shape) + 1 else shape  # the same for every row
            terms = offset_terms(row_shape, inv)
            return ops.convert(ct, ops.load(ptr, j if terms is None else ops.offset(j, terms), d["dtype"]))

        phases = []
        for m in u.members:
            d = graph.node(m)
            kind = kinds[m]
            if d["op"] in VIEW_OPS:
                continue
            ptr = scratch.get(m, name_of(m))
            ct = _CTYPE[d["dtype"]]
            if kind == "rowreduce":
                src = access(graph.args(m)[0], "j")
                phases.append({"kind": "rowreduce", "node": m, "op": "sum over rows", "n": width,
                               "store": ops.atomic_add(name_of(m), "j", src)})
            elif kind == "total":  # sum of everything: reduce the row, then one atomic add per row
                phases.append({"kind": "reduce", "node": m, "op": "sum of all", "n": width, "reduce": "sum",
                               "value": access(graph.args(m)[0], "j"),
                               "store": ops.atomic_add(name_of(m), "0", "acc")})
            elif kind == "reduce":
                phases.append({"kind": "reduce", "node": m, "op": d["op"], "n": width,
                               "reduce": d["op"],
                               "value": access(graph.args(m)[0], "j"),
                               "store": ops.store(ptr, ops.row_index(1, "j"), d["dtype"], "acc")})
            else:
                args = [access(a, "j" if kind == "full" else "0") for a in graph.args(m)]
                expr = lowering(d["op"])(_op_ctype(graph, m), *args, **d["attrs"])
                off = ops.row_index(width if kind == "full" else 1, "j")
                phases.append({"kind": kind, "node": m, "op": d["op"], "n": width,
                               "store": ops.store(ptr, off, d["dtype"], ops.convert(ct, expr))})
        params = self._params(external, kept) + [(f"{_STORE[self.dtype(m)]}* __restrict__", s)
                                                 for m, s in scratch.items()]
        ctx = {"id": u.id, "kernel": f"g{u.id}", "ops": " ".join(graph.node(m)["op"] for m in u.members),
               "where": safe_where(graph.node(u.members[0])["where"]), "phases": phases, "params": params}
        scratch_specs = [(s, (rows, width) if kinds[m] == "full" else (rows,), self.dtype(m)) for m, s in scratch.items()]
        return render("cuda/rowwise.cu.j2", **ctx), rows, scratch_specs, [s for s in scratch.values()]

    def _row_shape(self, u):
        """Shape of one row of the group's widest value (a row reduction's operand counts)."""
        graph = self.graph
        shapes = [graph.node(graph.args(m)[0] if row_role(graph, m) == ROW_REDUCE else m)["shape"] for m in u.members]
        return tuple(max(shapes, key=lambda s: _numel(s[1:]))[1:])


def _op_ctype(graph, n):
    """The C type an op computes in: its result type for casts, its operands' type otherwise."""
    d = graph.node(n)
    return _CTYPE[d["dtype"] if d["op"] == "cast" else graph.node(graph.args(n)[-1])["dtype"]]


def generate(graph, units, plan):
    """Render (kernels.cu, host.py) for the scheduled graph, and the [(name, source)] of its kernels."""
    host = macros("cuda/host_statements.j2")
    k = _Kernels(graph, plan)
    outputs = set(graph.outputs)
    kernel_srcs, unit_ctx, kernel_names, kernel_ops, scratch = [], [], [], set(), []
    for u in units:
        if u.kind == "group":
            inside = set(u.members)
            external = []
            for m in u.members:
                for a in graph.args(m):
                    if a not in inside and a not in external:
                        external.append(a)
            kept = [m for m in u.members if stored(graph, u, m, outputs) and graph.node(m)["op"] not in VIEW_OPS]
            views_out = [m for m in u.members if stored(graph, u, m, outputs) and graph.node(m)["op"] in VIEW_OPS]
            has_reduce = any(graph.node(m)["op"] in ("sum", "max") for m in u.members)
            built = None
            if not views_out and all(graph.node(m)["dtype"] in _CTYPE for m in u.members):
                if has_reduce:
                    r = k.rowwise(u, kept, external)
                    if r is not None:
                        src, n, sc, _ = r
                        scratch += sc
                        built = (src, n, min(n, 65535), THREADS)
                else:
                    src, n = k.elementwise(u, kept, external)
                    per = 4 if "float4" in src else 1
                    built = (src, n, max(1, min((n // per + THREADS - 1) // THREADS, 65535)), THREADS)
            if built is not None:
                src, n, grid, block = built
                kernel_srcs.append({"source": src})
                kernel_names.append(f"g{u.id}")
                prologue = []
                for m in kept:
                    prologue += _storage(host, graph, plan, m)
                    if row_role(graph, m) == ROW_REDUCE:
                        prologue.append(host.fill(name_of(m), 0))
                args = []
                for a in external:
                    prologue.append(host.contiguous(f"c{a}", name_of(a)))
                    args.append(f"c{a}")
                args += [name_of(m) for m in kept] + [s for m, s in _scratch_names(k, u, kept)]
                unit_ctx.append({"kind": "kernel", "name": f"g{u.id}", "grid": grid, "block": block, "args": args,
                                 "n": n, "prologue": prologue, "where": safe_where(graph.node(u.members[0])["where"]),
                                 "members": u.members})
                continue
            for m in u.members:  # does not fit a kernel scheme: op by op on the device
                unit_ctx.append(_op_ctx(host, graph, plan, m, kernel_ops, force_alloc=True))
        else:
            unit_ctx.append(_op_ctx(host, graph, plan, u.id, kernel_ops))
    _dels(graph, plan, units, unit_ctx)
    table_consts, fill_consts, buffers, pooled = storage(graph, plan)
    ghash = graph.hash()[:16]
    kernels_src = render("cuda/kernels.cu.j2", version=__version__, graph_hash=ghash, kernels=kernel_srcs)
    host_src = render("cuda/host.py.j2", version=__version__, graph_hash=ghash, kernel_ops=sorted(kernel_ops),
                      kernel_names=kernel_names, table_consts=table_consts, fill_consts=fill_consts, buffers=buffers,
                      pooled=pooled, scratch=scratch, params=[name_of(n) for n in graph.inputs], units=unit_ctx,
                      outputs=[name_of(o) for o in graph.outputs])
    kernels = [(name, src["source"]) for name, src in zip(kernel_names, kernel_srcs)]
    return kernels_src, host_src, kernels


def _scratch_names(k, u, kept):
    graph = k.graph
    return [(m, f"S{u.id}_{m}") for m in u.members
            if m not in kept and graph.node(m)["op"] not in VIEW_OPS and row_role(graph, m) != ROW_REDUCE
            and any(graph.node(x)["op"] in ("sum", "max") for x in u.members)]


def _storage(host, graph, plan, n):
    d, st = graph.node(n), plan.storage.get(n, ("fresh",))
    if st[0] == "fresh":
        return [host.alloc(name_of(n), d["shape"], d["dtype"])]
    if st[0] == "input":
        return [host.alias(name_of(n), name_of(graph.inputs[st[1]]))]
    return []


def _op_ctx(host, graph, plan, n, kernel_ops, force_alloc=False):
    d = graph.node(n)
    args = [name_of(a) for a in graph.args(n)]
    st = plan.storage.get(n)
    where = safe_where(d["where"])
    run = _host_lowering(d["op"])
    if d["op"] == "matmul" and st is not None and not force_alloc:
        prologue, code = _storage(host, graph, plan, n), run(*args, out=name_of(n), **d["attrs"])
    elif st is not None:
        # planned storage (a buffer, the state tensor written in place, or a fresh output): copy
        # the result in, so that a view never aliases storage the plan gives to another value
        prologue = _storage(host, graph, plan, n) + [host.assign(f"t{n}", run(*args, **d["attrs"]))]
        code = host.assign_into(name_of(n), f"t{n}")
    else:
        prologue, code = [], host.assign(name_of(n), run(*args, **d["attrs"]))
    kernel_ops.update(kernel_refs(code, *prologue))
    return {"kind": "op", "prologue": prologue, "code": code, "where": where, "members": [n]}


def _dels(graph, plan, units, unit_ctx):
    """Drop host names after their last use (CuPy's pool then reuses the memory)."""
    local = set(graph.inputs)
    for c in unit_ctx:
        for m in c["members"]:
            st = plan.storage.get(m)
            if c["kind"] == "op" and (st is None or st[0] != "pool"):
                local.add(m)
            elif st is not None and st[0] in ("fresh", "input"):
                local.add(m)
    last = last_uses(graph, [c["members"] for c in unit_ctx])  # a group that runs op by op is one step per op
    keep = set(graph.outputs)
    for i, c in enumerate(unit_ctx):
        c["dels"] = sorted((name_of(a) for a, j in last.items() if j == i and a in local and a not in keep),
                           key=lambda s: int(s[1:]))
