"""torch.fx's `wrap`, which model files call at import time (torchvision's Swin transformer) to keep
a function as one call in an FX graph. gradc has no FX graphs: its tracer runs every Python
function, so `wrap` gives back what it is handed."""


def wrap(fn_or_name):
    return fn_or_name
