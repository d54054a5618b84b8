"""The classic hook-based reparametrisations, as torch.nn.utils.weight_norm / spectral_norm:
the parameter is replaced by others (`weight_g` and `weight_v`; `weight_orig` with the buffers
`weight_u` and `weight_v`), and a forward pre-hook recomputes `module.weight` from them before
every call, so state dicts carry PyTorch's names. Written with tensor ops: gradients flow to the
new parameters, and a compiled forward recomputes the weight as part of its program (spectral
norm's power iteration updates its buffers in place, as state)."""
from ... import dispatch
from ...errors import GradcError
from ...functions import randn
from ...grad_mode import no_grad
from .. import functional as F
from ..conv import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from ..module import Module, Parameter, RemovableHandle


def norm_except_dim(v, pow=2, dim=0):
    """The p-norm of v over every dimension but `dim`, keeping the dimensions (size 1); dim=-1: the
    norm of all of v (a 0-d tensor), as in PyTorch."""
    if dim == -1:
        return (v.abs() ** pow).sum() ** (1.0 / pow)
    if dim < 0 or dim >= v.ndim:
        raise GradcError(f"weight_norm: dim={dim} is out of range for a weight of shape {tuple(v.shape)}; pass a "
                         f"dimension in [0, {v.ndim - 1}], or None for the norm of the whole weight")
    dims = tuple(d for d in range(v.ndim) if d != dim)
    if not dims:   # a 1-D weight (a bias): one norm per element, not sum(dim=()) over all of it
        return v.abs()
    return (v.abs() ** pow).sum(dims, keepdim=True) ** (1.0 / pow) if pow != 2 else (v * v).sum(dims, keepdim=True).sqrt()


def _weight_norm(v, g, dim):
    return v * (g / norm_except_dim(v, 2, dim))


def _hooks(module, cls):
    return [h for _, kind, h, _ in module.__dict__.get("_forward_hooks", ()) if kind == "pre" and isinstance(h, cls)]


def _remove_hook(module, hook):
    for hid, kind, h, _ in module.__dict__.get("_forward_hooks", ()):
        if h is hook or (isinstance(h, _Restore) and h.hook is hook):
            handle = RemovableHandle(module)
            handle.id = hid
            handle.remove()


class _Recompute:
    """A pre-hook that sets `module.<name>` from the parameters it is computed from. While a call is
    traced, the traced weight must not outlive the call (stored on the module it would be state
    the program created, and every call would trace again): the paired post-hook puts back the
    eager value it replaced."""

    def __call__(self, module, inputs):
        if dispatch.tracer() is not None:
            self.before = module.__dict__.get(self.name)
        object.__setattr__(module, self.name, self.compute(module))

    def register(self, module):
        module.register_forward_pre_hook(self)
        module.register_forward_hook(_Restore(self))


class _Restore:
    def __init__(self, hook):
        self.hook = hook

    def __call__(self, module, inputs, output):
        if dispatch.tracer() is not None:
            object.__setattr__(module, self.hook.name, self.hook.before)
            self.hook.before = None


def _take_parameter(module, name, who):
    if not isinstance(module, Module):
        raise GradcError(f"{who}: expected an nn.Module, got {type(module).__name__}")
    weight = dict(module.named_parameters(recurse=False)).get(name)
    if not isinstance(weight, Parameter):
        raise GradcError(f"{who}: {type(module).__name__} has no parameter named '{name}'; pass name= one of "
                         f"{sorted(k for k, p in module.named_parameters(recurse=False))}")
    return weight


class WeightNorm(_Recompute):
    """The forward pre-hook of weight_norm: weight = v * g / ||v|| (norm over all dimensions but dim)."""

    def __init__(self, name, dim):
        self.name, self.dim = name, -1 if dim is None else dim

    def compute_weight(self, module):
        return _weight_norm(getattr(module, self.name + "_v"), getattr(module, self.name + "_g"), self.dim)

    compute = compute_weight


def weight_norm(module, name="weight", dim=0):
    """Replace `module.<name>` by `<name>_g` (the norms) and `<name>_v` (the directions), recomputed
    into `module.<name>` before each forward. dim=None normalises over the whole tensor."""
    if any(h.name == name for h in _hooks(module, WeightNorm)):
        raise GradcError(f"weight_norm: '{name}' of {type(module).__name__} already has a weight_norm hook; "
                         "remove it first with remove_weight_norm")
    weight = _take_parameter(module, name, "weight_norm")
    fn = WeightNorm(name, dim)
    with no_grad():
        g = norm_except_dim(weight, 2, fn.dim)
    delattr(module, name)
    module.register_parameter(name + "_g", Parameter(g.detach()))
    module.register_parameter(name + "_v", Parameter(weight.detach()))
    object.__setattr__(module, name, fn.compute_weight(module))
    fn.register(module)
    return module


def remove_weight_norm(module, name="weight"):
    """Undo weight_norm: `module.<name>` becomes a parameter again, holding the current weight."""
    for fn in _hooks(module, WeightNorm):
        if fn.name == name:
            with no_grad():
                weight = fn.compute_weight(module)
            _remove_hook(module, fn)
            module.__dict__.pop(name, None)
            delattr(module, name + "_g")
            delattr(module, name + "_v")
            module.register_parameter(name, Parameter(weight.detach()))
            return module
    raise GradcError(f"remove_weight_norm: weight_norm of '{name}' not found in {type(module).__name__}")


class SpectralNorm(_Recompute):
    """The forward pre-hook of spectral_norm: weight = weight_orig / sigma, sigma estimated by power
    iteration (u, v updated in place while training; eval mode reuses them)."""

    def __init__(self, name="weight", n_power_iterations=1, dim=0, eps=1e-12):
        if n_power_iterations <= 0:
            raise GradcError(f"spectral_norm: n_power_iterations must be positive, got {n_power_iterations}")
        self.name, self.dim, self.n_power_iterations, self.eps = name, dim, n_power_iterations, eps

    def reshape_weight_to_matrix(self, weight):
        if self.dim != 0:
            weight = weight.permute(self.dim, *[d for d in range(weight.ndim) if d != self.dim])
        return weight.reshape(weight.shape[0], -1)

    def compute_weight(self, module, do_power_iteration):
        weight = getattr(module, self.name + "_orig")
        u, v = getattr(module, self.name + "_u"), getattr(module, self.name + "_v")
        mat = self.reshape_weight_to_matrix(weight)
        if do_power_iteration:
            with no_grad():
                for _ in range(self.n_power_iterations):
                    v.copy_(F.normalize(mat.detach().T @ u, dim=0, eps=self.eps))
                    u.copy_(F.normalize(mat.detach() @ v, dim=0, eps=self.eps))
            u, v = u.clone(), v.clone()
        sigma = (u * (mat @ v)).sum()
        return weight / sigma

    def compute(self, module):
        return self.compute_weight(module, do_power_iteration=module.training)


def default_dim(module):
    return 1 if isinstance(module, (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)) else 0


def spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
    """Replace `module.<name>` by `<name>_orig` and the power-iteration buffers `<name>_u`,
    `<name>_v`; before each forward `module.<name>` = `<name>_orig` / its largest singular value."""
    if any(h.name == name for h in _hooks(module, SpectralNorm)):
        raise GradcError(f"spectral_norm: '{name}' of {type(module).__name__} already has a spectral_norm hook; "
                         "remove it first with remove_spectral_norm")
    weight = _take_parameter(module, name, "spectral_norm")
    fn = SpectralNorm(name, n_power_iterations, default_dim(module) if dim is None else dim, eps)
    with no_grad():
        mat = fn.reshape_weight_to_matrix(weight)
        h, w = mat.shape
        u = F.normalize(randn(h, dtype=weight.dtype, device=weight.device), dim=0, eps=eps)
        v = F.normalize(randn(w, dtype=weight.dtype, device=weight.device), dim=0, eps=eps)
    delattr(module, name)
    module.register_parameter(name + "_orig", weight)
    object.__setattr__(module, name, weight.detach())
    module.register_buffer(name + "_u", u)
    module.register_buffer(name + "_v", v)
    fn.register(module)
    return module


def remove_spectral_norm(module, name="weight"):
    """Undo spectral_norm: `module.<name>` becomes a parameter holding the current normalised weight."""
    for fn in _hooks(module, SpectralNorm):
        if fn.name == name:
            with no_grad():
                weight = fn.compute_weight(module, do_power_iteration=False)
            _remove_hook(module, fn)
            module.__dict__.pop(name, None)
            for suffix in ("_u", "_v", "_orig"):
                delattr(module, name + suffix)
            module.register_parameter(name, Parameter(weight.detach()))
            return module
    raise GradcError(f"remove_spectral_norm: spectral_norm of '{name}' not found in {type(module).__name__}")
