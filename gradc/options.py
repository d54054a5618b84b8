"""Process-wide options PyTorch scripts set: how tensors print (torch.set_printoptions) and the
deterministic-algorithms switch (every gradc kernel is deterministic already: reductions combine
in a fixed order on every backend and thread count, so the switch has nothing to turn off)."""
import math

_PROFILES = {"default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
             "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
             "full": dict(precision=4, threshold=math.inf, edgeitems=3, linewidth=80)}
PRINT = dict(_PROFILES["default"], sci_mode=None)
_DETERMINISTIC = {"mode": False, "warn_only": False}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """torch.set_printoptions: digits after the point, the element count past which a tensor prints
    summarised, the items kept at each edge then, the line width, a profile ("default", "short",
    "full") to start from, and sci_mode (True: always scientific, False: never, None: NumPy decides)."""
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: profile must be one of {', '.join(_PROFILES)}, got {profile!r}")
        PRINT.update(_PROFILES[profile])
    for name, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                        ("linewidth", linewidth)):
        if value is not None:
            PRINT[name] = value
    PRINT["sci_mode"] = sci_mode


def use_deterministic_algorithms(mode, *, warn_only=False):
    """torch.use_deterministic_algorithms: recorded for are_deterministic_algorithms_enabled(); gradc
    has no nondeterministic kernel to refuse or warn about."""
    if not isinstance(mode, bool):
        raise TypeError(f"use_deterministic_algorithms(mode) takes True or False, got {mode!r}")
    _DETERMINISTIC.update(mode=mode, warn_only=bool(warn_only))


def are_deterministic_algorithms_enabled():
    return _DETERMINISTIC["mode"]


def is_deterministic_algorithms_warn_only_enabled():
    return _DETERMINISTIC["warn_only"]
