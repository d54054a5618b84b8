"""skip_init (torch.nn.utils.skip_init): build a module without running its parameter
initialisation, for weights that are loaded right after."""
import inspect

from ...errors import GradcError
from ..module import Module


def skip_init(module_cls, *args, **kwargs):
    """module_cls(*args, **kwargs) with reset_parameters() skipped: the parameters hold whatever
    their allocation left (as torch.empty), to be overwritten (e.g. by load_state_dict)."""
    if not (isinstance(module_cls, type) and issubclass(module_cls, Module)):
        raise GradcError(f"skip_init expects an nn.Module class, got {module_cls!r}")
    if "device" not in inspect.signature(module_cls).parameters:
        raise GradcError(f"skip_init: {module_cls.__name__} must take a 'device' argument to skip its "
                         "initialisation (as in PyTorch)")
    if not callable(getattr(module_cls, "reset_parameters", None)):
        raise GradcError(f"skip_init: {module_cls.__name__} has no reset_parameters() to skip; construct it "
                         "directly")
    quiet = type(module_cls.__name__, (module_cls,), {"reset_parameters": lambda self: None})
    module = quiet(*args, **kwargs)
    module.__class__ = module_cls
    return module
