"""NumPy code generation: scheduled units and a memory plan become one Python module with a
single entry function of straight-line NumPy (no per-op dispatch, no autograd bookkeeping).

A fused group becomes a function over a block of rows, called in a loop so that its intermediate
values stay in cache (scratch buffers of one block, `out=` everywhere); small groups run as one
block. Values that leave a unit live in planned storage. Python only decides names, shapes and
which template macro to call; the code itself comes from templates/numpy/."""
import numpy as np

from .. import dtypes as D
from ..passes.fusion import ROW_REDUCE, reads_rows, row_role
from ..passes.liveness import by_storage, last_uses
from ..passes.memory import VIEW_OPS, stored
from ..lowered_sizes import size_key
from ..symint import is_live
from ..version import __version__
from .templates import kernel_refs, lowering as table_lowering, macros, render, where as safe_where

OPS_TABLE = "numpy/ops.j2"    # one macro per primitive: its expression, or its statement into `out`


def lowering(op):
    """The macro that renders primitive `op` in NumPy (a GradcError saying what to add if none)."""
    return table_lowering(OPS_TABLE, op)


def name_of(nid):
    return f"v{nid}"


def storage(graph, plan):
    """What a generated module allocates up front, for the templates of every backend: constants
    from the table, uniform ones and ranges of a symbolic size (an arange, made for the sizes of
    the call), the plan's pool buffers, and each pooled value's view."""
    table_consts, fill_consts, range_consts = [], [], []
    for n in sorted(graph.g.nodes):
        d = graph.node(n)
        if d["op"] == "const":
            if "table" in d["attrs"]:
                table_consts.append((name_of(n), d["attrs"]["table"]))
            elif "arange" in d["attrs"]:
                range_consts.append((name_of(n), d["attrs"]["arange"], d["dtype"]))
            else:
                fill_consts.append((name_of(n), d["shape"], d["attrs"]["fill"], d["dtype"]))
    buffers = [(f"B{b}", nbytes // D.ALL[dt].itemsize, dt) for b, (nbytes, dt) in enumerate(plan.buffers)]
    pooled = [(name_of(n), f"B{st[1]}", graph.node(n)["shape"]) for n, st in sorted(plan.storage.items())
              if st[0] == "pool"]
    return table_consts, fill_consts, range_consts, buffers, pooled


def _max_identity(dtype):
    """The start value of a running maximum: -inf for floats, the least integer, False for bool."""
    dt = D.ALL[dtype]
    if dt.is_floating_point:
        return -float("inf")
    return False if dt.np == np.bool_ else int(np.iinfo(dt.np).min)


def block_rows(graph, unit, block_bytes):
    """Rows per block so that the widest row of the group fills about `block_bytes`."""
    widest = 1
    for m in unit.members:
        shape = graph.node(graph.args(m)[0] if row_role(graph, m) == ROW_REDUCE else m)["shape"]
        widest = max(widest, D.nbytes(shape[1:], graph.node(m)["dtype"]))
    return max(1, int(block_bytes) // widest)   # (a symbolic width: an expression, held >= 1 by a guard)


class _Emitter:
    MODULE = "numpy/module.py.j2"   # the C backend's host module renders the same units with its own template

    def context(self):
        """Template values a subclass adds to the module's."""
        return {}

    def __init__(self, graph, units, plan, block_bytes):
        self.graph, self.units, self.plan, self.block_bytes = graph, units, plan, block_bytes
        self.stmt = macros("numpy/statements.j2")
        self.kernels = set()   # primitives whose eager kernel the rendered code calls
        self.outputs = set(graph.outputs)
        self.arena = []   # scratch shared by all groups (they run one after another): (name, shape, dtype)
        self.symbols = graph.symbols()   # the symbolic sizes the generated code is made with (gradc.dynamic)

    def macro(self, op):
        """Render primitive `op` from the op table, noting the eager kernels the code calls."""
        fn = lowering(op)

        def render_op(*args, **kwargs):
            code = fn(*args, **kwargs)
            self.kernels |= kernel_refs(code)
            return code
        return render_op

    def storage_prologue(self, n):
        """Statements that give a stored value its array before the unit writes into it."""
        d, st = self.graph.node(n), self.plan.storage[n]
        if st[0] == "fresh":
            return [self.stmt.alloc(name_of(n), d["shape"], d["dtype"])]
        if st[0] == "input":
            state = self.graph.inputs[st[1]]
            if tuple(d["shape"]) != tuple(self.graph.node(state)["shape"]):   # the state's rows
                return [self.stmt.alias_reshaped(name_of(n), name_of(state), d["shape"])]
            return [self.stmt.alias(name_of(n), name_of(state))]
        return []

    def returned(self):
        """The module's return values: each output, or for a state updated in place through a
        value of another shape, the state itself once what was written is in it (a state whose
        strides admit no reshaped view was written through a copy)."""
        graph, plan, out = self.graph, self.plan, []
        for pos, o in enumerate(graph.outputs):
            slot = plan.inplace_state.get(pos)
            state = None if slot is None else graph.inputs[slot]
            if state is not None and tuple(graph.node(plan.root[o])["shape"]) != tuple(graph.node(state)["shape"]):
                out.append(self.stmt.written_back(name_of(state), name_of(o)))
            else:
                out.append(name_of(o))
        return out

    # ------------------------------------------------------------------ single ops
    def op_unit(self, u):
        graph, n = self.graph, u.id
        d = graph.node(n)
        args = [name_of(a) for a in graph.args(n)]
        if stored(graph, u, n, self.outputs):
            prologue = self.storage_prologue(n)
            code = self.macro(d["op"])(*args, out=name_of(n), **d["attrs"])
        else:
            prologue = []
            code = self.stmt.assign(name_of(n), self.macro(d["op"])(*args, **d["attrs"]).strip())
        return {"kind": "op", "code": code, "prologue": prologue, "where": safe_where(d["where"])}

    # ------------------------------------------------------------------ fused groups
    def group_unit(self, u):
        graph, stmt = self.graph, self.stmt
        members, rows = u.members, u.rows
        inside = set(members)
        external = []
        for m in members:
            for a in graph.args(m):
                if a not in inside and a not in external:
                    external.append(a)
        kept = [m for m in members if stored(graph, u, m, self.outputs)]
        # A symbolic row count loops over blocks whatever it is (no block, only the tail, when the
        # rows are fewer), so the code holds for every count instead of for those below a block.
        symbolic = is_live(rows)
        block = block_rows(graph, u, self.block_bytes)
        block = block if symbolic else min(rows, block)
        body, local = [], {}
        for a in external:  # read block by block where a member follows the rows, whole where it broadcasts
            if any(a in graph.args(m) and reads_rows(graph, m, a) for m in members):
                body.append({"code": stmt.rows(f"x{a}", name_of(a)), "where": ""})
                local[a] = f"x{a}"
        scratch, scratch_of = self._scratch(u, kept, block)
        prologue = []
        for m in members:
            d = graph.node(m)
            args = [local[a] if a in inside or reads_rows(graph, m, a) else name_of(a) for a in graph.args(m)]
            op, where = d["op"], safe_where(d["where"])
            if op in VIEW_OPS:
                local[m] = f"x{m}"
                code = stmt.assign(local[m], self.macro(op)(args[0], d["shape"], rows="e - r").strip())
                if m in kept:  # the view leaves the group: copy its block into the value's storage
                    prologue += self.storage_prologue(m)
                    body.append({"code": code, "where": where})
                    code = stmt.copyto(f"{name_of(m)}[r:e]", local[m])
            elif row_role(graph, m) == ROW_REDUCE:
                start = 0 if op == "sum" else _max_identity(d["dtype"])
                prologue += self.storage_prologue(m) + [stmt.fill(name_of(m), start)]
                code = self.macro(op)(*args, out=name_of(m), acc=True, **d["attrs"])
            else:
                if m in kept:
                    prologue += self.storage_prologue(m)
                    body.append({"code": stmt.rows(f"x{m}", name_of(m)), "where": ""})
                    local[m] = f"x{m}"
                else:
                    local[m] = scratch_of[m]
                code = self.macro(op)(*args, out=local[m], **d["attrs"])
            body.append({"code": code, "where": where})
        params = [name_of(a) for a in external] + [name_of(m) for m in kept] + [s[0] for s in scratch]
        full = rows - rows % block
        tail = rows - full
        args = list(params)
        tail_args = [name_of(a) for a in external] + [name_of(m) for m in kept] + [f"{s[0]}_tail" for s in scratch]
        loop = symbolic or block < rows
        has_tail = symbolic or loop and bool(tail)
        group = {"id": u.id, "ops": " ".join(graph.node(m)["op"] for m in members), "scratch": self._share(scratch),
                 "tail": tail, "has_tail": has_tail, "params": params, "body": body}
        unit = {"kind": "group", "id": u.id, "rows": rows, "block": block, "loop": loop, "full": full,
                "tail": tail, "has_tail": has_tail, "tail_test": symbolic, "args": args, "tail_args": tail_args,
                "prologue": prologue,
                "where": safe_where(graph.node(members[0])["where"])}
        return group, unit

    def _share(self, scratch):
        """Back a group's scratch with the shared arena: the k-th buffer of a (shape, dtype) in any
        group is the same array. Returns [(local name, arena name)]."""
        count, out = {}, []
        for name, shape, dtype in scratch:
            key = (tuple(map(size_key, shape)), dtype)
            k = count[key] = count.get(key, -1) + 1
            same = [a for a in self.arena if (tuple(map(size_key, a[1])), a[2]) == key]
            if k < len(same):
                arena = same[k][0]
            else:
                arena = f"A{len(self.arena)}"
                self.arena.append((arena, shape, dtype))
            out.append((name, arena))
        return out

    def scratch_bytes(self):
        return sum(D.nbytes(shape, dt) for _, shape, dt in self.arena)

    def _scratch(self, u, kept, block):
        """Block-sized scratch for the group's internal values, reused once a value is dead (views
        inside the group keep what they look at alive)."""
        graph = self.graph
        root = {}
        for m in u.members:
            if graph.node(m)["op"] in VIEW_OPS:
                a = graph.args(m)[0]
                root[m] = root.get(a, a)
        last = by_storage(last_uses(graph, [[m] for m in u.members]), root)
        scratch, scratch_of, free, holder = [], {}, {}, {}
        for i, m in enumerate(u.members):
            d = graph.node(m)
            if m not in kept and d["op"] not in VIEW_OPS and row_role(graph, m) != ROW_REDUCE:
                shape = (block,) + tuple(d["shape"][1:])
                key = (tuple(map(size_key, shape)), d["dtype"])
                s = free[key].pop() if free.get(key) else None
                if s is None:
                    s = f"S{u.id}_{len(scratch)}"
                    scratch.append((s, shape, key[1]))
                scratch_of[m] = s
                holder[s] = (m, key)
            for s, (v, key) in list(holder.items()):
                if v != m and last.get(v, -1) <= i:
                    free.setdefault(key, []).append(s)
                    del holder[s]
        return scratch, scratch_of

    # ------------------------------------------------------------------ module
    def module(self):
        graph, plan = self.graph, self.plan
        table_consts, fill_consts, range_consts, buffers, pooled = storage(graph, plan)
        groups, units = [], []
        for u in self.units:
            if u.kind == "group":
                g, unit = self.group_unit(u)
                if g is not None:   # None: the group runs as a kernel of a compiled backend
                    groups.append(g)
            else:
                unit = self.op_unit(u)
            units.append(unit)
        self._dels(units)
        return render(self.MODULE, **self.context(), version=__version__, graph_hash=graph.hash()[:16],
                      symbols=self.symbols, kernels=sorted(self.kernels), table_consts=table_consts,
                      fill_consts=fill_consts, range_consts=range_consts, buffers=buffers, pooled=pooled,
                      arena=self.arena, groups=groups, units=units,
                      params=[name_of(n) for n in graph.inputs], outputs=self.returned(),
                      param_labels=[(name_of(n), graph.node(n)["attrs"].get("name", "")) for n in graph.inputs])

    def _dels(self, units):
        """Drop run-local names after their last use, so the program holds no more than needed."""
        graph, plan = self.graph, self.plan
        local = set(graph.inputs)
        for u in self.units:
            for m in u.members:
                st = plan.storage.get(m)
                if st is not None and st[0] in ("fresh", "input"):
                    local.add(m)
                elif st is None and u.kind == "op":
                    local.add(m)
        keep = set(graph.outputs) | {graph.inputs[slot] for slot in plan.inplace_state.values()}
        dying = {}
        for a, j in plan.last_use.items():
            if a in local and a not in keep:
                dying.setdefault(j, []).append(name_of(a))
        for i, unit in enumerate(units):
            unit["dels"] = sorted(dying.get(i, ()), key=lambda s: int(s[1:]))


Emitter = _Emitter   # public: the C backend's host module extends it


def generate(graph, units, plan, block_bytes):
    """Render the module source; returns it with the bytes of block scratch the groups share."""
    emitter = _Emitter(graph, units, plan, block_bytes)
    source = emitter.module()
    return source, emitter.scratch_bytes()
