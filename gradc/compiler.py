"""gradc.compile: trace a function (or module) per call signature into a Program and run that.

A call's signature (argument shapes, dtypes, devices, requires_grad flags, Python values, grad
mode, autocast state, module training flags) selects a cached Program; a new signature traces
again, which is how Python control flow stays dynamic. Programs also carry guards on the state
they read (parameter shapes, `.grad` presence, optimizer hyper-parameters) and are re-traced when
those change.

Tracing happens here; everything after it is gradc.lower.lower(graph, spec): `step.trace(...)`
returns the graph and spec of one call, and `step.lower(...)` the Program lower makes of them."""
import contextlib
import copy
import functools
import logging
import threading
import time
import types
import warnings
import weakref

from . import dispatch, dtypes as D
from .amp import autocast, is_autocast_enabled
from .grad_mode import is_grad_enabled
from .compile_config import config, stance
from .dynamic import MARKED, DynamicProgram, changed_sizes, dynamic_dims, failure_site, signature_shape
from .errors import DeviceError, GradcError, TraceError
from .guards import Reads
from .lower import lower as lower_graph
from .naming import input_names
from .compiled_module import CompiledModule
from .nn.module import Module, structure_epoch
from .pytree import flatten, holds, spec_key, unflatten
from .recompile import describe, leaf_paths
from .reach import Reach, cell_value, modules_of
from .reporting import debug_level, maybe_dump, report
from .runtime import cuda_graphs, native
from .runtime.wiring import Binding
from .spec import Spec
from .tensor import Tensor
from .tracer import Tracer
from .trace_outputs import collect
from .symint import Sizes
from .host_random import refusing_draws
from .traced_float import Specialize, TracedFloat

log = logging.getLogger("gradc")
_EAGER = "eager"
_TRACING = threading.RLock()   # (held by the thread tracing or calling; a call inside a trace is the same thread)
BACKENDS = ("auto", "numpy", "c", "cuda")
# torch.compile's names, as scripts pass them: its default compiler generates native code as "auto"
# does; "eager" / "aot_eager" run the captured graph through the framework's own kernels, as the
# generated NumPy program does
TORCH_BACKENDS = {"inductor": "auto", "eager": "numpy", "aot_eager": "numpy"}
# torch.compile's modes, by what they choose that gradc has: CUDA-graph capture on a GPU (None: as
# GRADC_CUDA_GRAPHS says, on by default). gradc does no autotuning, so max-autotune is the default.
MODES = {None: None, "default": None, "max-autotune": None, "reduce-overhead": True,
         "max-autotune-no-cudagraphs": False}


class CompiledFunction:
    """What gradc.compile returns: call it like the original function."""

    def __init__(self, fn, backend="auto", amp=None, dynamic=None, fullgraph=False, dump=None, fuse=True,
                 cache_limit=None, mode=None):
        backend = TORCH_BACKENDS.get(backend, backend)
        if backend not in BACKENDS:
            raise GradcError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if amp not in (None, "fp16"):
            raise GradcError(f"amp must be None or 'fp16', got {amp!r}")
        if dynamic not in (None, True, False):
            raise GradcError(f"dynamic must be None (automatic), True or False, got {dynamic!r}")
        if mode not in MODES:
            raise GradcError(f"unknown mode {mode!r}; choose one of {', '.join(repr(m) for m in MODES if m)}")
        self.mode, self._graphs = mode, MODES[mode]
        # Compiling a compiled function compiles the original once, with these options.
        fn = fn._orig_mod if isinstance(fn, CompiledModule) else (fn.fn if isinstance(fn, CompiledFunction) else fn)
        self.fn = fn
        self.backend = backend
        self.amp, self.dynamic, self.fullgraph, self.dump, self.fuse = amp, dynamic, fullgraph, dump, fuse
        self.cache_limit = cache_limit
        self.trace_count = 0
        self.recompile_reasons = []   # why each trace after the first happened, oldest first
        self._programs = {}
        self._automatic = set()   # (flat index, dim) that automatic dynamic made symbolic
        self._plain_specs = {}   # argument count -> (pytree spec, its key) of calls with tensors only
        self._floats_as_inputs = True   # float arguments are program inputs (gradc.traced_float)
        self._reach = Reach(fn)
        self._module_cache = None
        self._last_sig = None
        self._last_spec = None
        self._warned_limit = False
        _LIVE.add(self)
        try:
            functools.update_wrapper(self, fn)
        except AttributeError:
            pass

    @property
    def __name__(self):
        return getattr(self.fn, "__name__", type(self.fn).__name__)

    def _options(self):
        return dict(backend=self.backend, amp=self.amp, dynamic=self.dynamic, fullgraph=self.fullgraph, dump=self.dump,
                    fuse=self.fuse, cache_limit=self.cache_limit, mode=self.mode)

    def __deepcopy__(self, memo):   # a copy of the function (an EMA copy of a compiled model), traced afresh
        return CompiledFunction(copy.deepcopy(self.fn, memo), **self._options())

    def __reduce__(self):
        return (_compiled_again, (self.fn, self._options()))

    # ------------------------------------------------------------------ signatures
    def _dims(self, flat):
        """The dimensions of this call traced symbolic (gradc.dynamic)."""
        return dynamic_dims(flat, self.dynamic is True, self._automatic) if self.dynamic is not False else ()

    def _signature(self, flat, tree_key, dims=()):
        """The cache key of one call (see the module docs); `tree_key`: pytree.spec_key of its pytree spec;
        `dims`: its dynamic dimensions, whose sizes the key leaves out."""
        if not dims and len(flat) == 1 and type(flat[0]) is not float:
            t = flat[0]
            tensors = ((t.shape, t.dtype.name, t.device.type, t.device.index, t.requires_grad, 0),)
        else:
            first = {}
            tensors = tuple((signature_shape(t.shape, i, dims) if dims else t.shape, t.dtype.name, t.device.type,
                             t.device.index, t.requires_grad, first.setdefault(id(t), i))
                            for i, t in enumerate(flat) if type(t) is not float)
        parts = (("grad mode", is_grad_enabled()), ("default dtype", D.default_float.name),
                 ("tensors", tensors),
                 ("Python arguments", tree_key),
                 ("autocast", "float16" if self.amp == "fp16" or is_autocast_enabled() else None))
        modules = self._reach()
        return parts + self._module_parts(modules) if modules else parts

    def _flatten_call(self, args, kwargs):
        """(flat tensors, pytree spec, its signature key) of one call. Positional tensors only, the
        common case, reuse one spec per argument count instead of walking the tree."""
        if not kwargs:
            for a in args:
                if type(a) is not Tensor:
                    break
            else:
                known = self._plain_specs.get(len(args))
                if known is None:
                    flat, spec = flatten((args, kwargs))
                    known = self._plain_specs[len(args)] = (spec, spec_key(spec))
                return list(args), known[0], known[1]
        flat, spec = flatten((args, kwargs), numbers=self._floats_as_inputs)
        return flat, spec, spec_key(spec)

    def _module_parts(self, modules):
        """Training flags and parameter/buffer identities of the modules the function reaches (the
        program binds them by identity: a replaced one must retrace). Walking the module trees is
        redone only when some module changed since the last call."""
        cache = self._module_cache
        epoch = structure_epoch()
        if cache is not None and cache[0] == epoch and cache[1] == modules:  # (modules compare by identity)
            return cache[2]
        parts = (("module training flags", tuple(m.training for o in modules for m in o.modules())),
                 ("module parameters and buffers", tuple(id(t) for o in modules for t in o.parameters()) +
                  tuple(id(t) for o in modules for t in o.buffers())))
        self._module_cache = (epoch, modules, parts)
        return parts

    def _module_names(self):
        """Paths of the modules whose training flags the signature lists, in the same order."""
        return [path for o in modules_of(self.fn) for path, _ in o.named_modules(self._root_name(o))]

    def _root_name(self, module):
        if module is self.fn or module is getattr(self.fn, "__self__", None):
            return "self"
        glb = getattr(self.fn, "__globals__", {})
        cells = zip(getattr(getattr(self.fn, "__code__", None), "co_freevars", ()), self.fn.__closure__ or ()) \
            if getattr(self.fn, "__closure__", None) else ()
        names = [n for n, c in cells if cell_value(c) is module] + [n for n, v in glb.items() if v is module]
        return names[0] if names else type(module).__name__

    def _why_retrace(self, sig, spec, entry=None, flat=None):
        if self._last_sig is None:
            return "first call"
        changes = describe(self.fn, (self._last_sig, self._last_spec), (sig, spec), self._module_names())
        for prog in (entry or [])[-1:]:  # the newest program for this signature: what changed since it
            changes += prog.guard_failures(flat)
        if not changes and not entry and self._last_sig == sig:
            changes = ["the previous trace created state (such as SGD's momentum buffers with dampening) and ran once; this one reads it"]
        return "; ".join(dict.fromkeys(changes)) or "a guard on state the program read failed"

    def __get__(self, obj, objtype=None):
        """A compiled function set on a class (`@gradc.compile` over a method) is a method: `self`
        becomes its first argument."""
        return self if obj is None else types.MethodType(self, obj)

    # ------------------------------------------------------------------ calling
    def __call__(self, *args, **kwargs):
        # One compiled call at a time in a process: tracing is process-wide (gradc.dispatch), and a
        # call from another thread while one traces would join that trace and take its stand-ins
        # for the module's tensors as theirs.
        with _TRACING:
            return self._call(*args, **kwargs)

    def _call(self, *args, **kwargs):
        if stance() == "force_eager":
            return self.fn(*args, **kwargs)
        if self._graphs is not None and cuda_graphs.preference() is not self._graphs:
            with cuda_graphs.preferred(self._graphs):   # the mode's choice, for the programs this call loads
                return self(*args, **kwargs)
        if dispatch.tracer() is not None:  # called from a function being traced: becomes part of its trace
            return self._run_eagerly(*args, **kwargs)
        flat, spec, key = self._flatten_call(args, kwargs)
        dims = self._dims(flat) if self.dynamic or self._automatic or MARKED else ()   # (inline: per call)
        sig = self._signature(flat, key, dims)
        entry = self._programs.get(sig)
        if entry is _EAGER:
            return self._run_eagerly(*args, **kwargs)
        for prog in entry or ():
            if prog.guards_hold(flat):
                if prog.one_shot:
                    entry.remove(prog)
                return prog.call_tree(flat)
        if self.trace_count and stance() != "default":   # set_stance: no trace after the first
            if stance() == "fail_on_recompile":
                raise GradcError(f"gradc.compile({self.__name__}) would trace again (stance fail_on_recompile): "
                                 f"{self._why_retrace(sig, spec, entry, flat)}")
            return self.fn(*args, **kwargs)
        limit = self.cache_limit if self.cache_limit is not None else config.cache_size_limit
        if self.trace_count >= limit:
            if not self._warned_limit:
                last = "\n  ".join(self.recompile_reasons[-4:] + [self._why_retrace(sig, spec, entry, flat)])
                warnings.warn(f"gradc.compile({self.__name__}): traced {self.trace_count} times, the limit "
                              f"(cache_limit={limit}); running new signatures eagerly from now on. "
                              f"The last changes that caused a trace:\n  {last}\nKeep what changes stable, or "
                              "raise cache_limit", stacklevel=2)
                self._warned_limit = True
            return self._run_eagerly(*args, **kwargs)
        reason = self._why_retrace(sig, spec, entry, flat)
        grown = changed_sizes(self._last_sig, sig, flat) if (self.dynamic is None and self._last_sig
                                                            and config.automatic_dynamic_shapes) else ()
        if grown:   # automatic dynamic: only sizes changed, so trace them symbolic from now on
            self._automatic |= grown
            dims = self._dims(flat)
            sig = self._signature(flat, key, dims)
            entry = self._programs.get(sig)
            reason += "; from now on dynamic: " + ", ".join(_dim_names(self.fn, spec, grown))
        if self._last_sig is not None:
            self.recompile_reasons.append(reason)
            log.info("gradc.compile(%s): retracing (%s)", self.__name__, reason)
        previous = self._last_sig, self._last_spec, len(self.recompile_reasons)
        self._last_sig, self._last_spec = sig, spec
        try:
            prog = self._build(args, kwargs, flat, reason=reason, dims=dims)
        except (Specialize, Exception) as e:
            if dims and isinstance(e, (TypeError, AttributeError, GradcError)):   # (what a size a
                return self._static_after(e, previous, args, kwargs)               # library refuses raises)
            # A TypeError or TraceError may come from the float stand-in; any other error is the
            # function's own, and running it again would repeat its side effects.
            if not isinstance(e, (Specialize, TypeError, TraceError)) or not any(type(v) is float for v in flat):
                if isinstance(e, TraceError):
                    return self._eager_after(e, sig, args, kwargs)
                raise
            # Python code used a float argument as a number (or failed on the stand-in): from now on
            # float arguments are baked in, as any other Python value.
            self._floats_as_inputs = False
            self._last_sig, self._last_spec = previous[:2]
            del self.recompile_reasons[previous[2]:]
            return self(*args, **kwargs)
        if not prog.one_shot:
            self._programs.setdefault(sig, []).append(prog)
        return prog.call_tree(flat)

    def _static_after(self, e, previous, args, kwargs):
        """A trace with symbolic sizes failed: when one with concrete sizes works, trace this function
        with concrete sizes from now on (else the error is the function's own: it is raised)."""
        before = self.dynamic, self._automatic
        self.dynamic, self._automatic = False, set()
        self._last_sig, self._last_spec = previous[:2]
        del self.recompile_reasons[previous[2]:]
        try:
            result = self(*args, **kwargs)
        except BaseException as own:
            self.dynamic, self._automatic = before
            own.__suppress_context__ = True   # (the symbolic trace's failure says nothing more)
            raise
        message = (f"gradc.compile({self.__name__}): a dynamic size could not be traced at {failure_site(e)} ({e}); "
                   "tracing with concrete sizes from now on (each new size traces again). Make that size a number "
                   "there (int(x.shape[0])) to keep the others dynamic, or compile with dynamic=False")
        if before[0] is None and before[1]:   # only automatic dynamic chose them: nothing the user asked for
            log.info(message)
        else:
            warnings.warn(message, stacklevel=3)
        return result

    def _eager_after(self, e, sig, args, kwargs):
        """A call that cannot be traced: raised with fullgraph=True, else run eagerly (and every
        later call with its signature)."""
        if self.fullgraph:   # the one place where running the call eagerly is the user's option
            e.args = (f"{e}; or compile with fullgraph=False to run such calls eagerly",) + e.args[1:]
            raise e
        warnings.warn(f"gradc.compile({self.__name__}): this call cannot be traced, running it eagerly "
                      f"(and every later call with the same signature). {e}", stacklevel=3)
        self._programs[sig] = _EAGER
        return self._run_eagerly(*args, **kwargs)

    def lower(self, *args, **kwargs):
        """The Program for this call signature, without running it."""
        flat, _ = flatten((args, kwargs))
        return self._build(args, kwargs, flat, lowering=True)

    def trace(self, *args, **kwargs):
        """Trace this call without running or lowering it: returns (graph, spec), and
        `gradc.lower.lower(graph, spec)` builds the Program that `lower(*args, **kwargs)` returns.
        State the function touched is left as it was."""
        start = time.perf_counter()
        tracer, out_spec, parts = self._trace(args, kwargs, lowering=True)
        self.trace_count += 1
        backend = self._backend_for(self._flat_args(args, kwargs), True)
        return tracer.graph, self._spec(tracer, out_spec, parts, backend, time.perf_counter() - start)

    def _spec(self, tracer, out_spec, parts, backend, trace_seconds):
        return Spec(backend=backend, fuse=bool(self.fuse), bindings=tracer.bindings, effects=parts["effects"],
                    n_returned=parts["n_returned"], out_spec=out_spec, guards=parts["guards"],
                    one_shot=parts["one_shot"], gradients=parts["gradients"], trace_seconds=trace_seconds)

    # ------------------------------------------------------------------ mixed precision
    def _amp_region(self):
        """amp="fp16" runs the function inside gradc.amp.autocast(); otherwise the caller's autocast
        state (if any) applies, as in eager mode."""
        return autocast() if self.amp == "fp16" else contextlib.nullcontext()

    def _autocast_dtype(self):
        return "float16" if self.amp == "fp16" or is_autocast_enabled() else None

    def _run_eagerly(self, *args, **kwargs):
        with self._amp_region():
            return self.fn(*args, **kwargs)

    # ------------------------------------------------------------------ tracing
    def _backend_for(self, flat, lowering):
        """"auto" runs where the inputs are; "cuda" needs CUDA inputs to run (any inputs to lower)."""
        on_cuda = any(t.device.type == "cuda" for t in flat)
        if self.backend == "auto":
            return native.choose_backend(on_cuda)
        if self.backend == "cuda" and not lowering and not on_cuda and flat:
            raise DeviceError("gradc.compile(..., backend='cuda') got CPU tensors; move inputs and the model to "
                              "the GPU with .cuda(), or use backend='numpy' (lower() works with CPU inputs)")
        return self.backend

    def _flat_args(self, args, kwargs):
        return flatten((args, kwargs))[0]

    def _trace(self, args, kwargs, lowering=False, dims=()):
        """Trace one call: (tracer, output spec, collected outputs/effects/guards). State the
        function touched is restored; optimizer state it created is rolled back when lowering.
        `dims`: (flat index, dim) traced as symbolic sizes (gradc.symint). One trace at a time in
        a process: a trace stands in for the tensors it lifts (a module's parameters), and a second
        one at the same time would take the stand-in for the tensor and restore it so."""
        with _TRACING:
            return self._trace_one(args, kwargs, lowering, dims)

    def _trace_one(self, args, kwargs, lowering, dims):
        tracer = Tracer()
        if dims:
            tracer.sizes = Sizes(tracer.where)
        reads = Reads(self.fn)
        floats, scope = [], [True, False]
        try:
            with tracer:
                leaves, spec = flatten((args, kwargs), numbers=self._floats_as_inputs and not lowering)
                dev = next((t.device for t in leaves if type(t) is not float), None)
                paths = leaf_paths(self.fn, spec) if dims or len(leaves) > len(self._flat_args(args, kwargs)) else ()
                for i, t in enumerate(leaves):
                    if type(t) is float:
                        floats.append(TracedFloat(tracer.number(Binding("number", i), "", dev), paths[i], scope))
                        leaves[i] = floats[-1]
                    elif id(t) not in tracer.lifted:
                        shape = tuple(tracer.sizes.symbol(i, d, f"{paths[i]}.shape[{d}]", n) if (i, d) in dims
                                      else n for d, n in enumerate(t.shape)) if dims else None
                        tracer.lift(t, Binding("arg", i), shape)
                if floats:
                    args, kwargs = unflatten(spec, leaves)
                with self._amp_region(), reads, refusing_draws():
                    result = self.fn(*args, **kwargs)
                out_flat, out_spec = flatten(result)
                if floats and (scope[1] or holds(out_spec, TracedFloat)):
                    raise Specialize("a float argument was used as a number, or is returned")
                parts = collect(tracer, out_flat)
                if lowering and tracer.created_state():
                    parts["one_shot"] = True   # the optimizer gives that state back below: valid for one call
            self._name_inputs(tracer, spec)
            reads.record_arguments(args, kwargs)
            python_guards = reads.guards(modules_of(self.fn))
            if len(python_guards):
                parts["guards"].append(python_guards)
        except BaseException:
            tracer.restore()
            tracer.rollback_optimizers()
            for undo in reversed(tracer.undo):   # no tensor of an abandoned trace stays in a module
                undo()
            raise
        finally:
            scope[0] = False   # every stand-in of this trace, derived ones too
        tracer.restore()
        if lowering:
            tracer.rollback_optimizers()
        return tracer, out_spec, parts

    def _name_inputs(self, tracer, spec):
        """Name each graph input after what it is (gradc.naming): `x`, `fc1.weight`, `exp_avg of fc1.weight`."""
        roots = [("" if name == "self" else name, m) for m in modules_of(self.fn) for name in [self._root_name(m)]]
        optimizers = [opt for opt, _ in tracer.optimizer_settings()]
        names = input_names(self.fn, spec, tracer.bindings, roots, optimizers)
        for nid, name in zip(tracer.graph.inputs, names):
            tracer.graph.node(nid)["attrs"]["name"] = name

    def _build(self, args, kwargs, flat, lowering=False, reason="lower", dims=()):
        start = time.perf_counter()
        tracer, out_spec, parts = self._trace(args, kwargs, lowering, dims)
        self.trace_count += 1
        traced_text = tracer.graph.to_text() if debug_level() >= 4 else None
        backend = self._backend_for(self._flat_args(args, kwargs), lowering)
        if parts["one_shot"] and backend == "c" and not lowering:
            backend = "numpy"   # it creates state and runs once: not worth a C compile (about 0.5 s)
        spec = self._spec(tracer, out_spec, parts, backend, time.perf_counter() - start)
        try:
            if tracer.sizes is not None:
                dyn = DynamicProgram(tracer.graph, spec, tracer.sizes)
                prog = dyn.program(tracer.sizes.values(flat))
            else:
                dyn = prog = lower_graph(tracer.graph, spec)
        except Exception as e:   # the compiler's own failure, not the function's
            if not config.suppress_errors or isinstance(e, TraceError):
                raise
            raise TraceError(f"compiling the traced graph failed ({type(e).__name__}: {e}); "
                             "gradc._dynamo.config.suppress_errors is set, so the call runs eagerly") from e
        report(self.__name__, reason, prog, traced_text)
        maybe_dump(prog, self.dump, self.__name__, self.trace_count)
        return dyn


def _compiled_again(fn, options):
    """A pickled CompiledFunction, loaded: the same function compiled with the same options (its
    programs are not pickled: they are traced again on first use)."""
    return CompiledFunction(fn, **options)


def _dim_names(fn, spec, dims):
    paths = leaf_paths(fn, spec)
    return [f"{paths[i]}.shape[{d}]" for i, d in sorted(dims)]


def compile(fn=None, *, backend="auto", amp=None, dynamic=None, fullgraph=False, dump=None, fuse=True,
            cache_limit=None, mode=None, disable=False, options=None):
    """Compile `fn` (a function or nn.Module). Usable as @gradc.compile or @gradc.compile(...).
    A module gives a CompiledModule (an nn.Module); a function a CompiledFunction. Compiling
    something already compiled compiles the original with the new options.

    What a call's arguments do to the program (one program per signature, see CompiledFunction):
      tensors           program inputs; their shapes, dtypes, devices and requires_grad select it
      float arguments   program inputs too (exactly `float`, at any depth of the arguments): one
                        program serves every value, so `step(x, lr)` with a changing lr, or a loss
                        weight, never traces again. Where they meet tensors they act as the Python
                        float would (same promotion: float16 stays float16, an integer tensor gives
                        float32); arithmetic with other numbers (`1.0 - w`) stays symbolic, in
                        float64. A float the function uses as a Python number (`if lr > 0.1`,
                        `math.cos(lr)`, `float(lr)`, `1 / lr`, returning it) is instead baked in,
                        for this function's float arguments from then on: each new value traces
                        again, named in the reason (`lr: 0.1 -> 0.05`). `lower()`, `trace()` and
                        gradc.export always bake floats in.
      ints, bools, str, None, other objects
                        baked in: they can shape the graph (sizes, branches, loop counts), so each
                        new value traces again
    dynamic: which tensor sizes are symbolic (gradc.dynamic, gradc.symint): None (the default) makes
    a dimension so once a call traced again only because its size changed; True makes every
    dimension so from the first call; False none (each new size traces). gradc.mark_dynamic(x, dim)
    marks one. A symbolic size (2 or more) is traced once for all sizes; what the function assumed
    about it is a guard, and the program is lowered once per size it is called with.
    Optimizer hyper-parameters and GradScaler state read during the trace are program inputs as well.
    backend: "auto" (C where a compiler is found, CUDA for GPU tensors), "numpy", "c", "cuda"; PyTorch's
    "inductor" is "auto", its "eager" and "aot_eager" are "numpy". mode: PyTorch's names; gradc's only
    choice among them is CUDA-graph capture: "reduce-overhead" captures, "max-autotune-no-cudagraphs"
    does not, "default" and "max-autotune" leave it to GRADC_CUDA_GRAPHS (on unless set to 0).
    options: Inductor's settings; "triton.cudagraphs" chooses CUDA-graph capture as mode does, any
    other is named in a warning (gradc has no such setting). cache_limit: traces kept before new
    signatures run eagerly (None: gradc._dynamo.config.cache_size_limit, 8).
    disable=True returns fn itself.
    Python side effects (a counter incremented, a list appended to) run once, while tracing: later
    calls replay the tensor work only. Setting an optimizer option or stepping an lr scheduler
    inside is refused for that reason (TraceError: the call runs eagerly; step schedulers outside)."""
    if fn is None:
        return lambda f: compile(f, backend=backend, amp=amp, dynamic=dynamic, fullgraph=fullgraph, dump=dump,
                                 fuse=fuse, cache_limit=cache_limit, mode=mode, disable=disable, options=options)
    if not callable(fn):
        raise TypeError(f"gradc.compile expects a function or an nn.Module, got {type(fn).__name__} ({fn!r:.40})")
    if disable:   # torch.compile(model, disable=not args.compile): the model itself
        return fn
    mode = _mode_from_options(mode, options)
    compiled = CompiledFunction(fn, backend, amp, dynamic, fullgraph, dump, fuse, cache_limit, mode)
    return CompiledModule(compiled.fn, compiled) if isinstance(compiled.fn, Module) else compiled


def _mode_from_options(mode, options):
    if not options:
        return mode
    if not isinstance(options, dict):
        raise GradcError(f"options must be a dict of settings, got {type(options).__name__}")
    unused = sorted(k for k in options if k != "triton.cudagraphs")
    if unused:
        warnings.warn(f"gradc.compile: options {', '.join(map(repr, unused))} are Inductor settings gradc does not "
                      "have; they change nothing here", stacklevel=3)
    if "triton.cudagraphs" in options:
        if mode not in (None, "default"):
            raise GradcError("pass either mode= or options={'triton.cudagraphs': ...}, not both")
        return "reduce-overhead" if options["triton.cudagraphs"] else "max-autotune-no-cudagraphs"
    return mode


def compile_in_place(module, **options):
    """nn.Module.compile(**options): the module's own calls run through gradc.compile(..., **options)
    from now on (torch's in-place form: the module keeps its identity and its state-dict keys)."""
    compiled = compile(module._call_uncompiled, **options)
    hooks = tuple(h for h in module.__dict__.get("_forward_hooks", ()) if h[1] != "compiled")
    module._set_hooks(((-1, "compiled", compiled, False),) + hooks)


# ---------------------------------------------------------------------- torch.compiler's functions
_LIVE = weakref.WeakSet()   # every CompiledFunction, for reset()


def reset():
    """Forget the programs of every compiled function (torch.compiler.reset): each traces again on
    its next call (trace_count keeps counting)."""
    for f in list(_LIVE):
        f._programs, f._automatic, f._last_sig, f._last_spec, f._warned_limit = {}, set(), None, None, False


def is_compiling():
    """True while gradc.compile traces a call (torch.compiler.is_compiling)."""
    return dispatch.tracer() is not None


is_dynamo_compiling = is_compiling


def allow_in_graph(fn):
    """torch.compiler.allow_in_graph: gradc traces through every Python function into the graph, so
    fn is already in it; fn is returned."""
    return fn


def assume_constant_result(fn):
    """torch.compiler.assume_constant_result: fn's result is read while tracing and baked in, as any
    Python value is; fn is returned."""
    return fn


def disable(fn=None, recursive=True):
    """fn that always runs eagerly (torch.compiler.disable): a compiled call that reaches it runs
    eagerly as a whole, with the reason (gradc does not split a graph around it)."""
    if fn is None:
        return lambda f: disable(f, recursive)

    @functools.wraps(fn)
    def eager_only(*args, **kwargs):
        if dispatch.tracer() is not None:
            raise TraceError(f"{getattr(fn, '__qualname__', fn)} is marked gradc.compiler.disable: it runs eagerly, "
                             "so this compiled call does too")
        return fn(*args, **kwargs)
    return eager_only
