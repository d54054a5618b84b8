"""torch.nn.utils.stateless: functional_call under its older name (gradc.func.functional_call)."""
from ...func import functional_call

__all__ = ["functional_call"]
