"""All parameters as one flat vector and back (torch.nn.utils.parameters_to_vector and
vector_to_parameters)."""
from ...errors import DeviceError, GradcError, ShapeError
from ...functions import cat
from ...grad_mode import no_grad
from ...tensor import Tensor


def _params(parameters):
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise GradcError(f"expected parameters (tensors), got {type(p).__name__}")
    devices = {str(p.device) for p in params}
    if len(devices) > 1:
        raise DeviceError(f"the parameters live on different devices ({', '.join(sorted(devices))}); move the model "
                          "to one device first")
    return params


def parameters_to_vector(parameters):
    """One 1-d tensor holding every parameter, flattened, in order (differentiable, like torch)."""
    params = _params(parameters)
    if not params:
        raise GradcError("parameters_to_vector got no parameters")
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of the 1-d `vec` into the parameters (their shapes, in order)."""
    if not isinstance(vec, Tensor):
        raise GradcError(f"vector_to_parameters expects a tensor, got {type(vec).__name__}")
    params = _params(parameters)
    need = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.shape[0] != need:
        raise ShapeError(f"vector_to_parameters: the vector has shape {tuple(vec.shape)}, but the parameters hold {need} "
                         f"values; pass a 1-d tensor of {need} elements (parameters_to_vector's layout)")
    off = 0
    with no_grad():
        for p in params:
            n = p.numel()
            p.copy_(vec[off:off + n].reshape(p.shape).to(p.device))
            off += n
