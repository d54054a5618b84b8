"""What gradc.compile tells a person about a compilation: GRADC_DEBUG's headed sections on stderr,
and GRADC_DUMP's (or dump=) directory of generated files."""
import os
import sys

from .errors import ConfigError


DEBUG_LEVELS = {0: "nothing (the default)", 1: "each compilation: what, why, how long",
                2: "1, and the optimised graph", 3: "2, and the generated source", 4: "3, and the traced graph"}


def debug_level():
    """GRADC_DEBUG: 1 reports each compilation (what, why, how long), 2 adds the optimised graph,
    3 the generated source, 4 the traced graph before the passes. Unset or empty is 0; any other
    value raises ConfigError naming the accepted ones."""
    text = os.environ.get("GRADC_DEBUG", "").strip()
    if text == "":
        return 0
    if text.isdigit() and int(text) in DEBUG_LEVELS:
        return int(text)
    accepted = "; ".join(f"{k}: {v}" for k, v in DEBUG_LEVELS.items())
    raise ConfigError(f"GRADC_DEBUG={text!r} is not a debug level. It accepts {accepted}; "
                      "unset it (or set 0) for no debug output")


def _section(level, title):
    return f"==== gradc debug [level {level}] {title} ===="


def report(name, reason, prog, traced_text=None):
    """What GRADC_DEBUG asks to be told about one compilation, on stderr: one headed section per
    part, each header naming the level that turns it on."""
    lvl = debug_level()
    if lvl <= 0:
        return
    s = prog.stats
    out = [_section(1, f"compiled {name}"),
           f"gradc: compiled {name} ({reason}): {s.get('traced_nodes')} traced -> {s.get('nodes')} nodes, "
           f"{s.get('kernels')} kernels ({prog.backend}), trace {s.get('trace_seconds')} s, "
           f"total {s.get('compile_seconds')} s"]
    if lvl >= 4 and traced_text:
        out += [_section(4, f"traced graph of {name}, before the passes"), traced_text.rstrip("\n")]
    parts = [("", prog)] + ([("backward ", prog.backward[0])] if prog.backward is not None else [])
    if lvl >= 2:
        for label, p in parts:
            out += [_section(2, f"optimised {label}graph of {name}"), p.ir.to_text().rstrip("\n")]
    if lvl >= 3:
        for label, p in parts:
            for fname, src in p.own_source.items():
                out += [_section(3, f"generated {label}source of {name}: {fname}"), src.rstrip("\n")]
    print("\n".join(out), file=sys.stderr)


def maybe_dump(prog, option, name, n):
    target = option or os.environ.get("GRADC_DUMP")
    if target:
        safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(name))
        prog.dump(os.path.join(target, f"{safe}_{n}"))
