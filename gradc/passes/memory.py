"""Memory planning over the scheduled units.

Liveness analysis gives each value the span of units from its producer to its last reader (views
extend the life of what they look at). Values that units write with `out=` get storage: program
outputs are freshly allocated on every call (so a later call never overwrites what a caller
holds); everything else gets a buffer from a pool, reused by size and dtype once its value is
dead, and allocated once per program so that calls reuse it. A unit may write its result over an
operand that dies at that unit (in-place), including a state tensor the program updates. A state
whose new value leaves as a reshape of what a unit wrote (the rows pass works on a rank >= 3
state as rows) is matched by that storage root: the unit writes the rows over the state's memory."""
from math import prod

from ..ops import OPS
from ..lowered_sizes import size_key
from .fusion import reads_rows
from .liveness import by_storage, last_uses

VIEW_OPS = ("reshape", "permute", "expand", "slice")
OUT_OPS = ("matmul", "im2col", "col2im")  # single ops lowered with out= (besides groups)
ALIAS_OPS = ("check_index",)  # ops whose result is their operand's very array: they share its storage


class Plan:
    """What plan_memory decides; the backends and the Program read it, nothing else recomputes it."""

    def __init__(self):
        self.storage = {}      # value -> ("pool", buffer index) | ("fresh",) | ("input", slot)
        self.buffers = []      # pool buffers: (nbytes, dtype name)
        self.root = {}         # value -> value whose storage it views
        self.inplace_state = {}  # output position -> input slot written in place
        self.last_use = {}     # value -> index of the last unit that reads it (liveness over the units)

    def nbytes(self):
        return sum(n for n, _ in self.buffers)

    def copy_out(self, graph):
        """Output positions whose array must be copied before it is handed out: those that share
        storage with a pool buffer, an input or a constant (a later call would overwrite them), or
        with an earlier output: values that eager mode computes apart (two parameters' moments that
        common-subexpression elimination merged) must not become one array."""
        out, handed = set(), set()
        for i, o in enumerate(graph.outputs):
            root = self.root[o]
            st = self.storage.get(root)
            if (st is not None and st[0] in ("pool", "input")) or graph.node(root)["op"] in ("input", "const") \
                    or root in handed:
                if i not in self.inplace_state:
                    out.add(i)
            handed.add(root)
        return out

    def peak_bytes(self, graph, units):
        """Peak bytes of a call as planned: inputs, the persistent pool, and at the worst unit the
        freshly allocated outputs made so far plus the live values of ops that allocate."""
        base = sum(graph.nbytes(n) for n in graph.inputs) + self.nbytes()
        outs = set(graph.outputs)
        dying = {}
        for a, j in self.last_use.items():
            dying.setdefault(j, []).append(a)

        def allocates(m):  # a fresh array of its own (values inside a group live in block scratch)
            st = self.storage.get(m)
            return (st is not None and st[0] == "fresh") or \
                (st is None and self.root.get(m) == m and graph.node(m).get("group") is None
                 and graph.node(m)["op"] not in ("input", "const"))

        live, peak = 0, 0
        for i, u in enumerate(units):
            live += sum(graph.nbytes(m) for m in u.members if allocates(m))
            peak = max(peak, live)
            live -= sum(graph.nbytes(a) for a in dying.get(i, ()) if a not in outs and allocates(a))
        return base + peak


def stored(graph, unit, n, outputs):
    """Whether value n of `unit` needs planned storage: a group's values that leave the group (the
    rest live in block-sized scratch), or the result of an op lowered with out=."""
    if unit.kind == "group":  # (a view inside a group is copied out when it leaves)
        return n in outputs or any(graph.node(v).get("group") != unit.id for v in graph.users(n))
    return graph.node(n)["op"] in OUT_OPS


def plan_memory(graph, units, state_slots=None, *, reshaped_state=False):
    """Assign storage to every value a unit writes with out=. `state_slots` maps an output
    position to the input slot of the state tensor it updates (candidates for in-place).
    `reshaped_state`: a state output that is a reshape of the value a unit writes may be updated in
    place through that value (the backend aliases the state with the value's shape)."""
    plan = Plan()
    for n in graph.topological():
        d = graph.node(n)
        aliases = d["op"] in VIEW_OPS + ALIAS_OPS and "group" not in d
        plan.root[n] = plan.root[graph.args(n)[0]] if aliases else n
    # (views inside groups are materialised when they leave the group, so they are their own root)
    # last unit that reads each storage root (program outputs live to the end)
    plan.last_use = last_uses(graph, [u.members for u in units])
    last, end = by_storage(plan.last_use, plan.root), len(units)
    outputs = set(graph.outputs)
    for o in outputs:
        last[plan.root[o]] = end
    state_for = {}
    for pos, slot in (state_slots or {}).items():
        o = graph.outputs[pos]
        if reshaped_state and _reshape_of(graph, o, plan.root[o]):
            o = plan.root[o]
        state_for.setdefault(o, (pos, slot))

    free, owner = {}, {}  # (nbytes, dtype) -> [buffer ids]; buffer id -> value it holds
    for i, u in enumerate(units):
        for n in u.members:
            if not stored(graph, u, n, outputs):
                continue
            nbytes = graph.nbytes(n)
            key = (size_key(nbytes), graph.node(n)["dtype"])
            if n in state_for and _can_overwrite(graph, u, n, graph.inputs[state_for[n][1]], plan.root, last, i):
                pos, slot = state_for[n]
                plan.storage[n] = ("input", slot)
                plan.inplace_state[pos] = slot
            elif n in outputs:
                plan.storage[n] = ("fresh",)
            else:
                victim = _dying_operand(graph, u, n, plan, owner, last, i, key)
                if victim is not None:
                    b = plan.storage[victim][1]
                elif free.get(key):
                    b = free[key].pop()
                else:
                    b = len(plan.buffers)
                    plan.buffers.append((nbytes, key[1]))
                plan.storage[n] = ("pool", b)
                owner[b] = n
        for b, v in list(owner.items()):  # release what died at this unit
            if last.get(v, end) <= i:
                nbytes, dtype = plan.buffers[b]
                free.setdefault((size_key(nbytes), dtype), []).append(b)
                del owner[b]
    return plan


def _reshape_of(graph, v, root):
    """Whether v is `root` or a chain of reshapes of it (the same elements in the same order)."""
    while v != root:
        if graph.node(v)["op"] != "reshape":
            return False
        v = graph.args(v)[0]
    return True


def _reads_before_write(graph, unit, n, operand, root):
    """Writing n over `operand` is safe. A lone op must be elementwise over an operand of n's shape.
    In a group body every member that reads the operand's memory comes no later than n and reads it
    block by block, as the operand itself (of n's shape) or as a reshape of it made outside the
    group with n's shape (row r of that view is row r of n: the same elements of the memory)."""
    shape = tuple(graph.node(n)["shape"])
    same = tuple(graph.node(operand)["shape"]) == shape
    if unit.kind != "group":
        return same and OPS[graph.node(n)["op"]].elementwise
    if prod(shape) != prod(graph.node(operand)["shape"]):
        return False
    pos = unit.members.index(n)
    for k, m in enumerate(unit.members):
        for a in graph.args(m):
            if root.get(a, a) != operand:
                continue
            if a == operand:
                aligned = same and graph.node(m)["op"] not in VIEW_OPS
            else:
                aligned = tuple(graph.node(a)["shape"]) == shape and _reshape_of(graph, a, operand)
            if not aligned or k > pos or not reads_rows(graph, m, a):
                return False
    return True


def _can_overwrite(graph, unit, n, operand, root, last, i):
    if last.get(operand, -1) > i or operand in graph.outputs:
        return False
    if graph.node(n)["dtype"] != graph.node(operand)["dtype"]:
        return False
    return _reads_before_write(graph, unit, n, operand, root)


def _dying_operand(graph, unit, n, plan, owner, last, i, key):
    """An operand of the unit that dies here and whose pool buffer n can take over."""
    for m in unit.members:
        for a in graph.args(m):
            st = plan.storage.get(a)
            if st is None or st[0] != "pool" or owner.get(st[1]) != a or plan.root[a] != a:
                continue
            if (size_key(graph.nbytes(a)), graph.node(a)["dtype"]) == key and \
                    _can_overwrite(graph, unit, n, a, plan.root, last, i):
                return a
    return None
