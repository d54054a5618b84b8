"""Machine-measured settings for generated code, measured once and kept in the cache folder.

`block_bytes` is the size of the row blocks fused NumPy groups work on: large enough that NumPy's
per-call overhead is small, small enough that a group's working set stays in cache. It is found by
timing a typical chain of elementwise ops at several block sizes on this machine."""
import json
import os
import time

import numpy as np

from ..errors import GradcError
from . import cache

_CANDIDATES = (16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20)
_memo = {}


def _time_chain(x, out, s, block_rows):
    start = time.perf_counter()
    for r in range(0, x.shape[0], block_rows):
        a, o = x[r:r + block_rows], out[r:r + block_rows]
        t = s[:a.shape[0]]
        np.multiply(a, 1.5, out=t)
        np.add(t, a, out=t)
        np.tanh(t, out=t)
        np.multiply(t, t, out=t)
        np.subtract(a, t, out=t)
        np.exp(t, out=t)
        np.multiply(t, a, out=o)
    return time.perf_counter() - start


def measure():
    """Time the chain over a 16 MiB float32 array at each candidate block size; best wins."""
    x = np.random.default_rng(0).standard_normal((4096, 1024), dtype=np.float32)
    out = np.empty_like(x)
    results = {}
    for nbytes in _CANDIDATES:
        rows = max(1, nbytes // (x.shape[1] * 4))
        s = np.empty((rows, x.shape[1]), dtype=np.float32)
        results[nbytes] = min(_time_chain(x, out, s, rows) for _ in range(3))
    best = min(results, key=results.get)
    return {"block_bytes": best, "seconds_per_candidate": {str(k): round(v, 5) for k, v in results.items()}}


_MIN_BLOCK, _MAX_BLOCK = 1 << 10, 1 << 30


def valid(data):
    """Whether `data` (parsed tuning.json) is a usable settings record: a JSON object whose
    block_bytes is an integer byte count in [1 KiB, 1 GiB]. Anything else (a hand edit, Infinity,
    a truncated write, another version's layout) is measured again rather than trusted."""
    if not isinstance(data, dict):
        return False
    b = data.get("block_bytes")
    return isinstance(b, int) and not isinstance(b, bool) and _MIN_BLOCK <= b <= _MAX_BLOCK


def _reject_constant(name):
    raise ValueError(f"{name} is not a number tuning.json may hold")


def settings():
    """The measured settings (measured on first use, then read from the cache folder)."""
    if "settings" in _memo:
        return _memo["settings"]
    path = cache.cache_dir() / "tuning.json"
    try:
        data = json.loads(path.read_text(), parse_constant=_reject_constant)
    except (OSError, ValueError, UnicodeDecodeError):
        data = None
    if not valid(data):
        data = measure()
        cache.write_entry(path, json.dumps(data, indent=1))   # an unusable cache folder: kept in memory
    _memo["settings"] = data
    return data


def block_bytes():
    """Bytes per row block of fused NumPy groups: GRADC_BLOCK_BYTES when set (tests use small blocks
    so that blocking happens on small shapes), else the size measured on this machine."""
    env = os.environ.get("GRADC_BLOCK_BYTES")
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value <= 0:
            raise GradcError(f"GRADC_BLOCK_BYTES={env!r} is not a positive number of bytes; set it to e.g. 65536 "
                             "or unset it to use the size measured on this machine")
        return value
    return int(settings()["block_bytes"])
