"""The Optimizer base: parameter groups, per-parameter state, zero_grad and state_dict. Updates are
written with tensor ops under no_grad, so a compiled training step captures them as graph work."""
import abc
import copy

from ..autograd import no_grad
from ..errors import GradcError, ShapeError
from ..tensor import Tensor, _tracer, zeros_like


class Optimizer(abc.ABC):
    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        params = list(params)
        if not params:
            raise GradcError("optimizer got an empty parameter list; pass model.parameters()")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        self.state = {}
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group):
        group = dict(group)
        group["params"] = list(group["params"])
        for p in group["params"]:
            if not isinstance(p, Tensor) or not p.is_leaf:
                raise GradcError("optimizers can only optimize leaf tensors (parameters); got a computed tensor")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:  # zeros, not grad * 0.0: an inf/nan gradient would stay nan
                        p.grad = zeros_like(p.grad)

    def step(self):
        if _tracer[0] is not None:
            _tracer[0].watch_optimizer(self)
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._update(p, p.grad, self.state.setdefault(p, {}), group)

    @abc.abstractmethod
    def _update(self, p, grad, state, group):
        """Apply one update to parameter p (under no_grad), reading and writing its state dict."""

    def state_dict(self):
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
            raise GradcError("load_state_dict: the saved optimizer has a different number of parameter groups or "
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
                        raise ShapeError(f"load_state_dict: state '{k}' of parameter {i} has shape {v.shape}, "
                                         f"but the parameter has shape {p.shape}")
                    v = v.clone().to(p.device)
                entry[k] = v
            new_state[p] = entry
        for g, saved in zip(self.param_groups, groups):
            g.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})
        self.state = new_state

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])
