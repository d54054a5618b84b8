"""torch.nn.modules.dropout."""
from ..activation import Dropout1d, Dropout2d, Dropout3d  # noqa: F401
from ..layers import Dropout, DropoutBase as _DropoutNd  # noqa: F401
from ..layers_more import AlphaDropout, FeatureAlphaDropout  # noqa: F401
