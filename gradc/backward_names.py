"""What a result's grad_fn prints as (`tensor(2.3026, grad_fn=<NllLossBackward0>)`): PyTorch's name
for the public function that made it, not the name of the last primitive of gradc's composite (a
cross-entropy ends in a division). `install` wraps each listed function and Tensor method to label
the node of its result; a result that is one of its arguments (a no-op view) is left alone."""
import functools

from .autograd import Node


def _by_dim(zero, one):
    return lambda *args, **kwargs: one if len(args) > 1 or kwargs.get("dim") is not None else zero


def _linear(input, weight, bias=None):
    return "MmBackward0" if bias is None else ("AddmmBackward0" if input.ndim == 2 else "ViewBackward0")


def _matmul(a, b):
    kinds = {(2, 2): "MmBackward0", (1, 1): "DotBackward0", (2, 1): "MvBackward0"}
    return kinds.get((a.ndim, getattr(b, "ndim", 0)), "UnsafeViewBackward0")


def _extreme(name):   # max() of everything, or max(dim)'s values
    return lambda *args, **kwargs: f"{name}Backward0" if len(args) > 1 or "dim" in kwargs else f"{name}Backward1"


def _index(self, key):
    return "SliceBackward0" if isinstance(key, slice) else "SelectBackward0"


# name -> PyTorch's grad_fn name (or a function of the call's arguments giving it)
TENSOR_NAMES = {
    "mean": _by_dim("MeanBackward0", "MeanBackward1"), "sum": _by_dim("SumBackward0", "SumBackward1"),
    "relu": "ReluBackward0", "softmax": "SoftmaxBackward0", "log_softmax": "LogSoftmaxBackward0",
    "cat": "CatBackward0", "concat": "CatBackward0", "stack": "StackBackward0", "t": "TBackward0",
    "transpose": "TransposeBackward0", "permute": "PermuteBackward0", "view": "ViewBackward0",
    "reshape": "ViewBackward0", "flatten": "ViewBackward0", "unsqueeze": "UnsqueezeBackward0",
    "squeeze": _by_dim("SqueezeBackward0", "SqueezeBackward1"), "__getitem__": _index, "mm": "MmBackward0",
    "matmul": _matmul, "__matmul__": _matmul, "max": _extreme("Max"), "min": _extreme("Min"),
    "split": "SplitBackward0", "chunk": "SplitBackward0", "unbind": "UnbindBackward0", "pow": "PowBackward0",
    "__pow__": "PowBackward0", "clone": "CloneBackward0", "contiguous": "CloneBackward0",
    "masked_fill": "MaskedFillBackward0", "clamp": "ClampBackward1", "clip": "ClampBackward1", "norm": "LinalgVectorNormBackward0",
    "std": "StdBackward0", "var": "VarBackward0", "logsumexp": "LogsumexpBackward0", "amax": "AmaxBackward0",
    "index_select": "IndexSelectBackward0", "repeat": "RepeatBackward0", "__rsub__": "RsubBackward1",
    "exp": "ExpBackward0", "log": "LogBackward0", "tanh": "TanhBackward0", "sigmoid": "SigmoidBackward0",
    "sqrt": "SqrtBackward0", "abs": "AbsBackward0", "__neg__": "NegBackward0", "gather": "GatherBackward0",
}
FUNCTIONAL_NAMES = {
    "cross_entropy": "NllLossBackward0", "nll_loss": "NllLossBackward0", "mse_loss": "MseLossBackward0",
    "l1_loss": "MeanBackward0", "binary_cross_entropy": "BinaryCrossEntropyBackward0",
    "binary_cross_entropy_with_logits": "BinaryCrossEntropyWithLogitsBackward0",
    "smooth_l1_loss": "SmoothL1LossBackward0", "linear": _linear, "relu": "ReluBackward0",
    "softmax": "SoftmaxBackward0", "log_softmax": "LogSoftmaxBackward0", "layer_norm": "NativeLayerNormBackward0",
    "batch_norm": "NativeBatchNormBackward0", "embedding": "EmbeddingBackward0", "gelu": "GeluBackward0",
    "silu": "SiluBackward0", "leaky_relu": "LeakyReluBackward0", "conv1d": "ConvolutionBackward0",
    "conv2d": "ConvolutionBackward0", "conv3d": "ConvolutionBackward0",
}


@functools.lru_cache(maxsize=None)   # (one wrapper per function: aliases stay the same object)
def named(fn, name):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        out = fn(*args, **kwargs)
        if isinstance(out, tuple):   # split's pieces, max(dim)'s values and indices
            for t in out:
                _label(t, args, kwargs, name)
        elif getattr(out, "_grad_fn", None) is not None:
            _label(out, args, kwargs, name)
        return out
    return call


def _label(t, args, kwargs, name):
    node = getattr(t, "_grad_fn", None)
    if type(node) is Node and not any(t is a for a in args):
        node.label = name if isinstance(name, str) else name(*args, **kwargs)


def install(Tensor, namespace, functional):
    """Label the results of gradc's functions and Tensor methods, and of nn.functional's (an alias,
    gradc.absolute for gradc.abs, gets the same wrapper)."""
    for table, targets in ((TENSOR_NAMES, (Tensor, namespace)), (FUNCTIONAL_NAMES, (vars(functional),))):
        for target in targets:
            entries = target if isinstance(target, dict) else vars(target)
            labels = {id(entries[n]): label for n, label in reversed(table.items()) if n in entries}
            for key, value in list(entries.items()):
                if id(value) in labels:
                    wrapped = named(value, labels[id(value)])
                    target.__setitem__(key, wrapped) if isinstance(target, dict) else setattr(target, key, wrapped)
