"""gradc.amp: mixed precision. `autocast` runs each primitive in the dtype of its autocast policy,
the `amp` field of its op-table entry: matmul in float16 (so linear and batched matmul too); the
reductions sum and max, exp, log, pow and sub in float32 (so softmax, log_softmax, layer_norm and
the losses, which are built from them); everything else follows its inputs. `policy()` lists it.
`GradScaler` scales the loss so float16 gradients do not underflow. gradc.compile(amp="fp16")
traces under autocast, so compiled programs get the same casts."""
from ..ops import OPS
from .autocast_mode import autocast, cast_operands, device_autocast, get_autocast_dtype, is_autocast_enabled
from .grad_scaler import AmpError, GradScaler

__all__ = ["autocast", "device_autocast", "GradScaler", "AmpError", "is_autocast_enabled", "get_autocast_dtype",
           "policy"]


def policy():
    """The autocast policy of every primitive, read from the op table: {"fp16": [...], "fp32": [...],
    "follow": [...]}, names sorted."""
    table = {"fp16": [], "fp32": [], "follow": []}
    for name, prim in sorted(OPS.items()):
        table[prim.amp].append(name)
    return table
