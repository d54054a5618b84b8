"""gradc.nn.utils: gradient clipping, flat parameter vectors, packed sequences, weight and
spectral normalisation (hooks and parametrizations), parametrize, stateless and skip_init, as in
torch.nn.utils."""
from .clip_grad import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from .convert_parameters import parameters_to_vector, vector_to_parameters
from . import rnn
from .rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence, pad_sequence, pack_sequence
from .weight_norm import weight_norm, remove_weight_norm, spectral_norm, remove_spectral_norm
from . import fusion, parametrize, parametrizations, stateless
from .fusion import fuse_conv_bn_eval, fuse_conv_bn_weights, fuse_linear_bn_eval, fuse_linear_bn_weights
from .init import skip_init

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm",
           "parameters_to_vector", "vector_to_parameters", "rnn", "PackedSequence", "pack_padded_sequence",
           "pad_packed_sequence", "pad_sequence", "pack_sequence", "weight_norm", "remove_weight_norm",
           "spectral_norm", "remove_spectral_norm", "parametrize", "parametrizations", "stateless", "skip_init",
           "fusion", "fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval", "fuse_linear_bn_weights"]
