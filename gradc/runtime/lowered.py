"""The on-disk cache of lowered programs. A graph traced before, lowered with the same settings by
the same gradc code, skips the passes and code generation: what they produced (the optimised IR,
the generated source, the statistics, the kernel list and the memory plan's copy and in-place
decisions) is read back from one JSON entry. The generated code itself is cached separately by its
content, as before.

The key is the traced graph's content hash with every input to lowering: the lowering settings,
the row-block size, the C compiler's environment and a fingerprint of gradc's own source files and
templates, so an edited or upgraded gradc never reads an entry an older one wrote. An entry holds
the SHA-256 of its body; a damaged or truncated one is ignored and rewritten. GRADC_LOWERED_CACHE=0
turns the cache off (every trace runs every stage)."""
import hashlib
import json
import os
from pathlib import Path

from ..errors import ConfigError
from . import cache

_FINGERPRINT = []
_ROOT = Path(__file__).resolve().parent.parent


def enabled():
    value = os.environ.get("GRADC_LOWERED_CACHE", "1").strip().lower()
    if value not in ("0", "1", "off", "on", "false", "true", "no", "yes", ""):
        raise ConfigError(f"GRADC_LOWERED_CACHE={value!r} is not understood; set it to 1 (use the cache of lowered "
                       "programs, the default) or 0 (lower every trace from scratch)")
    return value not in ("0", "off", "false", "no")


def fingerprint():
    """Path, size and modification time of every file of the gradc package and its templates
    (read once per process)."""
    if not _FINGERPRINT:
        h = hashlib.sha256()
        for base in (str(_ROOT), str(_ROOT.parent / "templates")):
            cut = len(os.path.dirname(base)) + 1
            files = sorted(os.path.join(d, f) for d, _, names in os.walk(base) for f in names if f.endswith((".py", ".j2")))
            for path in files:   # (os.walk and os.stat: a quarter of what pathlib's rglob costs at startup)
                try:
                    st = os.stat(path)
                except OSError:   # a dangling link (an editor's lock file): no source
                    continue
                h.update(f"{path[cut:]}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        _FINGERPRINT.append(h.hexdigest())
    return _FINGERPRINT[0]


def key(graph_hash, settings):
    return cache.digest(json.dumps([graph_hash, settings, fingerprint()], sort_keys=True, default=repr))


def _path(k):
    return cache.cache_dir() / "lowered" / k[:2] / f"{k}.json"


def read(k):
    """The entry stored under key k, or None (absent, damaged, or written for another key)."""
    try:   # a header line (key, SHA-256 of the rest), then the body: parsed once, not as a string in JSON
        head, _, body = _path(k).read_bytes().partition(b"\n")
        head = json.loads(head)
        if head.get("key") != k or head.get("sha256") != hashlib.sha256(body).hexdigest():
            return None
        return json.loads(body)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write(k, entry):
    """Store an entry (JSON-able); quietly nothing when it is not JSON-able or the folder is unusable
    (the cache only saves time)."""
    try:
        body = json.dumps(entry, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError):
        return False
    cache.sweep()
    head = json.dumps({"key": k, "sha256": cache.digest(body)})
    return cache.write_entry(_path(k), f"{head}\n{body}".encode(), sync=False)
