"""C code generation: one C translation unit per program (templates/c/program.c.j2) holding a
kernel for every fused group that lowers to the kernel IR (gradc.kernels), and a host module
(templates/c/host.py.j2) that calls them through ctypes. Matmuls and every op the C backend does
not fuse run through NumPy from the host module (BLAS through NumPy: one call per matmul, no
copies; the host loop is the NumPy backend's), so each op has a C lowering or this documented
host fallback. A group the kernel IR does not cover runs as the NumPy backend's blocked loop.

Per-call cost (what a batch of one pays): consecutive C kernels are one ctypes call of an entry
function (`r<N>`, templates/c/program.c.j2) that reads their arguments' addresses from an array made
with the program; planned buffers' and constants' addresses are written into it once, an input's
whenever its array is another object than on the call before, and values made during the call on
every call. Small elementwise ops of one row outside every group run as C kernels too (writing
buffers made with the program, when their values stay inside the call), and float matmuls call
NumPy's BLAS directly (templates/c/host_ops.j2)."""
import math
from dataclasses import replace

from ..kernels import C_OPS, Let, Load, Store, Accumulate, lower_group
from ..passes.memory import stored
from ..version import __version__
from .c_windows import col2im_kernel, im2col_kernel, render_window, wide_column_gradient
from .numpy_backend import Emitter, name_of
from .templates import csize, lowering as table_lowering, macros, render, where as safe_where

OPS_TABLE = "c/ops.j2"
PARALLEL_ELEMENTS = 1 << 15   # below this many elements a kernel runs on one thread
# An elementwise op outside any group (one row: a batch of one) whose value has at most this many
# elements and stays inside the call runs as a C kernel writing a buffer made with the program:
# NumPy's per-call cost (allocating the result, dispatching the ufunc) is most of such an op's time.
SMALL_OP_ELEMENTS = 1 << 14


def lowering(op):
    return table_lowering(OPS_TABLE, op)


class _CEmitter(Emitter):
    MODULE = "c/host.py.j2"

    def __init__(self, graph, units, plan, block_bytes):
        super().__init__(graph, units, plan, block_bytes)
        self.cst, self.host_ops = macros("c/statements.j2"), macros("c/host_ops.j2")
        self.c_kernels, self.kernel_ir, self.declined = [], [], []
        self.window_kernels = []   # col2im ops run as C kernels (gradc.codegen.c_windows)
        self.wide = {}             # col2im node -> the matmul writing its columns window-position-major
        self.runs = []   # consecutive C kernels called as one: [(entry, [(kernel, [slot, ...])], slots)]
        self.op_buffers, self.op_nodes = [], set()   # (name, shape, dtype) of single ops run as C kernels
        escaping = set(graph.outputs)
        self.escaping = escaping | {plan.root.get(o, o) for o in escaping}

    def context(self):
        wins = self.window_kernels
        return {"ckernels": [(k.name, len(k.params) + 1) for k in self.kernel_ir] + [(w.name, 2) for w in wins],
                "cruns": [(name, n) for name, _, n in self.runs], "op_buffers": self.op_buffers,
                "celements": sum(k.rows * k.width for k in self.kernel_ir) + sum(w.n * w.h * w.w * w.c for w in wins),
                "crows": [(k.rows, k.width, k.chunks) for k in self.kernel_ir],
                "windows_parallel": any(w.parallel for w in wins), "parallel_elements": PARALLEL_ELEMENTS,
                "blas_flops": self.matmul_flops()}

    def matmul_flops(self):
        """Floating-point operations of the program's matmuls per call (they run in NumPy's BLAS)."""
        g, flops = self.graph, 0
        for n in g.op_nodes():
            d = g.node(n)
            if d["op"] == "matmul":
                a = g.node(g.args(n)[0])["shape"]
                flops += 2 * math.prod(d["shape"]) * (a[-1] if a else 1)
        return flops

    def group_unit(self, u):
        graph = self.graph
        kept = [m for m in u.members if stored(graph, u, m, self.outputs)]
        kernel, why = lower_group(graph, u.members, u.rows, kept, row_totals=True)
        if kernel is None:
            self.declined.append((u.id, why))
            return super().group_unit(u)
        self.kernel_ir.append(kernel)
        self.c_kernels.append(self.render_kernel(kernel, u))
        prologue = []
        for m in kept:
            prologue += self.storage_prologue(m)
        args = [(p.role, name_of(p.node)) for p in kernel.params]
        unit = {"kind": "ckernel", "id": u.id, "name": kernel.name, "ops": kernel.ops, "args": args,
                "prologue": prologue, "where": safe_where(graph.node(u.members[0])["where"]),
                "nodes": [(p.role, p.node) for p in kernel.params], "rows": kernel.rows}
        return None, unit

    def op_unit(self, u):
        """A small elementwise op of one row (outside every group) as a C kernel into a buffer made
        once; every other op as in the NumPy module."""
        graph, n = self.graph, u.id
        d = graph.node(n)
        shape = d["shape"]
        host = self.host_op(u, n, d)
        if host is not None:
            return host
        wide = wide_column_gradient(graph, n, self.plan.storage)
        if wide is not None:
            return self.wide_unit(n, d, *wide)
        if d["op"] in ("col2im", "im2col") and n in self.plan.storage and stored(graph, u, n, self.outputs):
            found = (col2im_kernel if d["op"] == "col2im" else im2col_kernel)(graph, n)
            if found is not None:
                return self.window_unit(n, d, *found)
        if (d["op"] not in C_OPS or len(shape) < 1 or shape[0] != 1 or math.prod(shape) > SMALL_OP_ELEMENTS
                or n in self.escaping or n in self.plan.storage):
            return super().op_unit(u)
        kernel, _ = lower_group(graph, [n], 1, [n])
        if kernel is None:
            return super().op_unit(u)
        self.kernel_ir.append(kernel)
        self.c_kernels.append(self.render_kernel(kernel, u))
        self.op_buffers.append((name_of(n), shape, d["dtype"]))
        self.op_nodes.add(n)
        return {"kind": "ckernel", "id": u.id, "name": kernel.name, "ops": kernel.ops,
                "args": [(p.role, name_of(p.node)) for p in kernel.params], "prologue": [],
                "where": safe_where(d["where"]), "nodes": [(p.role, p.node) for p in kernel.params],
                "rows": kernel.rows}

    def window_unit(self, n, d, k, cols):
        """col2im (reading the columns' memory) or im2col as one C kernel (templates/c/windows.c.j2)."""
        (view,) = self.graph.args(n)
        prologue, name = [], name_of(view)
        if n in self.wide:   # the columns' GEMM wrote them window-position-major (wide_unit)
            k = replace(k, offset_major=False)
            name = f"{name_of(n)}_cols"
            prologue.append(self.stmt.alias_reshaped(name, name_of(self.wide[n]), self.graph.node(view)["shape"]))
        elif cols != view:   # window-offset-major memory: the view permuted back, contiguous again
            name = f"{name_of(n)}_cols"
            perm = self.graph.node(view)["attrs"]["perm"]
            prologue.append(self.stmt.assign(name, self.host_ops.permute(name_of(view), _inverse(perm))))
        self.window_kernels.append(k)
        self.c_kernels.append(render_window(k, safe_where(d["where"])))
        return {"kind": "ckernel", "id": n, "name": k.name, "ops": k.ops,
                "args": [("in", name), ("out", name_of(n))], "prologue": prologue + self.storage_prologue(n),
                "where": safe_where(d["where"]), "nodes": [("in", view), ("out", n)]}

    def wide_unit(self, n, d, col2im, wview):
        """window_matmul's column gradient as one GEMM with the weight as an (O, K * C) matrix, into
        the planned buffer viewed as (M, K * C) (gradc.codegen.c_windows.wide_column_gradient)."""
        graph = self.graph
        a, _ = graph.args(n)
        k, m, c = d["shape"]
        o = graph.node(a)["shape"][1]
        self.wide[col2im] = n
        w, t, out = f"{name_of(n)}_w", f"{name_of(n)}_t", f"{name_of(n)}_o"
        prologue = self.storage_prologue(n) + [
            self.stmt.assign(t, self.host_ops.permute(name_of(wview), (1, 0, 2))),
            self.stmt.alias_reshaped(w, t, (o, k * c)), self.stmt.alias_reshaped(out, name_of(n), (m, k * c))]
        return {"kind": "op", "code": self.host_ops.matmul(name_of(a), w, out), "prologue": prologue,
                "where": safe_where(d["where"])}

    def host_op(self, u, n, d):
        """A float matmul of matrices (into its planned storage) or a permute, from templates/c/host_ops.j2."""
        graph, args = self.graph, [name_of(a) for a in self.graph.args(n)]
        if d["op"] == "matmul" and d["dtype"] in ("float32", "float64") and stored(graph, u, n, self.outputs) \
                and all(len(graph.node(a)["shape"]) == 2 for a in graph.args(n)):
            code = self.host_ops.matmul(*args, name_of(n))
            return {"kind": "op", "code": code, "prologue": self.storage_prologue(n), "where": safe_where(d["where"])}
        if d["op"] == "permute" and not stored(graph, u, n, self.outputs):
            code = self.stmt.assign(name_of(n), self.host_ops.permute(args[0], tuple(d["attrs"]["perm"])))
            return {"kind": "op", "code": code, "prologue": [], "where": safe_where(d["where"])}
        return None

    def _source(self, n):
        """Where a kernel argument's address comes from: "pool" or "const" (a planned buffer or a
        constant, allocated once when the program is made: its address is taken then), "input" (an
        input's array or an alias of it: taken again whenever the array is another object than on the
        call before), or "call" (made during the call: taken on every call)."""
        st = self.plan.storage.get(n)
        if st is not None and st[0] == "pool" or n in self.op_nodes:
            return "pool"
        if self.graph.node(n)["op"] == "const":
            return "const"
        if n in self.graph.inputs or st is not None and st[0] == "input":
            return "input"
        return "call"

    def _memory(self, n):
        """The memory a value lives in: an input (by slot), a planned buffer, or its own; a view's
        memory is the memory it views."""
        node = self.plan.root.get(n, n)
        if node in self.graph.inputs:
            return ("input", self.graph.inputs.index(node))
        st = self.plan.storage.get(node)
        return st if st is not None and st[0] in ("pool", "input") else ("node", node)

    def _dels(self, units):
        """The NumPy module's dels, then each run of consecutive C kernels becomes one unit: one
        call of an entry function in the shared object that calls the kernels in order, its
        argument addresses in an array made once (see templates/c/host.py.j2)."""
        super()._dels(units)
        made = {name for name, _, _ in self.op_buffers}   # (names of the program, never deleted in a call)
        for u in units:
            u["dels"] = [v for v in u["dels"] if v not in made]
        i = 0
        while i < len(units):
            if units[i]["kind"] != "ckernel":
                i += 1
                continue
            j = i + 1
            while j < len(units) and units[j]["kind"] == "ckernel" and self._joins(units[i:j], units[j]):
                j += 1
            units[i:j] = [self._run(units[i:j])]
            i += 1

    def _joins(self, run, unit):
        """Whether a kernel may join a run: every address is taken before the run's one call, so a
        kernel must not read, through another value, memory an earlier kernel of the run writes."""
        written = {(n, self._memory(n)) for u in run for role, n in u["nodes"] if role == "out"}
        wmem = {m for _, m in written}
        return not any(role == "in" and self._memory(n) in wmem and (n, self._memory(n)) not in written
                       for role, n in unit["nodes"])

    def _run(self, kernels):
        slots, calls = {}, []
        for u in kernels:
            idx = []
            for (role, n), (_, name) in zip(u["nodes"], u["args"]):
                if n not in slots:
                    slots[n] = {"k": len(slots), "name": name, "role": role, "source": self._source(n)}
                elif role == "out":
                    slots[n]["role"] = "out"
                idx.append(slots[n]["k"])
            if "rows" in u:   # a row kernel's row count: an argument, so one build serves every batch size
                idx.append(len(slots))
                slots[("rows", u["name"])] = {"k": len(slots), "name": f"N{u['name']}", "role": "in",
                                              "source": "rows", "rows": u["rows"]}
            calls.append((u["name"], idx))
        entry = f"r{len(self.runs)}"
        self.runs.append((entry, calls, len(slots)))
        return {"kind": "crun", "entry": entry, "kernels": kernels, "slots": list(slots.values()),
                "prologue": [s for u in kernels for s in u["prologue"]],
                "dels": sorted({d for u in kernels for d in u["dels"]}, key=lambda s: int(s[1:]))}

    def _aliased(self, kernel):
        """Whether two parameters of the kernel may share memory (then no `restrict`)."""
        keys = [self._memory(p.node) for p in kernel.params]
        return len(set(keys)) < len(keys)

    def render_kernel(self, k, u):
        cst = self.cst
        restrict = "" if self._aliased(k) else " restrict"
        params = [f"{'const ' if p.role == 'in' else ''}{p.ctype}*{restrict} {p.name}" for p in k.params] + \
            ["const long* nrows"]
        phases, colscratch = [], []
        for ph in k.phases:
            # (a total over the rows of a row-level value, a loss's mean over the batch: once per row)
            pre = [cst.accumulate(s, f"{s.acc}[c]") if isinstance(s, Accumulate) else self.stmt_c(s) for s in ph.pre]
            inits = [f"{t} {acc} = {cst.acc_init(op, t)};" for acc, t, op in ph.inits]
            body, red, has_max, post, cols = [], [acc for acc, t, op in ph.inits if op == "sum"], \
                any(op == "max" for _, _, op in ph.inits), [], []
            for s in ph.body:
                if isinstance(s, Accumulate) and s.kind == "total":
                    local = f"{s.acc}_row"
                    inits.append(f"{s.acctype} {local} = {cst.acc_init(s.op, s.acctype)};")
                    body.append(cst.accumulate(s, local))
                    if s.op == "sum":
                        red.append(local)
                    else:
                        has_max = True
                    post.append(cst.combine(s.op, f"{s.acc}[c]", local))
                elif isinstance(s, Accumulate) and s.kind == "row":
                    body.append(cst.accumulate(s, s.acc))
                elif isinstance(s, Accumulate) and s.kind == "col":
                    # the row's values go to a scratch row and are added to the partials in a loop of
                    # their own: in the loop that computes them, a select (a ReLU's gradient) next to the
                    # widening add kept gcc from vectorising it (~12x slower); same adds, same order
                    row = f"C{s.acc}"
                    colscratch.append((row, s.vtype))
                    body.append(f"{row}[j] = {s.value};")
                    cols.append(cst.accumulate(replace(s, value=f"{row}[j]"), f"{s.acc}[c * {csize(k.width)} + j]"))
                else:
                    body.append(self.stmt_c(s))
            for rv in ph.post:
                post.insert(0, f"const {rv.ctype} {rv.name} = ({rv.ctype}){rv.acc};")
                if rv.store is not None:
                    post.insert(1, cst.store(rv.store))
            phases.append({"pre": pre, "inits": inits, "body": body, "post": post, "simd": not has_max,
                           "reduction": red, "cols": cols})
        literals = [cst.literal(s, _special(s.value), repr(s.value)) for s in k.literals]
        origins = sorted({safe_where(self.graph.node(m)["where"]) for m in k.nodes} - {""})
        return render("c/kernel.c.j2", k=k, params=params, literals=literals, phases=phases, origins=origins,
                      colscratch=colscratch,
                      where=safe_where(self.graph.node(u.members[0])["where"]),
                      parallel_elements=PARALLEL_ELEMENTS, symbols=self.symbols,
                      init=lambda op: cst.acc_init(op, ""), combine=cst.combine)

    def stmt_c(self, s):
        cst = self.cst
        if isinstance(s, Load):
            return cst.load(s)
        if isinstance(s, Store):
            return cst.store(s)
        if isinstance(s, Let):
            args = [cst.conv(s.ct, name, vt) for name, vt in s.args]
            expr = lowering(s.op)(s.ct, *args, **s.attrs)
            code = f"const {s.ctype} {s.name} = {cst.conv(s.ctype, expr, s.ct if s.op != 'cast' else s.ctype)};"
            return cst.located(code, "" if s.node is None else safe_where(self.graph.node(s.node)["where"]))
        raise TypeError(f"unexpected kernel IR statement {s!r}")


def _inverse(perm):
    return tuple(sorted(range(len(perm)), key=perm.__getitem__))


def _special(value):
    """The C name of a non-finite literal, or "" for a finite one."""
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "-INFINITY"
    return ""


def generate(graph, units, plan, block_bytes):
    """(host module source, C source, block scratch bytes, kernel IR list, declined groups)."""
    e = _CEmitter(graph, units, plan, block_bytes)
    host = e.module()
    c_src = render("c/program.c.j2", version=__version__, graph_hash=graph.hash()[:16], kernels=e.c_kernels,
                   runs=e.runs)
    return host, c_src, e.scratch_bytes(), e.kernel_ir + e.window_kernels, e.declined
