"""torch.nn.modules.sparse."""
from ..layers import Embedding  # noqa: F401
from ..layers_more import EmbeddingBag  # noqa: F401
