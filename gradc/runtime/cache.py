"""Content-addressed on-disk cache of generated modules.

An entry's file name is the SHA-256 of its source. Writes go to a temporary file in the same folder
and are renamed into place, so a reader never sees a partial file and two processes racing to
write the same entry both succeed. An entry whose bytes do not match its name is rebuilt."""
import hashlib
import os
import sys
import tempfile
import types
from pathlib import Path

_loaded = {}


def cache_dir():
    env = os.environ.get("GRADC_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gradc"


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def atomic_write(path, data):
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part:
    it goes to a temporary file beside the target, is synced, gets the usual permissions (0666
    less the umask) and is renamed over the target, and the rename is synced too. `data` is bytes,
    text, or a function that writes to the open binary file. Used by the cache, dumps, artifacts
    and the CLI. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def _read_umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: changing it later would race with threads creating files


def entry_path(source, suffix=".py", kind="numpy"):
    key = digest(source)
    return cache_dir() / kind / key[:2] / f"{key}{suffix}", key


def store(source, suffix=".py", kind="numpy"):
    """Make sure the cache holds `source`; returns its path. Corrupt entries are replaced."""
    path, key = entry_path(source, suffix, kind)
    try:
        if path.read_bytes() == source.encode():
            return path
    except OSError:
        pass
    atomic_write(path, source)
    return path


def load_module(source):
    """Import generated Python source through the cache (once per process per source)."""
    key = digest(source)
    mod = _loaded.get(key)
    if mod is not None:
        return mod
    path = store(source)
    name = f"gradc_generated_{key[:20]}"
    # Run the source we hold (its hash is the key), not whatever the file or a stale __pycache__ holds
    # now: the file only gives tracebacks their lines. Another process may rewrite it meanwhile.
    mod = types.ModuleType(name)
    mod.__file__ = str(path)
    code = compile(source, str(path), "exec")
    sys.modules[name] = mod
    try:
        exec(code, mod.__dict__)
    finally:
        sys.modules.pop(name, None)
    _loaded[key] = mod
    return mod


def size():
    """(number of entries, bytes) in the cache."""
    root = cache_dir()
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    return len(files), sum(p.stat().st_size for p in files)


def clear():
    import shutil
    root = cache_dir()
    n, b = size()
    if root.exists():
        shutil.rmtree(root)
    _loaded.clear()
    return n, b
