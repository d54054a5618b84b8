"""prog.stats: what the passes and code generation measured, as a dict (JSON as it is) that prints
as a table: the figures first, then one row per kernel with the bytes it moves per call, then the
backward program's stats the same way."""
import json

from . import profile

_TABLE_KEYS = ("kernels_bytes", "backward", "c_kernels", "numpy_groups")


def _size(n):
    if n >= 2 ** 20:
        return f"{n / 2 ** 20:.2f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} B"


def _value(key, v):
    if isinstance(v, int) and not isinstance(v, bool) and "bytes" in key:
        return f"{_size(v)} ({v})" if v >= 1024 else _size(v)
    if isinstance(v, dict):
        return ", ".join(f"{k}={x}" for k, x in sorted(v.items())) or "-"
    return v if isinstance(v, str) else json.dumps(v, default=str)


def kernel_table(rows, ops_width=48):
    """The per-kernel rows as aligned text: name, kind, bytes read, written, total, model line, ops."""
    head = ("kernel", "runs as", "read", "written", "moved", "model line", "ops")
    body = []
    for r in rows:
        ops = r["ops"] if len(r["ops"]) <= ops_width else r["ops"][:ops_width - 3] + "..."
        body.append((r["name"], r["kind"], _size(r["bytes_read"]), _size(r["bytes_written"]),
                     _size(r["bytes_read"] + r["bytes_written"]), r["where"] or "-", ops))
    total_r, total_w = sum(r["bytes_read"] for r in rows), sum(r["bytes_written"] for r in rows)
    body.append(("total", f"{len(rows)} units", _size(total_r), _size(total_w), _size(total_r + total_w), "", ""))
    widths = [max(len(x[i]) for x in (head, *body)) for i in range(len(head))]
    right = {2, 3, 4}
    fmt = lambda row: "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
    return "\n".join([fmt(head).rstrip(), "  ".join("-" * w for w in widths)] + [fmt(b).rstrip() for b in body])


class Stats(dict):
    """A Program's statistics: a plain dict (`stats["nodes"]`, `json.dumps(stats)`) whose str() and
    repr() are a readable table. Each one is made known to the profiler (GRADC_PROFILE), which
    divides the bytes its kernels move by their measured time."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        profile.register(self)

    def table(self, title="program"):
        figures = {k: v for k, v in self.items() if k not in _TABLE_KEYS}
        width = max((len(k) for k in figures), default=0)
        lines = [f"{title} ({self.get('backend', '?')} backend)"]
        lines += [f"  {k.ljust(width)}  {_value(k, v)}" for k, v in sorted(figures.items())]
        rows = self.get("kernels_bytes")
        if rows:
            lines += ["", f"{title} kernels, bytes per call:"]
            lines += ["  " + line for line in kernel_table(rows).splitlines()]
        declined = self.get("numpy_groups")
        if declined:
            lines += ["", "fused groups the C backend runs through NumPy:"]
            lines += [f"  {g}: {why}" for g, why in sorted(declined.items())]
        back = self.get("backward")
        if isinstance(back, dict):
            lines += ["", (back if isinstance(back, Stats) else Stats(back)).table("backward")]
        return "\n".join(lines)

    __str__ = table

    def __repr__(self):
        return self.table()
