"""The `gradc` command: compile a model or training step into an artifact, dump what the compiler
made of it, run an artifact on .npy inputs, benchmark eager against compiled, and describe the
installation. `python -m gradc` is the same command."""
import argparse
import json
import os
import re
import sys
from pathlib import Path

DEFAULT_FACTORY = "gradc_main"
BACKENDS = ("auto", "numpy", "c", "cuda")

FACTORY_HELP = f"""\
SCRIPT.py[:FACTORY] names a Python file and a function in it (default: {DEFAULT_FACTORY}) that takes
no arguments and returns (fn_or_module, example_args): the function or nn.Module to compile and a
tuple of example arguments. The script runs with __name__ != "__main__", so its own main block does
not run. A training step that creates optimizer state on its first call (SGD momentum, Adam) must
have run once before it is returned, so that the state exists. Example:

    import gradc
    from gradc import nn

    def {DEFAULT_FACTORY}():
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        return model, (gradc.randn(16, 4),)
"""


class CLIError(Exception):
    """A problem with what the user asked for: printed without a traceback."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------- helpers
def split_target(target):
    """'path/to/x.py:factory' -> (Path, factory); the factory defaults to gradc_main."""
    path, sep, name = target.rpartition(":")
    if sep and path.endswith(".py") and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return Path(path), name
    return Path(target), DEFAULT_FACTORY


def is_script(target):
    return str(split_target(target)[0]).endswith(".py")


def load_factory(target):
    """Run the script and call its factory: returns (fn, example_args tuple, label)."""
    import runpy
    import gradc
    path, name = split_target(target)
    if not path.is_file():
        raise CLIError(f"{path}: no such script")
    sys.path.insert(0, str(path.resolve().parent))
    try:
        namespace = runpy.run_path(str(path), run_name="__gradc_script__")
    finally:
        sys.path.pop(0)
    factory = namespace.get(name)
    if not callable(factory):
        raise CLIError(f"{path} defines no function {name!r}. Define `def {name}(): return model, (example_input,)` "
                       f"or name the factory with {path}:FACTORY (see `gradc compile --help`)")
    result = factory()
    if not (isinstance(result, (tuple, list)) and len(result) == 2 and callable(result[0])):
        raise CLIError(f"{path}:{name}() must return (fn_or_module, example_args), got {type(result).__name__}")
    fn, example = result
    if isinstance(example, gradc.Tensor):
        example = (example,)
    if not isinstance(example, (tuple, list)):
        raise CLIError(f"{path}:{name}(): example_args must be a tuple of arguments, got {type(example).__name__}")
    return fn, tuple(example), f"{path.name}:{name}"


def _spec(d):
    shape = "?" if d.get("shape") is None else list(d["shape"])
    return f"{d.get('dtype') or '?'}{shape}"


def _mib(n):
    return f"{n / 2 ** 20:.2f} MiB" if n >= 2 ** 20 else f"{n / 1024:.1f} KiB"


def confined(root, name):
    """root/name, for a file name that comes from an artifact or the compiler: a name that is absolute,
    climbs out with "..", or leads through a symbolic link out of root is refused."""
    rel = Path(name)
    if not name or "\0" in name or rel.is_absolute() or any(p in ("..", ".") for p in rel.parts) \
            or rel.as_posix() != name:
        raise CLIError(f"refusing to write {name!r}: output files stay inside {root}")
    target = root / rel
    if not target.parent.resolve().is_relative_to(root.resolve()):
        raise CLIError(f"refusing to write {target}: a symbolic link inside {root} leads out of it")
    return target


def _program(target, backend="auto", amp=None):
    """A Program from an artifact, or traced (not run) from a script's factory."""
    import gradc
    if is_script(target):
        from .artifacts import trace
        fn, example, _ = load_factory(target)
        return trace(fn, *example, backend=backend, amp=amp)   # the program `gradc compile` would save
    return gradc.load(target)


# ---------------------------------------------------------------------------------------------- compile
def cmd_compile(args):
    import gradc
    fn, example, label = load_factory(args.script)
    amp = None if args.amp == "none" else args.amp
    prog = gradc.export(fn, *example, backend=args.backend, amp=amp)
    path = prog.save(args.output)
    info = prog.artifact_info
    state = prog.state_dict()
    nbytes = sum(t.numel() * t.dtype.itemsize for t in state.values())
    s = prog.stats
    print(f"compiled {label} -> {path} ({_mib(path.stat().st_size)})")
    print("  inputs:  " + (", ".join(f"{d['name']}: {_spec(d)}" for d in info["inputs"]) or "none"))
    print(f"  state:   {len(state)} tensors, {_mib(nbytes)}")
    print(f"  program: {prog.backend}, {s.get('nodes')} nodes, {s.get('kernels')} kernels, "
          f"{s.get('fused_groups')} fused groups")
    return 0


# ---------------------------------------------------------------------------------------------- dump
def _stats_text(stats):
    from .runtime.stats import Stats
    return str(stats if isinstance(stats, Stats) else Stats(stats))


def _dump_parts(prog, parts, fmt):
    """[(file name, text)] for the chosen parts."""
    out = []
    if "graph" in parts:
        ir = prog.ir
        out.append({"text": ("graph.txt", ir.to_text()), "dot": ("graph.dot", ir.to_dot()),
                    "json": ("graph.json", ir.to_json(indent=1) + "\n")}[fmt])
    if "source" in parts:
        out += sorted(prog.own_source.items())
        if prog.backward is not None:
            out += [(f"backward_{k}", v) for k, v in sorted(prog.backward[0].source.items())]
    if "kernels" in parts:
        from .debug import kernel_files
        files, notes = kernel_files(prog)
        out += [(f"kernels/{name}", text) for name, text in files]
        for note in notes:
            print(f"gradc dump: {note}", file=sys.stderr)
    if "stats" in parts:
        stats = dict(prog.stats)
        out.append(("stats.json", json.dumps(stats, indent=2, sort_keys=True, default=str) + "\n") if fmt == "json"
                   else ("stats.txt", _stats_text(stats) + "\n"))
    return out


def cmd_dump(args):
    amp = None if args.amp == "none" else args.amp
    prog = _program(args.target, args.backend, amp)
    parts = [p for p in ("graph", "source", "kernels", "stats") if getattr(args, p)] or ["graph", "source", "stats"]
    files = _dump_parts(prog, parts, args.format)
    if args.output:
        from .runtime.cache import atomic_write
        root = Path(args.output)
        for name, text in files:
            atomic_write(confined(root, name), text)   # replaces a file, never writes through a link
            print(root / name)
        return 0
    for name, text in files:
        if len(files) > 1 or name.startswith("kernels/"):   # a kernel is always named
            sys.stdout.write(f"# ==== {name} ====\n")
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


# ---------------------------------------------------------------------------------------------- run
def _read_inputs(specs, pairs):
    import numpy as np
    import gradc
    given = {}
    for pair in pairs:
        name, sep, file = pair.partition("=")
        if not sep:  # a bare FILE: the next input not given yet
            free = [i for i in range(len(specs)) if i not in given]
            if not free:
                raise CLIError(f"--input {pair}: every input is already given", 2)
            name, file, index = str(free[0]), pair, free[0]
        elif name.isdigit():
            index = int(name)
        else:
            index = next((i for i, s in enumerate(specs) if s["name"] == name), None)
        if index is None or not 0 <= index < len(specs):
            names = ", ".join(f"{i}:{s['name']}" for i, s in enumerate(specs))
            raise CLIError(f"--input {pair}: no input named {name!r}; the program's inputs are {names}", 2)
        if index in given:
            raise CLIError(f"--input {pair}: input {specs[index]['name']} is given twice", 2)
        try:
            arr = np.load(file, allow_pickle=False)
        except FileNotFoundError:
            raise CLIError(f"--input {pair}: {file}: no such file", 2) from None
        except (ValueError, OSError) as e:
            raise CLIError(f"--input {pair}: {file} is not a readable .npy file ({e})", 2) from None
        if not isinstance(arr, np.ndarray):
            raise CLIError(f"--input {pair}: {file} holds several arrays (an .npz); save one array with np.save", 2)
        spec = specs[index]
        want = _np_dtype(spec["dtype"]) if spec["dtype"] else arr.dtype
        if arr.dtype != want:
            if not np.can_cast(arr.dtype, want, "same_kind"):
                raise CLIError(f"input {spec['name']}: {file} holds {arr.dtype}, the program takes {spec['dtype']}", 2)
            arr = arr.astype(want)
        if spec["shape"] is not None and list(arr.shape) != list(spec["shape"]):
            raise CLIError(f"input {spec['name']}: {file} has shape {list(arr.shape)}, the program takes "
                           f"{list(spec['shape'])} (artifacts are compiled for fixed shapes)", 2)
        given[index] = gradc.from_numpy(np.ascontiguousarray(arr))
    missing = [f"{s['name']} ({_spec(s)})" for i, s in enumerate(specs) if i not in given]
    if missing:
        raise CLIError(f"missing inputs: {', '.join(missing)}; pass --input NAME=FILE.npy for each", 2)
    return [given[i] for i in range(len(specs))]


def _np_dtype(name):
    from . import dtypes as D
    return D.ALL[name].np


def cmd_run(args):
    import numpy as np
    import gradc
    prog = gradc.load(args.artifact)
    specs = prog.artifact_info["inputs"]
    tensors = _read_inputs(specs, args.input or [])
    if prog.backend == "cuda":
        tensors = [t.cuda() for t in tensors]
    prog.check_args(tensors)
    outs = prog.call_flat(tensors)
    names = [o["name"] for o in prog.artifact_info["manifest"]["outputs"]]
    arrays = [np.asarray(t.cpu().numpy() if hasattr(t, "cpu") else t.numpy()) for t in outs]
    if args.output:
        import io
        from .runtime.cache import atomic_write
        root = Path(args.output)
        root.mkdir(parents=True, exist_ok=True)
        targets = [confined(root, f"{name}.npy") for name in names]   # all checked before anything is written
        for target, a in zip(targets, arrays):
            buf = io.BytesIO()
            np.save(buf, a, allow_pickle=False)
            atomic_write(target, buf.getvalue())   # replaces a file, never writes through a link
            print(f"{target}  {a.dtype}{list(a.shape)}")
        return 0
    rows = [("output", "dtype", "shape", "min", "max", "mean", "first values")]
    for name, a in zip(names, arrays):
        flat = a.reshape(-1)
        num = flat.astype(np.float64) if flat.size else flat
        stats = [f"{num.min():.6g}", f"{num.max():.6g}", f"{num.mean():.6g}"] if flat.size else ["-"] * 3
        first = np.array2string(flat[:4], precision=4, separator=", ") + (" ..." if flat.size > 4 else "")
        rows.append((name, str(a.dtype), str(list(a.shape)), *stats, first))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0


# ---------------------------------------------------------------------------------------------- bench
def _peers(text):
    if text in ("none", ""):
        return set()
    if text == "all":
        return set(bench_peers())
    chosen = {p.strip() for p in text.split(",") if p.strip()}
    unknown = chosen - set(bench_peers())
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peer(s) {', '.join(sorted(unknown))}; choose from "
                                         f"{', '.join(bench_peers())}, 'all' or 'none'")
    return chosen


def bench_peers():
    from .bench import PEERS
    return PEERS


def cmd_bench(args):
    from . import bench
    from .workloads import WORKLOADS
    rounds, repeat, warmup = (1, 3, 1) if args.quick else (args.rounds, 10, 3)
    if args.repeat is not None:
        repeat = args.repeat
    torch = None
    if args.peers and not args.script:
        try:
            import torch
        except ImportError:
            print("gradc bench: PyTorch is not installed; comparing gradc eager and compiled only", file=sys.stderr)
    jobs = []  # (label, builder of candidates, calls per repeat)
    if args.script:
        fn_e, args_e, label = load_factory(args.script)
        fn_c, args_c, _ = load_factory(args.script)
        jobs.append((label, lambda: bench.gradc_candidates(fn_e, args_e, fn_c, args_c, args.backend), 1))
    else:
        keys = [k.strip().upper() for k in args.workloads.split(",") if k.strip()]
        for k in keys:
            if k not in WORKLOADS:
                raise CLIError(f"unknown workload {k!r}; choose from {', '.join(WORKLOADS)}", 2)
        for k in keys:
            w = WORKLOADS[k]

            def make(w=w):
                fe, ae = w.build(args.scale)
                fc, ac = w.build(args.scale)
                return (bench.gradc_candidates(fe, ae, fc, ac, args.backend)
                        + bench.torch_candidates(torch, lambda: w.build_torch(torch, args.scale), args.peers))
            jobs.append((w.label, make, w.calls_per_repeat))
    n_impl = 2 + (len(args.peers) if torch is not None else 0)
    total = sum(n_impl * bench.calls_per_candidate(rounds, repeat * per, warmup) for _, _, per in jobs)
    progress = bench.Progress(total, enabled=not args.no_progress)
    rows, profiles = [], []
    try:
        for label, make, per in jobs:
            progress.set(f"{label}: building")
            candidates = make()
            rows += bench.measure(label, candidates, rounds, repeat * per, warmup, progress)
            if args.profile:
                progress.set(f"{label}: profiling the compiled program")
                profiles += bench.profile_compiled(label, candidates, repeat * per)
    finally:
        progress.close()
    env = bench.environment(torch)
    print(f"gradc {env['gradc']}, numpy {env['numpy']}" + (f", torch {env['torch']} ({env['torch_threads']} threads)"
                                                           if torch is not None else "")
          + f", python {env['python']}, {env['cpus']} CPUs; {rounds} round(s) x {repeat} calls"
          + ("" if args.scale == "full" else f", scale {args.scale}"))
    print("speed-up: gradc eager's median / this median (higher is faster); spread: max/min of the round medians; "
          "peak MiB: most\nmemory allocated during one steady-state call (tracemalloc; not PyTorch's allocator); "
          "traces: how often gradc\ntraced over all calls; overhead us: a compiled call's time outside its "
          "generated code (median of call minus\nprogram-entry run, in alternating pairs, ± its standard error); "
          "max rel diff: first-call outputs against gradc eager")
    print()
    print(bench.format_table(rows))
    shaky = bench.unreliable(rows)
    if shaky:
        names = ", ".join(f"{r['workload']} {r['impl']}" for r in shaky)
        print(f"\nunreliable: the spread of {names} is above "
              f"{bench.SPREAD_LIMIT} (marked !): the machine was busy or the calls vary; compare those figures "
              "only after a rerun with more --rounds on a quieter machine")
    for text in profiles:
        print()
        print(text)
    if args.json:
        bench.write_json(args.json, rows, {"rounds": rounds, "repeat": repeat, "warmup": warmup, "scale": args.scale,
                                           "peers": sorted(args.peers), "backend": args.backend,
                                           "spread_limit": bench.SPREAD_LIMIT}, torch)
        print(f"\nwrote {args.json}")
    return 0


# ---------------------------------------------------------------------------------------------- info, cache
def _version(dist):
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cmd_info(args):
    import platform
    import gradc
    from .runtime import cache
    from .codegen.templates import template_dir
    print(f"gradc     {gradc.__version__}  ({Path(gradc.__file__).parent})")
    print(f"python    {platform.python_version()}  ({sys.executable})")
    for dist in ("numpy", "jinja2", "networkx"):
        print(f"{dist:<9} {_version(dist) or 'not installed'}")
    from importlib import metadata
    cupy = sorted({d.metadata["Name"] for d in metadata.distributions() if (d.metadata["Name"] or "").lower()
                   .startswith("cupy")})
    print(f"cupy      {', '.join(f'{c} {_version(c)}' for c in cupy) if cupy else 'not installed'}")
    print(f"torch     {_version('torch') or 'not installed'}")
    gpus = gradc.cuda.device_count()
    if gpus:
        gpu = f"found: {gpus} CUDA device(s)"
    else:
        from .device import why_no_cuda
        gpu = f"not found ({why_no_cuda()})"
    print(f"GPU       {gpu}")
    print("backends  numpy (CPU): available; cuda: code generation available, running "
          + ("available" if gpus else "needs a GPU"))
    from .runtime import native
    print(f"c         {native.c_status()}; {native.get_num_threads()} threads")
    print(f"auto      {native.auto_status()}")
    n, size = cache.size()
    src = "GRADC_CACHE_DIR" if os.environ.get("GRADC_CACHE_DIR") else "default; set GRADC_CACHE_DIR to move it"
    print(f"cache     {cache.cache_dir()}  ({n} files, {_mib(size)}; {src})")
    print(f"templates {template_dir()}")
    return 0


def cmd_cache(args):
    from .runtime import cache
    if args.action == "clear":
        n, size = cache.clear()
        print(f"removed {n} gradc files ({_mib(size)}) from {cache.cache_dir()}; other files there were left alone")
    else:
        n, size = cache.size()
        print(f"{cache.cache_dir()}  ({n} files, {_mib(size)})")
    return 0


# ---------------------------------------------------------------------------------------------- parser
WORKLOAD_KEYS = ("W1", "W1C", "W2", "W3", "W4")
SPREAD_LIMIT = 1.3   # gradc.bench.SPREAD_LIMIT, named here without importing the workloads for every command
WORKLOAD_HELP = """\
  W1   mlp-train     MLP 784-512-512-10 (ReLU), batch 128, cross-entropy, SGD momentum 0.9; one step
  W1C  mlp-cosine    W1 with a cosine learning-rate schedule stepped every call (the lr is a program
                     input, so it traces once); compiled vs eager, traces counted
  W2   ln-gelu       layer_norm(gelu(x*w + b) + x) over (4096, 1024), sum; forward + backward
  W3   block-train   pre-LayerNorm transformer block (8x128x256, 4 heads, causal, GELU-tanh MLP 1024),
                     Adam; one step
  W4   mlp-infer-b1  W1's MLP, batch 1, no_grad inference; latency per call"""


def build_parser():
    from . import __version__
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="gradc", formatter_class=fmt, description=(
        "gradc: compile PyTorch-shaped models and training steps into NumPy, C or CUDA programs.\n\n"
        "  gradc compile model.py -o model.gradc     save an ahead-of-time artifact\n"
        "  gradc run model.gradc --input x=x.npy     run it without the model's code\n"
        "  gradc dump model.gradc --source           read what the compiler generated\n"
        "  gradc bench                               eager vs compiled on workloads W1-W4 and W1C\n"
        "  gradc info                                versions, backends, GPU, cache"))
    p.add_argument("--version", action="version", version=f"gradc {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    c = sub.add_parser("compile", formatter_class=fmt, help="trace a model or training step and save an artifact",
                       description="Trace FACTORY's function on its example arguments and save the optimised "
                                   "program, its state and its generated source as one artifact file.",
                       epilog=FACTORY_HELP)
    c.add_argument("script", metavar="SCRIPT.py[:FACTORY]", help=f"script and factory (default {DEFAULT_FACTORY})")
    c.add_argument("-o", "--output", required=True, metavar="FILE", help="artifact to write (e.g. model.gradc)")
    c.add_argument("--backend", choices=BACKENDS, default="auto", help="code generator (default auto)")
    c.add_argument("--amp", choices=("none", "fp16"), default="none", help="mixed precision policy (default none)")
    c.set_defaults(func=cmd_compile)

    d = sub.add_parser("dump", formatter_class=fmt, help="print or write the graph, generated source, kernels, stats",
                       description="Show what the compiler made of an artifact or of a script's factory (traced, "
                                   "not run). Without a part flag: graph, source and stats. Without -o: to stdout.",
                       epilog=FACTORY_HELP)
    d.add_argument("target", metavar="TARGET", help="an artifact file, or SCRIPT.py[:FACTORY]")
    d.add_argument("--graph", action="store_true", help="the optimised IR")
    d.add_argument("--source", action="store_true", help="the generated source files")
    d.add_argument("--kernels", action="store_true", help="the generated kernels, one per file (C: each value's line names the model's file:line; NumPy: one function per fused group)")
    d.add_argument("--stats", action="store_true", help="node, kernel, fusion and memory statistics")
    d.add_argument("--format", choices=("text", "dot", "json"), default="text",
                   help="graph as text, Graphviz DOT or JSON; stats as text or JSON (default text)")
    d.add_argument("-o", "--output", metavar="DIR", help="write files into DIR instead of printing")
    d.add_argument("--backend", choices=BACKENDS, default="auto", help="for a script (default auto)")
    d.add_argument("--amp", choices=("none", "fp16"), default="none", help="for a script (default none)")
    d.set_defaults(func=cmd_dump)

    r = sub.add_parser("run", formatter_class=fmt, help="run an artifact on .npy inputs",
                       description="Load an artifact (validated; its code regenerated from the graph) and run it "
                                   "once on inputs read from .npy files. Without -o, prints a summary of each output.",
                       epilog="Inputs are matched by the names `gradc compile` printed (the function's parameter "
                              "names), by position (0, 1, ...), or in order when NAME= is left out. Arrays of a "
                              "wider dtype of the same kind (float64 for float32) are converted.")
    r.add_argument("artifact", metavar="ARTIFACT", help="a file written by `gradc compile` or Program.save")
    r.add_argument("--input", "-i", action="append", metavar="NAME=FILE.npy", help="one input (repeat for each)")
    r.add_argument("-o", "--output", metavar="DIR", help="write each output as DIR/<name>.npy")
    r.set_defaults(func=cmd_run)

    b = sub.add_parser("bench", formatter_class=fmt, help="time eager against compiled (and PyTorch)",
                       description="Time gradc eager against gradc compiled, side by side in alternating rounds: "
                                   "median/min/max ms per call, speed-up, peak memory (tracemalloc, one separate "
                                   "call) and the first call's time (which includes compiling). Without SCRIPT it "
                                   "runs the bundled workloads (W1-W4, W1C) and, where PyTorch is importable, PyTorch "
                                   "eager on the same computation from the same weights.",
                       epilog="--peers: 'torch' (the default) adds PyTorch eager; 'torch.compile' (or 'all') adds "
                              "torch.compile too, which spends tens of seconds compiling each workload; 'none' "
                              "times gradc only. Peers apply to the bundled workloads. A SCRIPT's factory is "
                              "called once per implementation, so each starts from its own fresh state. A "
                              f"spread (max/min of the per-round medians, of the calls with one round) above "
                              f"{SPREAD_LIMIT} marks figures as unreliable.\n\n"
                              "The bundled workloads (gradc/workloads.py):\n" + WORKLOAD_HELP + "\n\n" + FACTORY_HELP)
    b.add_argument("script", nargs="?", metavar="SCRIPT.py[:FACTORY]", help="benchmark this instead of the bundled workloads")
    b.add_argument("--workloads", default=",".join(WORKLOAD_KEYS),
                   help=f"subset of {','.join(WORKLOAD_KEYS)} (default all)")
    b.add_argument("--quick", action="store_true", help="a short run: 1 round of 3 calls, 1 warm-up call")
    b.add_argument("--repeat", type=int, metavar="N", help="timed calls per candidate per round (default 10)")
    b.add_argument("--rounds", type=int, default=5, metavar="R", help="alternating rounds (default 5)")
    b.add_argument("--peers", type=_peers, default={"torch"}, metavar="LIST",
                   help="peers to time: torch, torch.compile, all or none (default torch)")
    b.add_argument("--scale", choices=("full", "small"), default="full",
                   help="workload sizes: full (as listed below) or small (a smoke test)")
    b.add_argument("--profile", action="store_true",
                   help="also time each kernel of the compiled programs and print the GB/s each achieves next to "
                        "this machine's copy bandwidth (as GRADC_PROFILE=1 does)")
    b.add_argument("--backend", choices=BACKENDS, default="auto", help="gradc's backend")
    b.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    b.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    b.set_defaults(func=cmd_bench)

    i = sub.add_parser("info", help="versions, backends, GPU and compile cache",
                       description="Print the versions of gradc and its dependencies, the available backends, "
                                   "whether a CUDA GPU was found, and where the compile cache is and its size.")
    i.set_defaults(func=cmd_info)

    k = sub.add_parser("cache", help="show or clear the compile cache",
                       description="The compile cache holds generated modules and measured settings; it lives in "
                                   "GRADC_CACHE_DIR, or by default in the user's cache directory.")
    k.add_argument("action", nargs="?", choices=("info", "clear"), default="info",
                   help="info (default): location and size; clear: delete what gradc wrote there (nothing else)")
    k.set_defaults(func=cmd_cache)
    p.subcommands = dict(sub.choices)
    return p


def main(argv=None):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:   # an unknown flag: the subcommand's own usage, not the top level's
        parser.subcommands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    from .errors import GradcError
    try:
        return args.func(args) or 0
    except CLIError as e:
        print(f"gradc {args.command}: error: {e}", file=sys.stderr)
        return e.code
    except GradcError as e:
        print(f"gradc {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"gradc {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `gradc dump ... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
