"""Kernel IR records and the lowering of one fused group into them (see gradc.kernels)."""
from dataclasses import dataclass, field
from math import prod

from .. import dtypes as D
from ..passes.fusion import ROW_REDUCE, reads_rows, row_role
from ..passes.memory import VIEW_OPS
from ..symint import is_live

CTYPES = {"float32": "float", "float64": "double", "bool": "unsigned char", "int64": "long long"}
# Elementwise primitives with a C expression in templates/c/ops.j2. floor_divide and remainder
# follow NumPy's fmod-based rules at inf and NaN, which no short C expression matches: groups that
# use them run through NumPy, like every op the C backend does not fuse.
C_OPS = frozenset(("neg", "exp", "log", "sqrt", "tanh", "sigmoid", "abs", "sign", "erf", "sin", "cos", "floor",
                   "ceil", "round", "trunc", "logical_not", "add", "sub", "mul", "div", "pow", "maximum", "minimum",
                   "lt", "le", "gt", "ge", "eq", "ne", "logical_and", "logical_or", "where", "cast",
                   "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "erfc", "exp2", "log1p", "expm1",
                   "signbit", "atan2", "hypot", "xlogy", "nextafter",
                   "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not"))
# Not here: lgamma (lgammaf writes the global signgam, a race under OpenMP) and fmax/fmin (which
# of +0 and -0 C returns is unspecified; NumPy keeps the first).
# What a group may do with integer values (targets, indices): compare them (one-hot masks, ignore
# indices), select and convert them, and exact arithmetic within one integer type (wrapping as
# NumPy's does: C kernels build with -fwrapv). Division, powers, rounding, reductions and float to
# integer casts (undefined in C for NaN and out-of-range values) run through NumPy.
INT_OPS = frozenset(("eq", "ne", "lt", "le", "gt", "ge", "where", "maximum", "minimum", "cast", "add", "sub", "mul",
                     "neg", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not"))
MAX_CHUNKS = 64
PARTIAL_BUDGET = 8 << 20   # bytes of per-chunk partials a reduction across rows may hold


@dataclass(frozen=True)
class Index:
    """Element offset of an operand at iteration (r, j): `r * row + inner` when the operand follows
    the rows (row is its elements per row), else the inner part alone over the flat index
    `r * over + j` (the operand is read whole). `var` names the flat index the terms read ("j",
    "0", "r", "rj"); `terms` are (div, size, stride, mod) with offset sum ((var / div) % size) *
    stride (no % where mod is False), or None for the identity."""
    row: object
    var: str
    over: int
    terms: object


@dataclass(frozen=True)
class Param:
    name: str
    node: int
    ctype: str
    role: str          # "in" or "out"
    nbytes: int


@dataclass(frozen=True)
class Load:
    name: str
    ctype: str
    param: str
    index: Index


@dataclass(frozen=True)
class Literal:
    """A uniform constant of the graph, declared once at the top of the kernel."""
    name: str
    ctype: str
    value: float


@dataclass(frozen=True)
class Let:
    name: str
    ctype: str
    op: str
    ct: str            # the type the op computes in
    args: tuple        # ((name, ctype), ...)
    attrs: dict = field(default_factory=dict)
    node: object = None   # the graph node it computes (its `where` is the model's file:line)


@dataclass(frozen=True)
class Store:
    param: str
    index: Index
    value: str
    vtype: str
    ctype: str


@dataclass(frozen=True)
class Accumulate:
    kind: str          # "row" (along the row), "col" (across rows, per element), "total"
    op: str            # "sum" or "max"
    acc: str
    acctype: str
    value: str
    vtype: str


@dataclass(frozen=True)
class RowValue:
    """After a phase: a row reduction's result as a row-level value (stored when it leaves)."""
    name: str
    ctype: str
    acc: str
    store: object      # Store or None


@dataclass(frozen=True)
class ColReduce:
    """A reduction across rows: per-chunk partials `acc` (n per chunk), combined in chunk order."""
    acc: str
    acctype: str
    op: str
    n: int
    out: str
    ctype: str


@dataclass
class Phase:
    pre: list = field(default_factory=list)     # row-level Lets (and their Stores) before the loop
    inits: list = field(default_factory=list)   # (acc, acctype, op) of row accumulators
    body: list = field(default_factory=list)    # per-element Loads, Lets, Stores, Accumulates
    post: list = field(default_factory=list)    # RowValues


@dataclass
class Kernel:
    id: int
    name: str
    rows: int
    width: int
    chunks: int
    params: list
    phases: list
    colreduces: list
    scratch: list                                # (name, ctype): per-thread rows of `width`
    literals: list
    bytes_read: int
    bytes_written: int
    ops: str
    nodes: list

    @property
    def bytes_moved(self):
        return self.bytes_read + self.bytes_written


def offset_terms(dst, src, var_width):
    """Terms of the flat offset into `src` (broadcast to `dst`, right-aligned) at a flat index over
    `dst`; None when src is dst. A term drops its % where the division alone stays below size."""
    dst, src = tuple(dst), tuple(src)
    if dst == src:
        return None
    lead = len(dst) - len(src)
    terms = []
    for k, size in enumerate(src):
        if size == 1:
            continue
        d = lead + k
        div, stride = prod(dst[d + 1:]), prod(src[k + 1:])
        terms.append((div, size, stride, div * size < var_width))
    return tuple(terms)


class _Unsupported(Exception):
    pass


def _integer(dtype):
    dt = D.ALL[dtype]
    return not dt.is_floating_point and dtype != "bool"


def lower_group(graph, members, rows, kept, ctypes=None, ops=None, row_totals=False):
    """The Kernel of a fused group (members in order, `kept`: members stored for later units), or
    (None, reason) when the scheme does not cover it. `ctypes` (dtype -> the C type values of it
    compute in) and `ops` (the elementwise primitives with an expression) default to the C
    backend's CTYPES and C_OPS; another backend passes its own. With `row_totals`, a reduction
    across rows of a value with one element per row (a loss's mean over the batch) is an
    Accumulate of kind "total" among a phase's row-level statements (`pre`), once per row."""
    try:
        return _Lowering(graph, members, rows, kept, ctypes, ops, row_totals).run(), None
    except _Unsupported as e:
        return None, str(e)


class _Lowering:
    def __init__(self, graph, members, rows, kept, ctypes=None, ops=None, row_totals=False):
        self.g, self.members, self.rows, self.kept = graph, list(members), rows, set(kept)
        self.row_totals = row_totals
        self.ctypes, self.ops = CTYPES if ctypes is None else ctypes, C_OPS if ops is None else ops
        self.inside = set(members)
        src = [graph.node(graph.args(m)[0] if self._reduces(m) else m)["shape"] for m in members]
        self.width = max(prod(s[1:]) for s in src)
        self.params, self.param_of = [], {}
        self.kind, self.phase_of, self.reg, self.spilled = {}, {}, {}, set()
        self.phases, self.colreduces, self.scratch = [Phase()], [], []
        self.loads = {}
        self.literals = {}
        self.read_bytes = {}

    def _reduces(self, m):
        return self.g.node(m)["op"] in ("sum", "max") and row_role(self.g, m) is not None

    def ctype(self, n):
        dt = self.g.node(n)["dtype"]
        if dt not in self.ctypes:
            raise _Unsupported(f"{dt} data")
        return self.ctypes[dt]

    def per_row(self, n):
        return prod(self.g.node(n)["shape"][1:])

    def param(self, n, role):
        key = (n, role)
        if key not in self.param_of:
            name = f"p{n}" if role == "in" else f"o{n}"
            self.param_of[key] = name
            self.params.append(Param(name, n, self.ctype(n), role, self.g.nbytes(n)))
        return self.param_of[key]

    # ------------------------------------------------------------------ classification
    def integers(self, m):
        """Refuse what a kernel cannot do exactly as NumPy with integer values (see INT_OPS)."""
        g, d = self.g, self.g.node(m)
        args = [g.node(a)["dtype"] for a in g.args(m)]
        if not any(_integer(t) for t in [d["dtype"]] + args) or d["op"] in VIEW_OPS:
            return
        op = d["op"]
        if op not in INT_OPS or op in ("sum", "max"):
            raise _Unsupported(f"{op} of integer values")
        if op == "cast":
            if _integer(d["dtype"]) and not (_integer(args[0]) or args[0] == "bool"):
                raise _Unsupported(f"a cast of {args[0]} to {d['dtype']}")
            return
        operands = args[1:] if op == "where" else args
        if len(set(operands)) != 1 or op not in ("eq", "ne", "lt", "le", "gt", "ge") and d["dtype"] != operands[0]:
            raise _Unsupported(f"{op} of {', '.join(args)} values")

    def classify(self, m):
        g, d = self.g, self.g.node(m)
        op, W = d["op"], self.width
        self.ctype(m)
        for a in g.args(m):
            self.ctype(a)
        self.integers(m)
        if row_role(g, m) == ROW_REDUCE:
            src = g.node(g.args(m)[0])["shape"]
            axes = tuple(d["attrs"]["axes"])
            if self.row_totals and prod(src[1:]) == 1 and W > 1 and d["dtype"] != "bool":
                return "rowtotal"
            if prod(src[1:]) != W:
                raise _Unsupported("a reduction over the rows of a narrower value")
            if d["dtype"] == "bool":
                raise _Unsupported(f"{op} of bool values")
            if axes == (0,):
                return "col"
            if sorted(axes) == list(range(len(src))):
                return "total"
            raise _Unsupported(f"{op} over axes {axes}")
        if op in ("sum", "max"):
            src = g.node(g.args(m)[0])["shape"]
            if prod(src[1:]) != W or self.per_row(m) != 1 or d["dtype"] == "bool":
                raise _Unsupported(f"{op} over some of a row's axes")
            return "row"
        if op not in VIEW_OPS and op not in self.ops:
            raise _Unsupported(f"no C expression for {op}")
        n = self.per_row(m)
        if n == W:
            return "full"
        if n == 1:
            return "scalar"
        raise _Unsupported(f"{op} over {n} of a row's {W} elements")

    # ------------------------------------------------------------------ reads
    def read(self, user_shape, user_full, v, follows, phase):
        """(name, ctype) of value v for a user iterating `user_shape` (per element when user_full)."""
        g = self.g
        if v in self.inside:
            d = g.node(v)
            if d["op"] in VIEW_OPS:
                src = g.args(v)[0]
                # an expand broadcasts its source to its own shape; a reshape (of the rows' elements,
                # in order) reads its source at the same flat index, so its source's own shape
                seen = g.node(src)["shape"] if d["op"] == "reshape" else d["shape"]
                follows = True if src in self.inside else reads_rows(g, v, src)
                return self.read(seen, self.kind[v] == "full", src, follows, phase)
            k = self.kind[v]
            if k in ("scalar", "row"):
                return self.reg[v]
            if self.phase_of[v] == phase:
                return self.reg[v]
            return self.spill_read(v, phase)
        ct = self.ctype(v)
        d = g.node(v)
        fill = d["attrs"].get("fill") if d["op"] == "const" else None
        if fill is not None and ct != "unsigned char" and not is_live(fill):
            # a uniform constant is a literal in the kernel, never an array it reads (one computed
            # from symbolic sizes, 1 / n, is read: the host module computes it for the call's sizes)
            if v not in self.literals:
                self.literals[v] = Literal(f"k{v}", ct, int(fill) if _integer(d["dtype"]) else float(fill))
            return (f"k{v}", ct)
        shape = d["shape"]
        inner_w = prod(user_shape[1:]) if user_full else 1
        if follows:
            terms = offset_terms(tuple(user_shape[1:]), tuple(shape[1:]), inner_w)
            idx = Index(prod(shape[1:]), "j" if user_full else "0", inner_w, terms)
        elif not shape and not user_shape:   # a 0-d operand of a 0-d member (an inlined scalar): its element
            idx = Index(0, "0", inner_w, ())
        elif len(shape) < len(user_shape) or shape[0] == 1:   # the same for every row: indexed by j alone
            inner = tuple(shape) if len(shape) < len(user_shape) else tuple(shape[1:])
            idx = Index(0, "j" if user_full else "0", inner_w, offset_terms(tuple(user_shape[1:]), inner, inner_w))
        else:   # read whole: the flat index over the user's shape is r * inner_w + j
            idx = Index(None, "rj" if user_full else "r", inner_w,
                        offset_terms(tuple(user_shape), tuple(shape), self.rows * inner_w))
        key = (v, idx)
        if key not in self.loads or self.loads[key][0] != phase:
            name = f"l{v}_{len(self.loads)}"
            p = self.param(v, "in")
            self.read_bytes[v] = g.nbytes(v)
            load = Load(name, ct, p, idx)
            if user_full:
                self.phases[phase].body.append(load)
            else:
                self.phases[phase].pre.append(load)
            self.loads[key] = (phase, (name, ct))
        return self.loads[key][1]

    def spill_read(self, v, phase):
        """A full value computed in an earlier phase: read back from its output or a row of scratch."""
        ct = self.ctype(v)
        if v not in self.spilled:
            self.spilled.add(v)
            if v not in self.kept:   # (a kept value was stored already by its phase)
                self.scratch.append((f"R{v}", ct))
                self.phases[self.phase_of[v]].body.append(Store(f"R{v}", Index(0, "j", self.width, None),
                                                                self.reg[v][0], ct, ct))
        name = f"b{v}_{phase}"
        if (v, phase) in self.loads:
            return self.loads[(v, phase)]
        self.loads[(v, phase)] = (name, ct)
        if v in self.kept:
            self.phases[phase].body.append(Load(name, ct, self.param(v, "out"), Index(self.width, "j", self.width,
                                                                                    None)))
        else:
            self.phases[phase].body.append(Load(name, ct, f"R{v}", Index(0, "j", self.width, None)))
        return (name, ct)

    def pending(self, v):
        """Whether v (through views) is a row reduction of the current phase, not finished yet."""
        g = self.g
        while v in self.inside and g.node(v)["op"] in VIEW_OPS:
            v = g.args(v)[0]
        return v in self.inside and self.kind[v] == "row" and self.phase_of[v] == len(self.phases) - 1 \
            and v not in self.finished

    # ------------------------------------------------------------------ lowering
    def run(self):
        g = self.g
        for m in self.members:
            self.kind[m] = self.classify(m)
        self.finished = set()
        pending_rows = []
        for m in self.members:
            d, k = g.node(m), self.kind[m]
            if d["op"] in VIEW_OPS:
                self.phase_of[m] = len(self.phases) - 1
                if m in self.kept:
                    raise _Unsupported("a view that leaves the group")
                continue
            if any(self.pending(a) for a in g.args(m)):
                self.close(pending_rows)
            cur = len(self.phases) - 1
            self.phase_of[m] = cur
            ct = self.ctype(m)
            if k in ("full", "scalar"):
                full = k == "full"
                args = tuple(self.read(d["shape"], full, a, a in self.inside or reads_rows(g, m, a), cur)
                             for a in g.args(m))
                op_ct = args[-1][1]   # a cast computes in its source type and converts at the end
                attrs = {"dtype": d["attrs"]["dtype"]} if d["op"] == "cast" else {}
                name = f"t{m}" if full else f"s{m}"
                let = Let(name, ct, d["op"], op_ct, args, attrs, node=m)
                self.reg[m] = (name, ct)
                where = self.phases[cur].body if full else self.phases[cur].pre
                where.append(let)
                if m in self.kept:
                    out = self.param(m, "out")
                    idx = Index(self.width if full else 1, "j" if full else "0", self.width if full else 1, None)
                    where.append(Store(out, idx, name, ct, ct))
            else:
                src = g.args(m)[0]
                sshape = g.node(src)["shape"]
                val = self.read(sshape, k != "rowtotal", src, True, cur)
                acct = "double" if d["op"] == "sum" else ct
                if k == "row":
                    acc = f"a{m}"
                    self.phases[cur].inits.append((acc, acct, d["op"]))
                    self.phases[cur].body.append(Accumulate("row", d["op"], acc, acct, *val))
                    store = Store(self.param(m, "out"), Index(1, "0", 1, None), f"s{m}", ct, ct) \
                        if m in self.kept else None
                    self.phases[cur].post.append(RowValue(f"s{m}", ct, acc, store))
                    self.reg[m] = (f"s{m}", ct)
                    pending_rows.append(m)
                elif k == "rowtotal":   # once per row, from the row-level value
                    acc = f"P{m}"
                    self.colreduces.append(ColReduce(acc, acct, d["op"], 1, self.param(m, "out"), ct))
                    self.phases[cur].pre.append(Accumulate("total", d["op"], acc, acct, *val))
                else:
                    n = self.width if k == "col" else 1
                    acc = f"P{m}"
                    self.colreduces.append(ColReduce(acc, acct, d["op"], n, self.param(m, "out"), ct))
                    self.phases[cur].body.append(Accumulate(k, d["op"], acc, acct, *val))
        # As many chunks for every row count (fewer rows leave chunks empty; their partials add -0.0
        # or max -inf, which changes no bits): the kernel's code is then the same for every batch size.
        chunks = MAX_CHUNKS
        for c in self.colreduces:
            chunks = max(1, min(chunks, PARTIAL_BUDGET // (8 * max(1, c.n))))   # (n is 0 for an empty row)
        written = sum(p.nbytes for p in self.params if p.role == "out")
        return Kernel(id=self.members[0], name=f"g{self.members[0]}", rows=self.rows, width=self.width,
                      chunks=chunks, params=self.params, phases=[p for p in self.phases if p.body or p.pre or
                                                                 p.post], colreduces=self.colreduces,
                      scratch=self.scratch, literals=list(self.literals.values()), bytes_read=sum(self.read_bytes.values()), bytes_written=written,
                      ops=" ".join(g.node(m)["op"] for m in self.members), nodes=self.members)

    def close(self, pending_rows):
        self.finished.update(pending_rows)
        pending_rows.clear()
        self.phases.append(Phase())
