"""torch.nn.utils.parametrizations: weight_norm and spectral_norm as parametrizations (see
parametrize), with PyTorch's state-dict names: `parametrizations.weight.original0` (g) and
`original1` (v) for weight_norm; `parametrizations.weight.original` and the power-iteration buffers
`parametrizations.weight.0._u`, `._v` for spectral_norm; orthogonal (in its own module) keeps
`parametrizations.weight.original` and `parametrizations.weight.0.base`."""
from ...errors import GradcError
from ...functions import randn
from ...grad_mode import no_grad
from .. import functional as F
from ..module import Module
from .orthogonal import orthogonal
from .parametrize import register_parametrization
from .weight_norm import default_dim, norm_except_dim


class _WeightNorm(Module):
    def __init__(self, dim=0):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g, weight_v):
        return weight_v * (weight_g / norm_except_dim(weight_v, 2, self.dim))

    def right_inverse(self, weight):
        return norm_except_dim(weight, 2, self.dim), weight


def weight_norm(module, name="weight", dim=0):
    """weight = g * v / ||v|| (norm over every dimension but `dim`; dim=None: over all of it)."""
    register_parametrization(module, name, _WeightNorm(dim), unsafe=True)
    return module


class _SpectralNorm(Module):
    def __init__(self, weight, n_power_iterations=1, dim=0, eps=1e-12):
        super().__init__()
        ndim = weight.ndim
        if not -ndim <= dim < ndim:
            raise GradcError(f"spectral_norm: dim={dim} is out of range for a weight of {ndim} dimensions")
        if n_power_iterations <= 0:
            raise GradcError(f"spectral_norm: n_power_iterations must be positive, got {n_power_iterations}")
        self.dim = dim if dim >= 0 else dim + ndim
        self.eps = eps
        if ndim > 1:
            self.n_power_iterations = n_power_iterations
            mat = self._matrix(weight)
            h, w = mat.shape
            with no_grad():
                self.register_buffer("_u", F.normalize(randn(h, dtype=weight.dtype, device=weight.device), dim=0,
                                                       eps=eps))
                self.register_buffer("_v", F.normalize(randn(w, dtype=weight.dtype, device=weight.device), dim=0,
                                                       eps=eps))
            self._power_method(mat, 15)

    def _matrix(self, weight):
        if self.dim != 0:
            weight = weight.permute(self.dim, *[d for d in range(weight.ndim) if d != self.dim])
        return weight.reshape(weight.shape[0], -1)

    def _power_method(self, mat, n):
        with no_grad():
            mat = mat.detach()
            for _ in range(n):
                self._u.copy_(F.normalize(mat @ self._v, dim=0, eps=self.eps))
                self._v.copy_(F.normalize(mat.T @ self._u, dim=0, eps=self.eps))

    def forward(self, weight):
        if weight.ndim == 1:
            return F.normalize(weight, dim=0, eps=self.eps)
        mat = self._matrix(weight)
        if self.training:
            self._power_method(mat, self.n_power_iterations)
        u, v = self._u.clone(), self._v.clone()
        return weight / (u * (mat @ v)).sum()

    def right_inverse(self, value):
        return value


def spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
    """weight = original / sigma, sigma its largest singular value by power iteration (u and v
    updated while training; eval mode reuses them)."""
    weight = getattr(module, name, None)
    if weight is None:
        raise GradcError(f"spectral_norm: {type(module).__name__} has no parameter or buffer named '{name}'")
    register_parametrization(module, name, _SpectralNorm(weight, n_power_iterations,
                                                         default_dim(module) if dim is None else dim, eps))
    return module


__all__ = ["orthogonal", "spectral_norm", "weight_norm"]
