"""What gradc.compile(module) returns: an nn.Module over the original, whose forward runs through
the CompiledFunction that gradc.compile made (gradc.compiler)."""
from .nn.module import Module

_FORWARDED = frozenset(("lower", "trace", "trace_count", "recompile_reasons", "backend", "amp", "dynamic", "fullgraph",
                        "dump", "fuse", "cache_limit", "mode", "fn"))

_OWN = frozenset(("_orig_mod", "_compiled", "training"))   # what a CompiledModule keeps for itself


class CompiledModule(Module):
    """What gradc.compile(module) returns: an nn.Module that wraps the original one and runs its
    forward through a CompiledFunction. Parameters, buffers and submodules are the original's (the
    same tensors); `state_dict()` keys carry PyTorch's `_orig_mod.` prefix (load_state_dict expects
    it; `compiled._orig_mod.state_dict()` gives the plain keys). train()/eval()/to() reach the
    original; any other attribute is read from the original module, except the compiled function's
    own (`trace_count`, `recompile_reasons`, `lower`, `trace`, ...)."""

    def __init__(self, module, compiled):
        super().__init__()
        self._orig_mod = module
        object.__setattr__(self, "_compiled", compiled)

    def forward(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

    def __getattr__(self, name):
        d = self.__dict__
        if name in _FORWARDED and "_compiled" in d:
            return getattr(d["_compiled"], name)
        try:
            return Module.__getattr__(self, name)
        except AttributeError:
            if "_modules" in d and "_orig_mod" in d["_modules"]:
                return getattr(d["_modules"]["_orig_mod"], name)
            raise

    def __setattr__(self, name, value):
        # as torch's OptimizedModule: an attribute set on the wrapper is set on the original module
        # (its forward reads it there), except the wrapper's own and what its class defines
        if name in _OWN or hasattr(type(self), name) or "_orig_mod" not in self.__dict__.get("_modules", ()):
            return Module.__setattr__(self, name, value)
        setattr(self._orig_mod, name, value)

    def __delattr__(self, name):
        if name in _OWN or hasattr(type(self), name):
            return Module.__delattr__(self, name)
        delattr(self._orig_mod, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(dir(self._orig_mod)))

    def __getitem__(self, index):  # containers (Sequential, ModuleList) stay indexable
        return self._orig_mod[index]

    def __len__(self):
        return len(self._orig_mod)

    def __iter__(self):
        return iter(self._orig_mod)

    def __repr__(self):
        return f"CompiledModule({self._orig_mod!r})"
