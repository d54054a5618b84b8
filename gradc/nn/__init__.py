"""gradc.nn: modules, parameters and the functional API."""
from .module import Module, Parameter
from .layers import (Identity, Linear, Sequential, ModuleList, ReLU, GELU, Tanh, Sigmoid, Softmax, Flatten,
                     LayerNorm, Embedding, Dropout, MSELoss, CrossEntropyLoss, NLLLoss)
from . import functional, init
from .loss_modules import (L1Loss, SmoothL1Loss, HuberLoss, KLDivLoss, BCELoss, BCEWithLogitsLoss,  # noqa: F401
                           CosineSimilarity)
from . import utils
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d, Unfold, Fold
from .pooling import (MaxPool1d, MaxPool2d, MaxPool3d, MaxUnpool1d, MaxUnpool2d, MaxUnpool3d, AvgPool1d,
                      AvgPool2d, AvgPool3d, AdaptiveAvgPool1d, AdaptiveAvgPool2d,
                      AdaptiveMaxPool1d, AdaptiveMaxPool2d, AdaptiveMaxPool3d, Upsample, UpsamplingNearest2d,
                      UpsamplingBilinear2d,
                      ZeroPad1d, ZeroPad2d, ConstantPad1d, ConstantPad2d, ReflectionPad1d, ReflectionPad2d,
                      ReplicationPad1d, ReplicationPad2d, CircularPad1d, CircularPad2d, ZeroPad3d, ConstantPad3d,
                      ReflectionPad3d, ReplicationPad3d, CircularPad3d)
from .normalization import (BatchNorm1d, BatchNorm2d, BatchNorm3d, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d,
                            GroupNorm, RMSNorm, SyncBatchNorm)
from .rnn import RNNBase, RNN, LSTM, GRU, RNNCellBase, RNNCell, LSTMCell, GRUCell
from .activation import (LeakyReLU, ReLU6, SiLU, Mish, SELU, CELU, ELU, Hardsigmoid, Hardswish, Softplus,
                         Hardtanh, Threshold, PReLU, LogSigmoid, Softsign, Tanhshrink, Hardshrink, Softshrink, GLU,
                         LogSoftmax, Softmin, Softmax2d, Dropout1d, Dropout2d, Dropout3d, PixelShuffle, PixelUnshuffle)
from .container import ModuleDict, ParameterList, ParameterDict, Unflatten
from .attention import MultiheadAttention
from .transformer import (TransformerEncoderLayer, TransformerEncoder, TransformerDecoderLayer,  # noqa: F401
                          TransformerDecoder, Transformer)
from .loss_modules_more import (MarginRankingLoss, HingeEmbeddingLoss, CosineEmbeddingLoss,  # noqa: F401
                                SoftMarginLoss, MultiLabelSoftMarginLoss, MultiMarginLoss, MultiLabelMarginLoss,
                                TripletMarginLoss, TripletMarginWithDistanceLoss, GaussianNLLLoss, PoissonNLLLoss,
                                CTCLoss, PairwiseDistance)
from .layers_more import (Bilinear, EmbeddingBag, LazyLinear, LazyConv1d, LazyConv2d,  # noqa: F401
                          LocalResponseNorm, LPPool1d, LPPool2d, LPPool3d, AlphaDropout, FeatureAlphaDropout, RReLU,
                          ChannelShuffle, FractionalMaxPool2d, AdaptiveAvgPool3d)
from . import parallel
from .parallel import DataParallel
from . import modules, parameter  # noqa: E402,F401  (torch's module paths: nn.modules.utils._pair, ...)
