"""The Optimizer base: parameter groups, per-parameter state, zero_grad and state_dict. Updates are
written with tensor ops under no_grad, so a compiled training step captures them as graph work."""
import collections
import copy
import functools

import numpy as np

from ..autograd import no_grad
from ..grad_mode import enable_grad
from ..errors import ArgumentError, ShapeError, TraceError
from ..tensor import Tensor
from .. import dtypes as D
from ..functions import cat, tensor
from .. import dispatch
from ..nn.module import zero_grad_of
from ..internal import internal


_REPLAY = ("a compiled program replays its tensor work on later calls, not the Python code that changed "
           "the option, so every later call would run with the value set while tracing")


class ParamGroup(dict):
    """A parameter group: a dict, as in PyTorch. Changing an option while a step is traced raises
    TraceError (the compiled function then runs eagerly): see _REPLAY."""
    __slots__ = ()

    def __setitem__(self, key, value):
        if key != "params" and dispatch.tracer() is not None and not (
                isinstance(value, (int, float, str, bool, type(None))) and self.get(key, value) == value):
            raise TraceError(f"param_group[{key!r}] is set inside the compiled function; {_REPLAY}. Set it "
                             "outside the compiled function (e.g. call scheduler.step() between compiled steps)")
        super().__setitem__(key, value)


def not_traced(step):
    """For a scheduler's step(): refuse to run while a step is traced (see _REPLAY), before any
    of its state changes, so the eager run that follows steps once."""
    @functools.wraps(step)
    def checked(self, *args, **kwargs):
        if dispatch.tracer() is not None:
            raise TraceError(f"{type(self).__name__}.step() is called inside the compiled function; {_REPLAY}. "
                             "Call scheduler.step() outside the compiled function, between compiled steps")
        return step(self, *args, **kwargs)
    return checked


def check_optimizer(optimizer, who):
    if not isinstance(optimizer, Optimizer):
        raise ArgumentError(f"{who}: {type(optimizer).__name__} is not a gradc optimizer; pass e.g. "
                            "optim.SGD(model.parameters(), lr=0.1)")


_update_internally = internal(lambda opt: opt._update_groups())
_PLAIN = (int, float, bool, str, type(None))


def _gradc_only(opt):
    """Whether an update of `opt` can run none of the user's code: a gradc optimizer class with no
    method replaced on the instance, parameters and gradients of gradc's own tensor classes, options
    that are plain values (a user object as lr would run its arithmetic) and state of tensors and numbers."""
    if not type(opt).__module__.startswith("gradc.") or any(callable(v) for v in vars(opt).values()):
        return False

    def plain(v):
        return type(v) in _PLAIN or type(v) in (tuple, list) and all(type(x) in _PLAIN for x in v)

    def tensor(v):   # gradc's Tensor or Parameter, not a user subclass with its own methods
        return isinstance(v, Tensor) and type(v).__module__.startswith("gradc.")
    for group in opt.param_groups:
        for p in group["params"]:
            if not tensor(p) or p.grad is not None and not tensor(p.grad) or \
                    not all(tensor(v) or plain(v) for v in opt.state.get(p, {}).values()):
                return False
        if not all(plain(v) for k, v in group.items() if k != "params"):
            return False
    return True


class Optimizer:
    # Options whose numbers a compiled step reads as program inputs (0-d float64 tensors, which
    # combine with float32 tensors as Python floats do), so changing them (an lr schedule, down to
    # 0) never traces again. A traced update may branch on whether such an option is zero, reading
    # it from `group.raw` (SGD's momentum and weight_decay, Adam's weight_decay); the zeroness of
    # the options read so is guarded, and every option not listed here by its value. Subclasses
    # that list none get every option guarded.
    hyper_inputs = ()

    def __init__(self, params, defaults, flat=False, implementation=None):
        implementation = dict(implementation or {})
        if implementation.get("differentiable"):
            raise ArgumentError(f"{type(self).__name__}(differentiable=True): differentiating through the update itself "
                                "is not supported; gradc's steps run without history")
        if implementation.get("fused") and implementation.get("foreach"):
            raise ArgumentError(f"{type(self).__name__}: fused=True and foreach=True cannot both be set (as in PyTorch)")
        # PyTorch's choices among its implementations of one update (a loop, foreach lists, a fused
        # kernel, device-side step counts): gradc has one, compiled into fused kernels with its step
        # count on the device, so every choice gives the same numbers; they are kept in the groups
        # as PyTorch keeps them (each optimizer takes the ones its PyTorch namesake takes).
        defaults = dict(defaults, **implementation)
        self.flat = bool(flat)
        self._flats = {}  # group index -> [_Flat] (flat=True: parameters live in flat buffers)
        self.defaults = dict(defaults)
        if isinstance(params, Tensor):
            raise ArgumentError(f"{type(self).__name__}: params must be an iterable of tensors or of dicts (parameter "
                                "groups), got a single tensor; pass [tensor] or model.parameters()")
        if isinstance(params, set):
            raise ArgumentError(f"{type(self).__name__}: parameters must be an ordered collection (a set's order "
                                "changes between runs, so saved optimizer state would load onto the wrong "
                                "parameters); pass a list")
        params = list(params)
        if not params:
            raise ArgumentError("optimizer got an empty parameter list; pass model.parameters()")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        self.state = collections.defaultdict(dict)   # (a custom step's self.state[p] starts empty, as in PyTorch)
        self._hyper = {}  # (group index, option, device) -> the 0-d tensor a compiled step reads
        self._hyper_at = {}   # the same keys -> the value last written into it (a GPU tensor is never read back)
        self._branched = set()   # hyper_inputs options a traced update read from group.raw (branched on)
        for g in groups:
            self.add_param_group(g)
        self._init_state()
        if self.flat:  # laid out now, eagerly: a compiled step then finds the buffers in place
            for gi, g in enumerate(self.param_groups):
                self._flat_buffers(gi, g["params"])

    def add_param_group(self, group):
        """Add a group: {"params": tensors, option: value, ...}; options it leaves out take the defaults
        the optimizer was built with (e.g. a weight-decay group and a no-decay group, one lr)."""
        if not isinstance(group, dict) or "params" not in group:
            raise ArgumentError(f"a parameter group must be a dict with a 'params' entry, got {type(group).__name__}")
        group = ParamGroup(group)
        ps = group["params"]
        if isinstance(ps, set):
            raise ArgumentError("optimizer parameters must be an ordered collection (a set's order changes between "
                                "runs, so saved optimizer state would load onto the wrong parameters); pass a list")
        group["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        named = [p for p in group["params"] if isinstance(p, tuple)]
        if named:   # model.named_parameters(): (name, tensor) pairs; the names are kept, as in PyTorch
            if len(named) != len(group["params"]) or any(len(p) != 2 or not isinstance(p[0], str) for p in named):
                raise ArgumentError("optimizer parameters must be all tensors or all (name, tensor) pairs, as "
                                    "model.named_parameters() gives; got a mix")
            group["param_names"] = [n for n, _ in named]
            group["params"] = [p for _, p in named]
        if self.param_groups and ("param_names" in group) != ("param_names" in self.param_groups[0]):
            raise ArgumentError("every parameter group must give its parameters with names (named_parameters()) or "
                                "every group without; got a mix")
        for p in group["params"]:
            if not isinstance(p, Tensor) or not p.is_leaf:
                raise ArgumentError("optimizers can only optimize leaf tensors (parameters); got "
                                 + ("a computed tensor" if isinstance(p, Tensor) else type(p).__name__))
        ids = {id(p) for p in group["params"]}
        if len(ids) != len(group["params"]) or any(id(p) in ids for g in self.param_groups for p in g["params"]):
            raise ArgumentError("some parameters appear more than once in the parameter groups; give each parameter "
                                "to exactly one group")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    def _init_state(self):
        """State that exists from construction on (Adagrad's accumulators); most optimizers create
        theirs on the first step."""

    def zero_grad(self, set_to_none=True):
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    # Also when already None: a traced step then records that it clears the gradient,
                    # so the program does not assume (and guard) that it starts from none.
                    p.grad = None
                elif p.grad is not None:  # zeros, not grad * 0.0: an inf/nan gradient would stay nan
                    zero_grad_of(p)

    def step(self, closure=None):
        """One update of every parameter with a gradient; closure (which recomputes the loss, as
        LBFGS needs) is called first, with grad enabled, and its loss returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        # State made on the first step (zero moments, step counts) is made as real tensors also while
        # a step is traced (dispatch.outside_trace): the traced program then reads and updates it as
        # any other state, so the first compiled step's program serves every later step.
        tracer = dispatch.tracer()
        if tracer is not None:
            tracer.watch_optimizer(self)
        if tracer is not None and _gradc_only(self):
            _update_internally(self)   # none of the user's code can run in it
        else:
            self._update_groups()      # user code may: what it reads is recorded
        return loss

    def _update_groups(self):
        with no_grad():
            for gi, group in enumerate(self.param_groups):
                params = group["params"]
                if self.flat and len(params) > 1 and all(p.grad is not None for p in params):
                    for flat in self._flat_buffers(gi, params):
                        grad = cat([p.grad.reshape(-1) for p in flat.params])
                        self._update(flat.param, grad, flat.state, self._numbers(gi, group, flat.param.device))
                    continue
                self._update_params(gi, group, params)

    def _update_params(self, gi, group, params):
        """Update the parameters of group `gi` that have a gradient, one after another (an
        optimizer may share work between them: Adam computes each bias correction once)."""
        for p in params:
            if p.grad is not None:
                self._update(p, p.grad, self.state.setdefault(p, {}), self._numbers(gi, group, p.device))

    def _numbers(self, gi, group, device):
        """The group as `_update` reads it: eagerly the group itself; while a step is traced, the
        options in `hyper_inputs` are 0-d tensors holding their current values (program inputs)."""
        if not self.hyper_inputs or dispatch.tracer() is None:
            return group
        out = _Numbers(group)
        out.raw = _Raw(group, self.hyper_inputs, self._branched)
        for k in self.hyper_inputs:
            v = group.get(k)
            if isinstance(v, tuple):
                out[k] = tuple(self._hyper_tensor(gi, (k, i), x, device) for i, x in enumerate(v))
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = self._hyper_tensor(gi, k, v, device)
        return out

    def _hyper_tensor(self, gi, key, value, device):
        k = (gi, key, str(device))
        t = self._hyper.get(k)
        if t is None:  # made concrete (not traced): it is state the program reads on every call
            data = np.array(float(value), dtype=np.float64)
            t = self._hyper[k] = Tensor._wrap(data if device.type == "cpu" else
                                              device.xp.asarray(data), D.float64, device)
            self._hyper_at[k] = float(value)
        elif t._data is not None:  # (None: already an input of the step being traced)
            t._data[...] = self._hyper_at[k] = float(value)
        return t

    def sync_hyper_inputs(self):
        """Copy the groups' current option values into the tensors compiled steps read (before
        each compiled call); returns the structure a compiled step assumed (see `hyper_inputs`)."""
        for k, t in self._hyper.items():
            gi, key, _ = k
            g = self.param_groups[gi]
            v = g[key[0]][key[1]] if isinstance(key, tuple) else g[key]
            if t._data is not None and self._hyper_at[k] != v:
                t._data[...] = self._hyper_at[k] = v
        if dispatch.tracer() is None:   # a guard's check: plain values, each compared with what the trace assumed
            return [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        hyper, branched = self.hyper_inputs, self._branched
        return [{k: Zeroness(k, v, branched) if k in hyper and _number_or_numbers(v) else v
                 for k, v in g.items() if k != "params"} for g in self.param_groups]

    def input_names(self):
        """{id(tensor): name} of the hyper-parameter tensors compiled steps read, e.g. `lr of param
        group 0`, `betas[1] of param group 0` (what a traced program calls those inputs)."""
        return {id(t): (f"{key[0]}[{key[1]}]" if isinstance(key, tuple) else key) + f" of param group {gi}"
                for (gi, key, _), t in self._hyper.items()}

    def _flat_buffers(self, gi, params):
        """Horizontal fusion: the group's parameters of one dtype and device live as views of one
        flat buffer (and so does their optimizer state), so one update runs over all of them."""
        flats = self._flats.get(gi)
        if dispatch.tracer() is not None and flats is not None:
            return flats  # (a traced step cannot look at the data; eager steps re-check the layout)
        if flats is None or any(not f.holds(self.state) for f in flats) or \
                sorted(id(p) for f in flats for p in f.params) != sorted(id(p) for p in params):
            by_kind = {}
            for p in params:
                by_kind.setdefault((p.dtype.name, str(p.device)), []).append(p)
            flats = self._flats[gi] = [_Flat(ps, self.state) for ps in by_kind.values()]
        return flats

    def _update(self, p, grad, state, group):
        """Apply one update to parameter p (under no_grad), reading and writing its state dict. A
        custom optimizer written PyTorch's way overrides step() instead, and never reaches this."""
        raise NotImplementedError(f"{type(self).__name__} defines neither step() nor _update(p, grad, state, group)")

    def state_dict(self):
        for flats in self._flats.values():
            for f in flats:
                f.expose(self.state)
        index = {}
        groups = []
        for g in self.param_groups:
            entry = {k: v for k, v in g.items() if k != "params"}
            entry["params"] = [index.setdefault(id(p), len(index)) for p in g["params"]]
            groups.append(entry)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state and self.state[p]:
                    state[index[id(p)]] = {k: (v.clone() if isinstance(v, Tensor) else v)
                                           for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ArgumentError("load_state_dict: the saved optimizer has a different number of parameter groups or "
                                "parameters than this one; build the optimizer over the same parameters")
        params = [p for g in self.param_groups for p in g["params"]]
        saved_ids = [i for g in groups for i in g["params"]]
        new_state = {}
        for i, p in zip(saved_ids, params):
            st = state_dict["state"].get(i)
            if st is None:
                continue
            entry = {}
            for k, v in st.items():
                if isinstance(v, Tensor):
                    if v.shape not in (p.shape, ()):
                        raise ShapeError(f"load_state_dict: state '{k}' of parameter {i} has shape {tuple(v.shape)}, "
                                         f"but the parameter has shape {tuple(p.shape)}")
                    v = v.clone().to(p.device)
                    if k != "step" and p.dtype.is_floating_point and v.dtype.is_floating_point:
                        v = v.to(p.dtype)  # as torch: moments follow the parameter's dtype, step counts stay
                elif k == "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    v = tensor(float(v), dtype=D.float32, device=p.device)   # an older checkpoint's count, as torch
                entry[k] = v
            new_state[p] = entry
        for g, saved in zip(self.param_groups, groups):
            g.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})
        self.state = collections.defaultdict(dict, new_state)
        self._flats.clear()
        if self.flat:
            for gi, g in enumerate(self.param_groups):
                self._flat_buffers(gi, g["params"])

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])


class _Numbers(dict):
    """A parameter group as a traced update reads it: options as program inputs; `raw` holds the
    plain options (what the update may branch on)."""
    raw = None


class _Raw(dict):
    """The plain options of a group while a step is traced: reading an option that is a program
    input notes that the traced code branches on it (its zeroness is then guarded)."""
    __slots__ = ("hyper", "branched")

    def __init__(self, group, hyper, branched):
        super().__init__(group)
        self.hyper, self.branched = hyper, branched

    def __getitem__(self, key):
        if key in self.hyper:
            self.branched.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def _all_read(self):   # a walk over the options may branch on any of them
        self.branched.update(k for k in self.hyper if k in self)

    def items(self):
        self._all_read()
        return super().items()

    def values(self):
        self._all_read()
        return super().values()


def _number_or_numbers(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) or \
        (isinstance(v, tuple) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v))


class Zeroness:
    """What a compiled step assumes about an option that is a program input: any value, except
    whether it is zero (per element, for betas) where a traced update of this optimizer branched on
    that (read it from `group.raw`). The set of such options only grows, so the comparison made by
    a guard always covers what its trace branched on, even though the guard's snapshot was taken
    before the update ran."""
    __slots__ = ("key", "zero", "branched")

    def __init__(self, key, value, branched):
        self.key, self.branched = key, branched
        self.zero = _zeroness(value)

    def __eq__(self, other):
        """Equal to the option's current value (a guard's check) or to another Zeroness."""
        t = type(other)
        if t is float or t is int:   # the common case, first (a guard runs on every call)
            return self.zero.__class__ is bool and (self.key not in self.branched or self.zero == (other == 0))
        if t is Zeroness:
            return self.key == other.key and (self.key not in self.branched or self.zero == other.zero)
        if not _number_or_numbers(other) or isinstance(other, tuple) != isinstance(self.zero, tuple):
            return False
        return self.key not in self.branched or self.zero == _zeroness(other)

    __hash__ = None

    def __repr__(self):
        return _show_zeroness(self.zero) if self.key in self.branched else "any value"

    def describe(self, value):
        """The option's current value as this assumption sees it (`0`, `nonzero`)."""
        return _show_zeroness(_zeroness(value)) if _number_or_numbers(value) else repr(value)


def _zeroness(value):
    return tuple(x == 0 for x in value) if isinstance(value, tuple) else value == 0


def _show_zeroness(zero):
    show = {True: "0", False: "nonzero"}
    return "(" + ", ".join(show[z] for z in zero) + ")" if isinstance(zero, tuple) else show[zero]


class _Flat:
    """Parameters of one dtype and device as views of one flat array; per-parameter optimizer
    state as views of flat state arrays (exposed in `optimizer.state` as usual)."""

    def __init__(self, params, state):
        self.params = params
        xp = params[0].device.xp
        sizes = [p.numel() for p in params]
        data = xp.empty(sum(sizes), dtype=params[0].dtype.np)
        self.views, off = [], 0
        for p, n in zip(params, sizes):
            data[off:off + n] = p._data.reshape(-1)
            p._data = data[off:off + n].reshape(p.shape)  # the Parameter object stays the same
            self.views.append(p._data)
            off += n
        self.param = Tensor._wrap(data, params[0].dtype, params[0].device)
        self.sizes, self.state, self.exposed = sizes, {}, {}
        self._gather_state(state)

    def _gather_state(self, state):
        """Flat state from existing per-parameter state (earlier steps, or load_state_dict)."""
        entries = [state.get(p) for p in self.params]
        if not all(entries) or any(e.keys() != entries[0].keys() for e in entries):
            return
        for k, v in entries[0].items():
            if isinstance(v, Tensor) and v.shape == self.params[0].shape or \
                    isinstance(v, Tensor) and all(e[k].shape == p.shape for e, p in zip(entries, self.params)):
                self.state[k] = cat([e[k].reshape(-1) for e in entries])
            else:
                self.state[k] = v.clone() if isinstance(v, Tensor) else v

    def holds(self, state):
        """Still valid: the parameters are our views and nobody replaced their state."""
        if any(p._data is not v for p, v in zip(self.params, self.views)):
            return False
        return all(state.get(p, {}).get(k) is t for p in self.params for k, t in self.exposed.get(id(p), {}).items())

    def expose(self, state):
        """Per-parameter views of the flat state in `state` (what state_dict reads)."""
        if any(isinstance(v, Tensor) and v._data is None for v in self.state.values()):
            return  # still symbolic: inside a trace
        for i, p in enumerate(self.params):
            off, n = sum(self.sizes[:i]), self.sizes[i]
            entry = {}
            for k, v in self.state.items():
                if isinstance(v, Tensor) and v.ndim == 1 and v.shape[0] == sum(self.sizes):
                    view = Tensor._wrap(v._data[off:off + n].reshape(p.shape), v.dtype, v.device)
                    view._version = v._version
                    entry[k] = view
                else:
                    entry[k] = v
            state[p] = entry
            self.exposed[id(p)] = dict(entry)
