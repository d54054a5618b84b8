"""Debugging compiled code: numbered debug output, the divergence finder, and the kernels of a
program one file each (`kernel_files`, what `gradc dump --kernels` writes).

GRADC_DEBUG=1 reports each compilation (what, why, how long), 2 adds the optimised graph, 3 the
generated source, 4 the traced graph before the passes (`level()` reads it; the compiler prints
the reports). `compare` runs a function eagerly and compiled side by side and names the first
graph node whose values differ."""
import ast
import re
import textwrap

import numpy as np

from . import dtypes as D
from .compiler import CompiledFunction, compile  # noqa: F401
from .reporting import debug_level as level, report  # noqa: F401  (level, report: API)
from .lower import Spec, autodiff, lower
from .ops import OPS
from .pytree import flatten
from .runtime.wiring import resolve


def evaluate(graph, inputs):
    """Every node's value, computed op by op with the eager kernels (eager mode's exact results)."""
    values = dict(zip(graph.inputs, inputs))
    for nid in graph.topological():
        d = graph.node(nid)
        if d["op"] == "input":
            continue
        if d["op"] == "const":
            values[nid] = graph.const_value(nid)
            continue
        out = OPS[d["op"]].eager(np, *[values[a] for a in graph.args(nid)], **d["attrs"])
        values[nid] = np.asarray(out)
    return values


class Divergence:
    """Result of `compare`: the first node whose compiled value differs from eager, if any."""

    def __init__(self, first, checked, worst):
        self.first = first        # dict(node, op, where, max_abs_error, shape) or None
        self.checked = checked    # number of nodes compared
        self.worst = worst        # largest error seen, with its node

    @property
    def ok(self):
        return self.first is None

    def __bool__(self):
        return not self.ok

    def __str__(self):
        if self.first is None:
            where = f"largest difference {self.worst[0]:.3g} at %{self.worst[1]}" if self.worst[1] is not None \
                else "bit-identical"
            return f"compiled matches eager on all {self.checked} compared nodes ({where})"
        f = self.first
        return (f"first divergence at %{f['node']} = {f['op']} {f['shape']} from {f['where'] or '?'}: "
                f"max |compiled - eager| = {f['max_abs_error']:.3g} (tolerance rtol={f['rtol']}, atol={f['atol']})")

    __repr__ = __str__


def compare(fn, *args, rtol=1e-5, atol=1e-6, **kwargs):
    """Run `fn(*args)` eagerly (op by op) and compiled (all passes, generated code) on the same
    inputs, without changing any state, and report the first node that differs beyond tolerance."""
    cf = fn if isinstance(fn, CompiledFunction) else compile(fn)
    traced, spec = cf.trace(*args, **kwargs)
    if spec.gradients is not None:  # outputs that need grad: compare their backward too
        autodiff(traced, spec.gradients)
    flat, _ = flatten((args, kwargs))
    inputs = [t._data for t in resolve(spec.bindings, flat)]
    for nid in traced.inputs[len(inputs):]:  # cotangents of outputs that need grad: use ones
        d = traced.node(nid)
        inputs.append(np.ones(d["shape"], dtype=D.ALL[d["dtype"]].np))
    reference = evaluate(traced, inputs)

    order = [n for n in traced.topological() if traced.node(n)["op"] not in ("input", "const")]
    probe = traced.copy()
    probe.outputs = list(order)
    values = lower(probe, Spec(fuse=bool(cf.fuse))).execute(inputs)
    worst, first = (0.0, None), None
    for nid, got in zip(order, values):
        want = reference[nid]
        got = np.asarray(got)
        if D.ALL[traced.node(nid)["dtype"]].is_floating_point:
            err = np.abs(got.astype(np.float64) - want.astype(np.float64))
            bad = ~(err <= atol + rtol * np.abs(want.astype(np.float64))) & ~(np.isnan(got) & np.isnan(want))
            m = float(np.nanmax(err)) if err.size else 0.0
        else:
            bad = got != want
            m = float(bad.sum())
        if m > worst[0]:
            worst = (m, nid)
        if bad.any() and first is None:
            d = traced.node(nid)
            first = {"node": nid, "op": d["op"], "where": d["where"], "max_abs_error": m, "shape": d["shape"],
                     "rtol": rtol, "atol": atol}
    return Divergence(first, len(order), worst)


# ---------------------------------------------------------------------------------------------- kernels
_C_KERNEL = re.compile(r"^/\* group g(\d+):", re.M)


def _c_kernels(c_src):
    """[(name, text)] of each kernel in a C translation unit: its header comment through its body."""
    starts = [m.start() for m in _C_KERNEL.finditer(c_src)]
    out = []
    for i, s in enumerate(starts):
        text = c_src[s:starts[i + 1] if i + 1 < len(starts) else len(c_src)].rstrip() + "\n"
        out.append((f"g{_C_KERNEL.match(c_src, s).group(1)}", text))
    return out


def _group_functions(py_src):
    """[(name, text)] of the functions a generated module defines per fused group (g<id>, nested in
    make), each with the comment that names its ops and the scratch it binds."""
    tree = ast.parse(py_src)
    lines = py_src.splitlines()
    make = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "make"), None)
    out = []
    for node in (make.body if make is not None else ()):
        if isinstance(node, ast.FunctionDef) and re.fullmatch(r"g\d+", node.name):
            first = k = node.lineno - 2
            while k >= 0 and not lines[k].strip():
                k -= 1
            while k >= 0 and lines[k].strip() and not lines[k].lstrip().startswith("# group"):
                k -= 1   # the scratch names bound between the group's comment and its function
            if k >= 0 and lines[k].lstrip().startswith(f"# group {node.name}:"):
                first = k
            else:
                first += 1
            out.append((node.name, textwrap.dedent("\n".join(lines[first:node.end_lineno])) + "\n"))
    return out


def kernel_files(prog, prefix=""):
    """What `gradc dump --kernels` writes: [(file name, text)] with one file per kernel of `prog`
    (and of its backward program), and a note for a program without separate kernels. C kernels
    carry the model's file:line on each computed value; a fused group the C backend runs through
    NumPy, and every fused group of the NumPy backend, is its group function of the host module."""
    src = prog.source
    if prog.backend == "cuda":
        files = [(f"{prefix}{_safe(name)}" + ("" if "." in name else ".cu"), text) for name, text in prog.kernels]
    else:
        files = [(f"{prefix}{name}.c", text) for name, text in _c_kernels(src.get("program.c", ""))]
        module = src.get("host.py") or src.get("program.py") or ""
        files += [(f"{prefix}{name}.py", text) for name, text in _group_functions(module)]
    notes = []
    if not files:
        notes.append(f"the {prog.backend} backend has no separate kernels for this {prefix.rstrip('_') or 'program'}"
                     f" (no fused groups: every op runs as one NumPy call in the module that --source shows)")
    if prog.backward is not None and not prefix:
        more, more_notes = kernel_files(prog.backward[0], "backward_")
        files += more
        notes += more_notes
    return files, notes


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
