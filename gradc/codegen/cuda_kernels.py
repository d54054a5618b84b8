"""CUDA kernels rendered from the kernel IR (gradc.kernels): one fused group, one kernel launch
(reductions across rows end as per-block partials that the block finishing last combines in
block order).

The shapes of the kernels are described in templates/cuda/kernel.cu.j2. Python decides the launch
(grid, block, values per thread), the index width, which loads may be vector loads, what lives in
registers and what must not be `__restrict__`; the code comes from templates/cuda/."""
import math
from dataclasses import dataclass, field

from ..kernels import Accumulate, Let, Load, Store, lower_group
from ..ops import OPS
from .templates import lowering as table_lowering, macros, render, where as safe_where

DEVICE_TABLE = "cuda/ops.j2"
# dtype -> the C type a kernel computes values of it in (float16 is stored as half, computed in float)
CTYPES = {"float32": "float", "float64": "double", "float16": "float", "bool": "unsigned char",
          "int64": "long long", "int32": "int"}
POINTER = {"float32": "float", "float64": "double", "float16": "gradc_half", "bool": "unsigned char",
           "int64": "long long", "int32": "int"}
ROW_THREADS = 512      # at most this many threads per row block
MAX_SLICE = 8          # at most this many elements of a row per thread (kept in registers)
FLAT_THREADS = 256
FLAT_BLOCKS = 8192     # flat kernels: at most this many blocks (a grid-stride loop covers the rest)
ROW_BLOCKS = 65535
COL_BLOCKS = 160       # blocks of a kernel with reductions across rows: its per-block partials
ONE_BLOCK = 1 << 16    # up to this many elements, such a kernel is one block that writes the results
ACC_BYTES = 8          # partials are double


def index_type(n, grid, block):
    """The C type of a kernel's element indices: 32-bit while no index, nor an index plus one
    grid-stride step (grid * block), can reach 2^31."""
    return "long long" if n + grid * block >= 2 ** 31 else "int"


def device_ops():
    """The elementwise primitives: each has a device expression (templates/cuda/ops.j2, or the
    entry's own), and rendering one without it raises, naming the file to add it to."""
    return frozenset(name for name, prim in OPS.items() if prim.elementwise)


@dataclass
class CudaKernel:
    """A rendered group: its source, launches and the traffic it causes per call."""
    name: str
    source: str
    grid: int
    block: int
    params: list                     # (role, graph node or None, name): "in" / "out" / "part"
    partials: list                   # (name, elements, dtype) allocated once by the host module
    fills: list = field(default_factory=list)   # (node, identity) of reductions when there are no rows
    global_bytes: int = 0
    empty: bool = False
    signature: list = field(default_factory=list)   # the C declaration of each of `params`
    embedded: str = ""               # its body, for a launch shared with other kernels (`batch`)

    @property
    def launches(self):
        return 0 if self.empty else 1


def _special(value):
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return ""


class _Render:
    def __init__(self, graph, kernel):
        self.g, self.k = graph, kernel
        self.st = macros("cuda/statements.j2")
        self.params = {p.name: p for p in kernel.params}
        # values of earlier phases that later phases read: the thread's own slice, in registers
        self.regs = {}
        for ph in kernel.phases:
            for s in ph.body:
                if isinstance(s, Load) and (s.param.startswith("R") or
                                            (s.param in self.params and self.params[s.param].role == "out")):
                    node = s.param[1:]
                    self.regs.setdefault(f"R{node}", s.ctype)

    def half(self, param):
        p = self.params.get(param)
        return p is not None and self.g.node(p.node)["dtype"] == "float16"

    def expr(self, s):
        if s.op == "cast":   # the operand's C type decides the rounding to float16 (a double: once)
            args = [name for name, _ in s.args]
            return table_lowering(DEVICE_TABLE, "cast")(s.ctype, *args, src=s.args[0][1], **s.attrs)
        args = [self.st.conv(s.ct, name, vt) for name, vt in s.args]
        e = table_lowering(DEVICE_TABLE, s.op)(s.ct, *args, **s.attrs)
        e = self.st.conv(s.ctype, e, s.ct)
        if s.node is not None and self.g.node(s.node)["dtype"] == "float16":
            e = self.st.round_half(e)
        return e

    def stmt(self, s, tl, once="", row_level=False):
        st = self.st
        if isinstance(s, Load):
            reg = f"R{s.param[1:]}"
            if reg in self.regs and (s.param.startswith("R") or self.params[s.param].role == "out"):
                return [st.reg_load(s, reg, tl)]
            return [st.load(s, self.half(s.param))]
        if isinstance(s, Let):
            return [st.let(s, self.expr(s))]
        if isinstance(s, Store):
            if s.param.startswith("R"):
                return [st.reg_store(s.param, tl, s.value)]
            out = [st.store(s, self.half(s.param), once)]
            reg = f"R{s.param[1:]}"
            if reg in self.regs and s.index.var == "j":
                out.append(st.reg_store(reg, tl, s.value))
            return out
        if isinstance(s, Accumulate):
            if row_level:   # a per-row value, counted once: by thread 0 (slot 0 in the host check)
                return [once + st.accumulate(s.op, st.acc_target(s.acc, tl, "once"), s.value, s.vtype)]
            return [st.accumulate(s.op, st.acc_target(s.acc, tl, s.kind), s.value, s.vtype)]
        raise TypeError(f"unexpected kernel IR statement {s!r}")

    def rows_phases(self, tl, once):
        out, slot = [], 0
        for ph in self.k.phases:
            reds = []
            for acc, _, op in ph.inits:
                reds.append((acc, op, slot))
                slot += 1
            pre = [x for s in ph.pre for x in self.stmt(s, tl, once, True)]
            body = [x for s in ph.body for x in self.stmt(s, tl, once)]
            post = []
            for rv in ph.post:
                value = self.st.conv(rv.ctype, f"{rv.acc}_r", "double")
                if self.g.node(int(rv.name[1:]))["dtype"] == "float16":   # a float16 result, as eager rounds it
                    value = self.st.round_half(value)
                post.append(self.st.let(rv, value))
                if rv.store is not None:
                    post += self.stmt(rv.store, tl, once)
            out.append({"pre": pre, "reds": reds, "body": body, "post": post})
        return out, slot

    def vectorizable(self, s):
        p = self.params.get(s.param)
        return (p is not None and s.index.terms is None and s.index.var in ("j", "rj")
                and self.g.node(p.node)["dtype"] in ("float32", "float16"))

    def flat(self, tl, quad):
        st, ph = self.st, self.k.phases[0]
        pre = [x for s in ph.pre for x in self.stmt(s, tl, "")]
        vloads, vstores, body = [], [], []
        for s in ph.body:
            if quad and isinstance(s, Load) and self.vectorizable(s):
                vloads.append(st.load4(s, self.half(s.param)))
                body.append(st.lane_load(s))
            elif quad and isinstance(s, Store) and self.vectorizable(s):
                vstores.append({"param": s.param, "code": st.store4(s.param, s.index, self.half(s.param))})
                body.append(st.lane_store(s))
            else:
                body += self.stmt(s, tl)
        return {"pre": pre, "vloads": vloads, "vstores": vstores, "body": body}


def lower(graph, members, rows, kept, storage_key, where="", uid=None, guard=0):
    """The CudaKernel of a fused group, or (None, reason) when the kernel IR does not cover it.
    `storage_key(node)` names the memory a value lives in: parameters that share it (an optimizer
    state updated in place, a pooled buffer) are not `__restrict__`. `uid` names the kernel.
    `guard`: the number of index checks of the program; the kernel then reads their record and
    writes nothing when one failed (a state it updates in place stays as it was)."""
    k, why = lower_group(graph, members, rows, kept, ctypes=CTYPES, ops=device_ops(), row_totals=True)
    if k is None:
        return None, why
    if uid is not None:   # named after the group (its first members may be scalars it computes itself)
        k.id, k.name = uid, f"g{uid}"
    by_key = {}
    for p in k.params:
        by_key.setdefault(storage_key(p.node), []).append(p.name)
    aliased = {name for names in by_key.values() if len(names) > 1 for name in names}
    for ph in k.phases:
        for s in ph.body:
            if isinstance(s, Accumulate) and s.vtype not in ("float", "double"):
                return None, f"{s.op} of integer values"
    W, R = k.width, k.rows
    N = R * W
    r = _Render(graph, k)
    kinds = {s.acc: s.kind for ph in k.phases for s in ph.body + ph.pre if isinstance(s, Accumulate)}
    rowwise = len(k.phases) > 1 or any(ph.inits or ph.post for ph in k.phases) or \
        any(kinds[c.acc] == "col" for c in k.colreduces) or not k.phases or \
        any(isinstance(s, Accumulate) for ph in k.phases for s in ph.pre)
    totals = [(c.acc, f"PART{c.acc[1:]}", c.op, i) for i, c in
              enumerate(c for c in k.colreduces if kinds[c.acc] == "total")]
    cols = [(c.acc, f"PART{c.acc[1:]}", c.op) for c in k.colreduces if kinds[c.acc] == "col"]
    ctx = {"k": k, "st": r.st, "W": W, "N": N, "totals": totals, "cols": cols, "regs": sorted(r.regs.items()),
           "where": where, "origins": sorted({safe_where(graph.node(m)["where"]) for m in k.nodes} - {""})}
    if rowwise:
        B = min(ROW_THREADS, max(32, -(-W // 32) * 32))
        K = -(-W // B)
        if K > MAX_SLICE:
            return None, f"a row of {W} elements is more than {MAX_SLICE} per thread of a {B}-thread block"
        G = max(1, min(R, ROW_BLOCKS if not k.colreduces else 1 if N <= ONE_BLOCK else COL_BLOCKS))
        dev, slots = r.rows_phases("", "if (tid == 0) ")
        host, _ = r.rows_phases("[tid]", "")
        ctx.update(mode="rows", dev=dev, host=host, slots=slots, K=K, quad=False, vec_ptrs=[])
    else:
        B, K = FLAT_THREADS, 1
        quad = W % 4 == 0 and any(r.vectorizable(s) for s in k.phases[0].body if isinstance(s, (Load, Store)))
        G = max(1, min(-(-N // (4 if quad else 1) // B), FLAT_BLOCKS))
        vec = sorted({s.param for s in k.phases[0].body if isinstance(s, (Load, Store)) and r.vectorizable(s)}) \
            if quad else []
        ctx.update(mode="flat", quad=quad, flat_dev=r.flat("", quad), flat_host=r.flat("[tid]", quad),
                   vec_ptrs=[(p, 8 if r.half(p) else 16) for p in vec], K=1, slots=0)
    I = index_type(N, G, B)
    ctx.update(B=B, G=G, NW=B // 32, I=I)
    params, sig = [], []
    direct = {}
    if k.colreduces and G == 1:   # one block: its accumulators are the results, no second pass
        for c in k.colreduces:
            dtype = graph.node(r.params[c.out].node)["dtype"]
            direct[f"PART{c.acc[1:]}"] = {"out": c.out, "half": dtype == "float16", "ctype": c.ctype}
    ctx["direct"] = direct
    for p in k.params:
        t = POINTER[graph.node(p.node)["dtype"]]
        sig.append(r.st.param(t, p.name, p.role == "in", p.name not in aliased))
        params.append((p.role, p.node, p.name))
    if guard:
        sig.append(r.st.guard_param())
        params.append(("guard", None, "gradc_checks"))
    ctx["guard"] = guard
    partials = []
    for c in k.colreduces if not direct else ():
        part = f"PART{c.acc[1:]}"
        sig.append(r.st.part_param(part))
        params.append(("part", None, f"{k.name}_{part}"))
        partials.append((f"{k.name}_{part}", G * c.n, "float64"))
    if k.colreduces and not direct:
        # the block that finishes last (an integer ticket) combines the partials in block order
        outs, off = [], 0
        for c in k.colreduces:
            dtype = graph.node(r.params[c.out].node)["dtype"]
            store = r.st.fin_store(dtype == "float16", c.ctype)
            outs.append({"offset": off, "n": c.n, "op": c.op, "part": f"PART{c.acc[1:]}", "out": c.out,
                         "store": store})
            off += c.n
        sig.append(r.st.ticket_param())
        params.append(("part", None, f"{k.name}_ticket"))
        partials.append((f"{k.name}_ticket", 1, "int32"))
        ctx["fin"] = {"outs": outs, "total": off}
    else:
        ctx["fin"] = None
    partial_bytes = sum(2 * n * ACC_BYTES for _, n, dt in partials if dt == "float64")
    ctx.update(params=sig, partial_bytes=partial_bytes,
               literals=[r.st.literal(s, _special(s.value), repr(float(s.value))) for s in k.literals])
    ctx["embedded"] = False
    source = render("cuda/kernel.cu.j2", **ctx)
    ctx["embedded"] = True
    embedded = render("cuda/kernel.cu.j2", **ctx)
    fills = [(r.params[c.out].node, c.op) for c in k.colreduces] if N == 0 else []
    return CudaKernel(name=k.name, source=source, grid=G, block=B, params=params, partials=partials,
                      fills=fills, global_bytes=0 if N == 0 else k.bytes_moved + partial_bytes, empty=N == 0,
                      signature=sig, embedded=embedded), None


def batch(kernels):
    """One kernel running `kernels` (independent, the same block size) in one launch, each over
    its own range of blocks: (name, source, grid, [(role, node, name)] of its parameters)."""
    parts, start, params, sig, seen = [], 0, [], [], set()
    for k in kernels:
        parts.append({"name": k.name, "start": start, "end": start + k.grid, "text": k.embedded})
        start += k.grid
        for p, decl in zip(k.params, k.signature):
            if p[2] not in seen:   # an operand two of them read is passed once
                seen.add(p[2])
                params.append(p)
                sig.append(decl)
    name = f"{kernels[0].name}_x{len(kernels)}"
    source = render("cuda/batch.cu.j2", kernel=name, parts=parts, grid=start, block=kernels[0].block, params=sig)
    return name, source, start, params


CHECK_THREADS = 256
CHECK_BLOCKS = 1024


@dataclass
class CheckKernel:
    """check_index on the device (templates/cuda/check.cu.j2): it records the first bad index in
    slot `slot` of the program's check record instead of reading anything back during the call."""
    name: str
    source: str
    grid: int
    block: int
    slot: int
    high: int
    ignore: object
    what: str


def _plain_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_kernel(graph, node, slot, where=""):
    """The CheckKernel of check_index node `node`, or None where the host runs it (indices that are
    not int64, a bound that is not a plain integer, or nothing to check)."""
    d, src = graph.node(node), graph.args(node)[0]
    attrs = d["attrs"]
    high, ignore = attrs.get("high"), attrs.get("ignore")
    n = 1
    for s in d["shape"]:
        n *= s
    if graph.node(src)["dtype"] != "int64" or not _plain_int(high) or not (ignore is None or _plain_int(ignore)) \
            or n == 0:
        return None
    B = CHECK_THREADS
    G = max(1, min(-(-n // B), CHECK_BLOCKS))
    name = f"check{node}"
    source = render("cuda/check.cu.j2", kernel=name, node=node, n=n, high=high, ignore=ignore, slot=slot, G=G, B=B,
                    where=where)
    return CheckKernel(name=name, source=source, grid=G, block=B, slot=slot, high=high, ignore=ignore,
                       what=str(attrs.get("what", "")))
