"""torch.nn.modules.container."""
from ..container import ModuleDict, ParameterDict, ParameterList  # noqa: F401
from ..layers import ModuleList, Sequential  # noqa: F401
