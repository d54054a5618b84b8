"""torch's top-level spellings of nn functions (torch.conv2d, torch.layer_norm, torch.dropout(input,
p, train), torch.embedding(weight, indices)): the functions of gradc.nn.functional under the
names and argument orders that torch's namespace gives them."""
from . import functional as F

# the same signature as in torch.nn.functional (or a prefix of torch's)
from .functional import (adaptive_avg_pool1d, avg_pool1d, bilinear, celu, celu_, channel_shuffle, conv1d,  # noqa: F401
                         conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d, cosine_similarity,
                         group_norm, hardshrink, layer_norm, max_pool1d, max_pool2d, max_pool3d, pairwise_distance,
                         pixel_shuffle, pixel_unshuffle, prelu, relu_, rrelu, rrelu_, selu, selu_, threshold,
                         threshold_)


def dropout(input, p, train):
    return F.dropout(input, p, train)


def alpha_dropout(input, p, train):
    return F.alpha_dropout(input, p, train)


def feature_alpha_dropout(input, p, train):
    return F.feature_alpha_dropout(input, p, train)


def embedding(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    """torch.embedding takes the table first, and padding_idx=-1 for none."""
    return F.embedding(indices, weight, None if padding_idx == -1 else padding_idx, None, 2.0, scale_grad_by_freq, sparse)
