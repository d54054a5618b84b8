"""Machine-measured settings for generated code, measured once and kept in the cache folder.

`block_bytes` is the size of the row blocks fused NumPy groups work on: large enough that NumPy's
per-call overhead is small, small enough that a group's working set stays in cache. It is found by
timing a typical chain of elementwise ops at several block sizes on this machine."""
import json
import time

import numpy as np

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


def settings():
    """The measured settings (measured on first use, then read from the cache folder)."""
    if "settings" in _memo:
        return _memo["settings"]
    path = cache.cache_dir() / "tuning.json"
    try:
        data = json.loads(path.read_text())
        int(data["block_bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        data = measure()
        cache.atomic_write(path, json.dumps(data, indent=1))
    _memo["settings"] = data
    return data


def block_bytes():
    return int(settings()["block_bytes"])
