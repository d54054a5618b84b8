"""CUDA code generation: each fused group that the kernel IR covers becomes one generated kernel
(gradc/codegen/cuda_kernels.py renders it), the rest runs on the host module through CuPy.

Matmuls go to cuBLAS through CuPy; other ops run through the op table's kernels with CuPy; a group
the kernel IR does not cover runs op by op that way. Generating the source needs neither a GPU nor
CuPy; only running it does. `generate` also returns the figures of a call: kernel launches and the
bytes moved in global memory (from the kernel IR for generated kernels; for a host op, the bytes
of its operands and result)."""
from .. import dtypes as D
from ..ops import OPS
from ..passes.liveness import last_uses
from ..passes.memory import VIEW_OPS, stored
from ..version import __version__
from . import cuda_kernels
from .numpy_backend import name_of, storage
from .templates import kernel_refs, lowering as table_lowering, macros, render, where as safe_where

DEVICE_TABLE = cuda_kernels.DEVICE_TABLE   # the C expression of each elementwise primitive
HOST_TABLE = "cuda/host_ops.j2"   # how each other primitive runs from the host, on CuPy arrays


def lowering(op):
    """The macro that lowers primitive `op` on CUDA: an elementwise primitive's device expression,
    any other primitive's host expression (a GradcError saying what to add if there is none)."""
    return table_lowering(DEVICE_TABLE if OPS[op].elementwise else HOST_TABLE, op)


def _host_lowering(op):
    """The host expression of `op`; an elementwise op outside a kernel calls its eager kernel (and,
    like one inside a kernel, is refused when it has no device expression: whether a value has
    rows to fuse over must not decide whether its program lowers)."""
    if OPS[op].elementwise:
        lowering(op)
        return lambda *args, **attrs: macros("cuda/host_statements.j2").kernel(op, args, attrs)
    return lowering(op)




def storage_key(graph, plan):
    """The memory a value lives in (a view: the memory of the value it views)."""
    def key(node):
        node = plan.root.get(node, node)
        st = plan.storage.get(node)
        if node in graph.inputs:
            return ("input", graph.inputs.index(node))
        if st is not None and st[0] in ("pool", "input"):
            return st
        return ("node", node)
    return key


def _planned(graph, plan, node):
    """Whether a value lives in storage the host module allocated (contiguous, at its base)."""
    st = plan.storage.get(node)
    return st is not None and st[0] in ("pool", "fresh") and graph.node(node)["op"] not in VIEW_OPS


def _identity(op):
    return 0.0 if op == "sum" else -float("inf")


def _kernel_unit(host, graph, plan, members, kern, kept, where):
    prologue, args, epilogue = [], [], []
    guarded = any(role == "guard" for role, _, _ in kern.params)
    for m in kept:
        st = plan.storage.get(m, ("fresh",))
        if st[0] == "input":
            # a state updated in place: a kernel writes contiguous memory, so a state that is a view
            # (a transpose, a slice) is written through a contiguous buffer and copied into it after
            name, state, d = name_of(m), name_of(graph.inputs[st[1]]), graph.node(m)
            prologue.append(host.alias_contiguous_kept(name, state) if guarded else
                            host.alias_contiguous(name, state, d["shape"], d["dtype"]))
            epilogue.append(host.assign(name, host.written_back(state, name)))
        else:
            prologue += _storage(host, graph, plan, m)
    for role, node, name in kern.params:
        if role == "in" and not _planned(graph, plan, node):
            prologue.append(host.contiguous(f"c{node}", name_of(node)))   # a graph input, a view
            args.append(f"c{node}")
        else:
            args.append(name if role in ("part", "guard") else name_of(node))
    launches = []
    if kern.empty:   # nothing to compute: reductions over no rows give their identity
        prologue += [host.fill(name_of(n), _identity(op)) for n, op in kern.fills]
    else:
        launches.append((kern.name, kern.grid, kern.block, args))
    key = storage_key(graph, plan)
    return {"kind": "kernel", "launches": launches, "prologue": prologue, "epilogue": epilogue, "where": where,
            "members": members,
            "kern": kern, "args": dict(zip((name for _, _, name in kern.params), args)),
            "reads": {key(n) for role, n, _ in kern.params if role == "in"},
            "writes": {key(n) for role, n, _ in kern.params if role == "out"}}


def _batched(unit_ctx):
    """Consecutive kernels that do not touch each other's results (and have one block size) as one
    launch. Returns the new unit list and the launches saved."""
    out, run, saved = [], [], [0]

    def flush():
        if len(run) > 1:
            name, source, grid, params = cuda_kernels.batch([c["kern"] for c in run])
            args = {}
            for c in run:
                args.update(c["args"])
            prologue = list(dict.fromkeys(s for c in run for s in c["prologue"]))
            epilogue = list(dict.fromkeys(s for c in run for s in c["epilogue"]))
            out.append({"kind": "kernel", "launches": [(name, grid, run[0]["kern"].block, [args[p[2]] for p in params])],
                        "prologue": prologue, "epilogue": epilogue, "where": run[0]["where"],
                        "members": [m for c in run for m in c["members"]], "sources": [(name, source)]})
            saved[0] += len(run) - 1
        else:
            out.extend(run)
        run.clear()
    for c in unit_ctx:
        k = c.get("kern")
        # kernels with cross-row partials keep their own launch: their partial and ticket
        # parameters have the same names in every such kernel
        if k is None or k.empty or any(p[0] == "part" for p in k.params):
            flush()
            out.append(c)
            continue
        reads = set().union(*(r["reads"] for r in run)) if run else set()
        writes = set().union(*(r["writes"] for r in run)) if run else set()
        if run and (k.block != run[0]["kern"].block or c["reads"] & writes or c["writes"] & (reads | writes)):
            flush()
        run.append(c)
    flush()
    return out, saved[0]


def _host_figures(graph, n):
    """(launches, global bytes) of one op run from the host: a view or an empty result launches
    nothing; any other op one kernel (cuBLAS for a matmul) reading its operands and writing its result."""
    d = graph.node(n)
    if d["op"] in VIEW_OPS or d["op"] in ("input", "const") or graph.nbytes(n) == 0:
        return 0, 0   # a view, or an empty result: nothing launched
    return 1, graph.nbytes(n) + sum(graph.nbytes(a) for a in graph.args(n))


def _scalars(graph, units):
    """0-d values computed by one elementwise op from 0-d operands (an optimizer's bias corrections,
    a learning rate cast): a kernel that reads one computes it itself, from its operands, instead
    of a launch of its own producing a 0-d device array."""
    ops, outputs, out = cuda_kernels.device_ops(), set(graph.outputs), set()
    for u in units:
        d = graph.node(u.id)
        if u.kind != "group" and d["op"] in ops and d["shape"] == () and u.id not in outputs and \
                all(graph.node(a)["shape"] == () for a in graph.args(u.id)):
            out.add(u.id)
    return out


def _inlined(graph, members, scalars):
    """The scalars a group reads, directly or through each other, in an order that computes them."""
    inside, order = set(members), []

    def visit(n):
        if n in scalars and n not in inside:
            inside.add(n)
            for a in graph.args(n):
                visit(a)
            order.append(n)
    for m in members:
        for a in graph.args(m):
            visit(a)
    return order


def _lower_groups(graph, units, plan, checks=0):
    """Each group's CudaKernel (or the reason it has none), and the scalars still needed on the host.
    With `checks` index checks in the program, a kernel that updates a state in place reads their record."""
    key, outputs, scalars = storage_key(graph, plan), set(graph.outputs), _scalars(graph, units)
    kernels, computed = {}, {}
    for u in units:
        if u.kind != "group":
            continue
        kept = [m for m in u.members if stored(graph, u, m, outputs)]
        where = safe_where(graph.node(u.members[0])["where"])
        extra = _inlined(graph, u.members, scalars)
        guard = checks if any(plan.storage.get(m, ("",))[0] == "input" for m in kept) else 0
        kern, why = cuda_kernels.lower(graph, extra + list(u.members), u.rows, kept, key, where, u.id, guard) \
            if extra else (None, None)
        if kern is None:
            extra = []
            kern, why = cuda_kernels.lower(graph, u.members, u.rows, kept, key, where, u.id, guard)
        kernels[u.id] = (kern, why, kept, where, extra + list(u.members))
        if kern is not None:
            computed[u.id] = set(extra) | set(u.members)
    # a scalar stays on the host while some user of it does not compute it itself
    needed, users = set(), {}
    for n in graph.op_nodes():
        for a in graph.args(n):
            users.setdefault(a, set()).add(n)
    inside = {m: gid for gid, ms in computed.items() for m in ms}
    for u in reversed(units):
        if u.kind == "group" or u.id not in scalars:
            continue
        for c in users.get(u.id, ()):
            if (c in needed) if c in scalars else (c not in inside or u.id not in computed[inside[c]]):
                needed.add(u.id)
                break
    return kernels, scalars - needed


def generate(graph, units, plan):
    """(kernels.cu, host.py, [(name, source)] of its kernels, figures of a call)."""
    host = macros("cuda/host_statements.j2")
    checks = _checks(graph, units)
    kernels_of, skip = _lower_groups(graph, units, plan, len(checks))
    kernel_srcs, unit_ctx, kernel_names, kernel_ops, partials = [], [], [], set(), []
    figures = {"launches": 0, "global_bytes": 0, "cuda_kernels": {}, "host_groups": {},
               "scalars_in_kernels": len(skip)}
    for u in units:
        if u.kind != "group" and u.id in skip:
            continue   # every kernel that reads it computes it
        if u.kind == "group":
            kern, why, kept, where, members = kernels_of[u.id]
            if kern is not None:
                partials += kern.partials
                unit_ctx.append(_kernel_unit(host, graph, plan, members, kern, kept, where))
                figures["launches"] += kern.launches
                figures["global_bytes"] += kern.global_bytes
                figures["cuda_kernels"][kern.name] = {"launches": kern.launches, "global_bytes": kern.global_bytes,
                                                      "grid": kern.grid, "block": kern.block}
                continue
            figures["host_groups"][f"g{u.id}"] = why
            for m in u.members:  # does not fit a kernel: op by op on the device
                unit_ctx.append(_op_ctx(host, graph, plan, m, kernel_ops, force_alloc=True))
                _count(figures, graph, unit_ctx[-1], m)
        elif u.id in checks:
            ck = checks[u.id]
            unit_ctx.append(_check_ctx(host, graph, plan, u.id, ck))
            partials.append((f"{ck.name}_ticket", 1, "int32"))
            figures["launches"] += 1
            figures["global_bytes"] += graph.nbytes(graph.args(u.id)[0])
        else:
            unit_ctx.append(_op_ctx(host, graph, plan, u.id, kernel_ops, guarded=bool(checks)))
            _count(figures, graph, unit_ctx[-1], u.id)
    if checks:   # the host module raises a failed check's error after the call, as eager raises it
        kernel_ops.add("check_index")
    unit_ctx, saved = _batched(unit_ctx)
    figures["launches"] -= saved
    for c in unit_ctx:
        if c["kind"] == "kernel":
            for name, source in c.get("sources") or ([(c["kern"].name, c["kern"].source)] if c.get("kern") else []):
                kernel_names.append(name)
                kernel_srcs.append({"source": source})
    # once warm, the runtime replays the whole call as one CUDA graph (GRADC_CUDA_GRAPHS=0: never)
    figures["launches_when_captured"] = int(figures["launches"] > 0)
    _dels(graph, plan, units, unit_ctx)
    table_consts, fill_consts, range_consts, buffers, pooled = storage(graph, plan)
    ghash = graph.hash()[:16]
    kernels_src = render("cuda/kernels.cu.j2", version=__version__, graph_hash=ghash, kernels=kernel_srcs)
    host_src = render("cuda/host.py.j2", version=__version__, graph_hash=ghash, kernel_ops=sorted(kernel_ops),
                      symbols=graph.symbols(), kernel_names=kernel_names, table_consts=table_consts,
                      fill_consts=fill_consts, range_consts=range_consts, buffers=buffers,
                      pooled=pooled, partials=partials, params=[name_of(n) for n in graph.inputs], units=unit_ctx,
                      checks=sorted(checks.values(), key=lambda c: c.slot),
                      writes_back=any(c.get("epilogue") for c in unit_ctx),
                      outputs=[name_of(o) for o in graph.outputs])
    kernels = [(name, src["source"]) for name, src in zip(kernel_names, kernel_srcs)]
    return kernels_src, host_src, kernels, figures


def _count(figures, graph, ctx, n):
    launches, nbytes = _host_figures(graph, n)
    launches += "[...] = " in ctx["code"]   # the result copied into its planned buffer
    figures["launches"] += launches
    figures["global_bytes"] += nbytes


def _storage(host, graph, plan, n):
    d, st = graph.node(n), plan.storage.get(n, ("fresh",))
    if st[0] == "fresh":
        return [host.alloc(name_of(n), d["shape"], d["dtype"])]
    if st[0] == "input":
        return [host.alias(name_of(n), name_of(graph.inputs[st[1]]))]
    return []


def _op_ctx(host, graph, plan, n, kernel_ops, force_alloc=False, guarded=False):
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
        # a state written in a program with index checks stays as it was when one failed
        into = host.assign_into_checked if guarded and st[0] == "input" else host.assign_into
        code = into(name_of(n), f"t{n}")
    else:
        prologue, code = [], host.assign(name_of(n), run(*args, **d["attrs"]))
    kernel_ops.update(kernel_refs(code, *prologue))
    return {"kind": "op", "prologue": prologue, "code": code, "where": where, "members": [n]}


# host ops whose eager kernels check their indices themselves: gather reads their range from the
# device; scatter_add's NumPy path (the host check) raises on a bad index where CuPy's wraps it
SELF_CHECKING = ("gather", "scatter_add")


def _read_by_self_checking(graph, n):
    """Whether value n reaches (directly or through views) an op that checks indices on the host: that
    op would raise its own error first, so the check stays on the host, synchronous, as eager runs it."""
    todo, seen = [n], set()
    while todo:
        v = todo.pop()
        for w in graph.users(v):
            op = graph.node(w)["op"]
            if op in SELF_CHECKING:
                return True
            if op in VIEW_OPS and w not in seen:
                seen.add(w)
                todo.append(w)
    return False


def _checks(graph, units):
    """{node: CheckKernel} of the index checks that run on the device, numbered in schedule order."""
    out = {}
    for u in units:
        if u.kind == "op" and graph.node(u.id)["op"] == "check_index" and not _read_by_self_checking(graph, u.id):
            ck = cuda_kernels.check_kernel(graph, u.id, len(out), safe_where(graph.node(u.id)["where"]))
            if ck is not None:
                out[u.id] = ck
    return out


def _check_ctx(host, graph, plan, n, ck):
    """check_index as a kernel launch: its result is its operand (as eagerly), the check's record is
    read after the call."""
    src, st = graph.args(n)[0], plan.storage.get(n)
    prologue = [host.alias(name_of(n), name_of(src))] if st is None else \
        _storage(host, graph, plan, n) + [host.assign_into(name_of(n), name_of(src))]
    arg = name_of(src)
    if not _planned(graph, plan, src):
        prologue.append(host.contiguous(f"c{src}", arg))
        arg = f"c{src}"
    return {"kind": "kernel", "launches": [(ck.name, ck.grid, ck.block, [arg, "gradc_checks", f"{ck.name}_ticket"])],
            "prologue": prologue, "epilogue": [], "where": safe_where(graph.node(n)["where"]), "members": [n],
            "sources": [(ck.name, ck.source)]}


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
