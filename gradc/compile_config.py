"""Process-wide settings gradc.compile reads on every call: torch._dynamo.config's names that
scripts set (cache_size_limit, suppress_errors, automatic_dynamic_shapes) and
torch.compiler.set_stance's stance."""
import contextlib
import functools
import warnings


class _Config:
    """torch._dynamo.config: cache_size_limit is the traces a compiled function keeps before it runs
    new signatures eagerly (its cache_limit= overrides it); suppress_errors=True makes an error of
    the compiler itself (lowering, code generation) run that call eagerly with a warning instead of
    raising; automatic_dynamic_shapes=False stops a size change from making that dimension symbolic.
    recompile_limit is cache_size_limit's newer name. torch's settings for what gradc does not do
    (capturing .item() into graphs, splitting graphs for DDP, its logging) keep the value they are
    given, with a warning that it changes nothing; any other name is refused (a typo, likely)."""
    _DEFAULTS = {"cache_size_limit": 8, "suppress_errors": False, "automatic_dynamic_shapes": True}
    _ALIASES = {"recompile_limit": "cache_size_limit"}
    _WITHOUT_EFFECT = {"capture_scalar_outputs": False, "capture_dynamic_output_shape_ops": False,
                       "optimize_ddp": True, "verbose": False, "accumulated_cache_size_limit": 256,
                       "inline_inbuilt_nn_modules": True, "guard_nn_modules": False, "assume_static_by_default": True}

    def __init__(self):
        object.__setattr__(self, "_values", dict(self._DEFAULTS, **self._WITHOUT_EFFECT))

    def __getattr__(self, name):
        try:
            return self.__dict__["_values"][self._ALIASES.get(name, name)]
        except KeyError:
            raise AttributeError(f"gradc._dynamo.config has no setting {name!r}; it has "
                                 f"{', '.join(self._DEFAULTS)}") from None

    def __setattr__(self, name, value):
        name = self._ALIASES.get(name, name)
        if name in self._WITHOUT_EFFECT:
            warnings.warn(f"gradc._dynamo.config.{name} changes nothing in gradc (it has no TorchDynamo graph "
                          "breaks, DDP graph splitting or Dynamo logs); the value is kept", stacklevel=2)
            self._values[name] = value
            return
        if name not in self._DEFAULTS:
            raise AttributeError(f"gradc._dynamo.config has no setting {name!r} (it has {', '.join(self._DEFAULTS)}); "
                                 "setting it would change nothing in gradc")
        if name == "cache_size_limit" and not (isinstance(value, int) and value >= 0):
            raise ValueError(f"cache_size_limit must be a non-negative int, got {value!r}")
        self._values[name] = value if name == "cache_size_limit" else bool(value)

    @contextlib.contextmanager
    def patch(self, **changes):
        """with config.patch(cache_size_limit=64): ... (restored afterwards)."""
        old = {k: getattr(self, k) for k in changes}
        for k, v in changes.items():
            setattr(self, k, v)
        try:
            yield self
        finally:
            for k, v in old.items():
                setattr(self, k, v)


config = _Config()
STANCES = ("default", "force_eager", "eager_on_recompile", "fail_on_recompile")
_stance = ["default"]


def stance():
    return _stance[0]


class set_stance:
    """torch.compiler.set_stance: "default"; "force_eager" (compiled functions run their Python
    eagerly); "eager_on_recompile" (what would trace again runs eagerly instead); "fail_on_recompile"
    (what would trace again raises). It applies at once, and as a context manager or decorator
    only inside it."""

    def __init__(self, stance="default", *, skip_guard_eval_unsafe=False, force_backend=None):
        if stance not in STANCES:
            raise ValueError(f"set_stance: stance must be one of {', '.join(map(repr, STANCES))}, got {stance!r}")
        if skip_guard_eval_unsafe or force_backend is not None:
            raise ValueError("set_stance: skip_guard_eval_unsafe and force_backend are not supported by gradc "
                             "(guards are always checked; choose the backend with gradc.compile(backend=...))")
        self._previous, _stance[0] = _stance[0], stance

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _stance[0] = self._previous
        return False

    def __call__(self, fn):
        chosen = _stance[0]
        _stance[0] = self._previous   # as a decorator, it applies while fn runs

        @functools.wraps(fn)
        def with_stance(*args, **kwargs):
            with set_stance(chosen):
                return fn(*args, **kwargs)
        return with_stance
