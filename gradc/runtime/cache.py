"""Content-addressed on-disk cache of generated code (and of its compiled bytecode, which a big
module takes seconds to compile), and the rules that keep it harmless.

An entry's file name is the SHA-256 of its source. Writes go to a temporary file in the same folder
and are renamed into place, so a reader never sees a partial file and two processes racing to
write the same entry both succeed. An entry whose bytes do not match its name is rebuilt.

Shared objects (the C backend, the CUDA emulation) are recorded with the SHA-256 of their bytes
when they are built; a cached one is loaded only when its bytes match that record, and from a
private copy of the bytes that were checked, so a planted, truncated or swapped file is rebuilt and
never run. `clear` removes only files gradc writes (entries, their records, tuning settings, its
own temporary files), never anything else in the folder. A cache folder that cannot be used (a
file, read-only, full) gives one warning and everything continues in memory. Temporary files a
killed process left behind are removed once they are old."""
import ctypes
import hashlib
import importlib.util
import marshal
import os
import re
import shutil
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

_loaded = {}
_libs = {}
_state = {"warned": set(), "swept": set()}


def cache_dir():
    env = os.environ.get("GRADC_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gradc"


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def atomic_write(path, data, sync=True):
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part:
    it goes to a temporary file beside the target, is synced, gets the usual permissions (0666
    less the umask) and is renamed over the target, and the rename is synced too. `data` is bytes,
    text, or a function that writes to the open binary file. Used by the cache, dumps, artifacts
    and the CLI. Returns the path. sync=False skips both syncs, for entries whose readers check
    them against a hash they hold (what a crash leaves behind is then rebuilt, not used)."""
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
            if sync:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if not sync:
        return path
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
    """Make sure the cache holds `source`; returns its path, or None when the cache folder cannot
    be written (warned about once; the caller works from memory). Corrupt entries are replaced."""
    path, key = entry_path(source, suffix, kind)
    try:
        if path.read_bytes() == source.encode():
            return path
    except OSError:
        pass
    sweep()
    return path if write_entry(path, source) else None


def write_entry(path, data, sync=True):
    """atomic_write into the cache folder; False (after one warning per folder) when the folder is
    unusable: it is a file, read-only or full. Compiling goes on without the cache."""
    try:
        atomic_write(path, data, sync)
        return True
    except OSError as e:
        unusable(e)
        return False


def unusable(error):
    """Warn once per process and cache folder that the cache cannot be written."""
    root = str(cache_dir())
    if root not in _state["warned"]:
        _state["warned"].add(root)
        warnings.warn(f"gradc: the cache folder {root} cannot be used ({error.strerror or error}); compiling "
                      "continues in memory. Set GRADC_CACHE_DIR to a writable folder to keep compiled code.",
                      RuntimeWarning, stacklevel=3)


def load_module(source):
    """Import generated Python source through the cache (once per process per source)."""
    key = digest(source)
    mod = _loaded.get(key)
    if mod is not None:
        return mod
    path = store(source)
    name = f"gradc_generated_{key[:20]}"
    path = path if path is not None else f"<gradc generated {key[:20]}>"
    # Run the source we hold (its hash is the key), not whatever the file or a stale __pycache__ holds
    # now: the file only gives tracebacks their lines. Another process may rewrite it meanwhile.
    mod = types.ModuleType(name)
    mod.__file__ = str(path)
    code = _code(source, str(path))
    sys.modules[name] = mod
    try:
        exec(code, mod.__dict__)
    finally:
        sys.modules.pop(name, None)
    _loaded[key] = mod
    return mod


def _code(source, path):
    """The code object of `source`: compiling a big generated module takes a second and more, reading
    its marshalled code back a few ms. The entry is keyed by the source, the path its tracebacks
    name and this interpreter's bytecode magic, and carries the SHA-256 of its bytes: a damaged or
    truncated one is compiled and written again."""
    key = digest("\0".join((source, path, importlib.util.MAGIC_NUMBER.hex())))
    entry = cache_dir() / "code" / key[:2] / f"{key}.code"
    try:
        data = entry.read_bytes()
        if data[:32] == hashlib.sha256(data[32:]).digest():
            return marshal.loads(data[32:])
    except (OSError, ValueError, EOFError, TypeError):
        pass
    code = compile(source, path, "exec")
    body = marshal.dumps(code)
    sweep()
    write_entry(entry, hashlib.sha256(body).digest() + body, sync=False)
    return code


# ---------------------------------------------------------------------- shared objects
def load_shared_object(key_text, source, build, kind, suffix=".c"):
    """ctypes.CDLL of the shared object made from `source` by `build(src_path, out_path)` (which
    raises on failure). `key_text` is everything the binary depends on (source, compiler, flags);
    its hash names the entry. A cached binary is used only when its bytes hash to the value
    recorded when it was built; otherwise (missing, planted, truncated) it is built again. The
    bytes that were checked are loaded from a private copy, so the file cannot change between the
    check and the load."""
    key = digest(key_text)
    lib = _libs.get(key)
    if lib is not None:
        return lib
    folder = cache_dir() / kind / key[:2]
    so_path, record = folder / f"{key}.so", folder / f"{key}.so.sha256"
    data = None
    try:
        data = so_path.read_bytes()
        if record.read_text().strip() != hashlib.sha256(data).hexdigest():
            data = None
    except (OSError, UnicodeDecodeError):
        data = None
    if data is None:
        data = _build(source, build, folder, suffix)
        if write_entry(so_path, data):
            write_entry(record, hashlib.sha256(data).hexdigest() + "\n")
    lib = _libs[key] = _dlopen_copy(data)
    return lib


def _build(source, build, folder, suffix):
    sweep()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".build-", dir=folder)
    except OSError as e:
        unusable(e)
        tmp = tempfile.mkdtemp(prefix="gradc-build-")
    try:
        src, out = os.path.join(tmp, f"kernels{suffix}"), os.path.join(tmp, "kernels.so")
        with open(src, "w") as f:
            f.write(source)
        build(src, out)
        with open(out, "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _dlopen_copy(data):
    folder = tempfile.mkdtemp(prefix="gradc-so-")   # private (0700): nobody else can swap the file
    path = os.path.join(folder, "lib.so")
    try:
        with open(path, "wb") as f:
            f.write(data)
        return ctypes.CDLL(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)   # the mapping stays valid after the unlink


# ---------------------------------------------------------------------- what gradc owns in the folder
KINDS = ("numpy", "c", "cuda", "cuda-emulation", "templates", "lowered", "code")
TOP_FILES = ("tuning.json", "native.json")
_ENTRY = re.compile(r"^[0-9a-f]{64}(\.[A-Za-z0-9]+)+$")
_TEMP = re.compile(r"^\..+\.tmp$")
STALE_SECONDS = 600   # a temporary file this old belongs to a write that was killed


def _owned(root):
    """Files and build folders under `root` that gradc wrote, by their exact name patterns."""
    found = []
    for name in TOP_FILES:
        if (root / name).is_file():
            found.append(root / name)
    for kind in KINDS:
        base = root / kind
        if not base.is_dir() or base.is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            for d in list(dirnames):
                if d.startswith(".build-"):
                    found.append(Path(dirpath) / d)
                    dirnames.remove(d)
            found += [Path(dirpath) / f for f in filenames if _ENTRY.match(f) or _TEMP.match(f)]
    found += [p for p in root.glob(".*.tmp") if p.is_file()]
    return found


def sweep(max_age=STALE_SECONDS):
    """Remove gradc's temporary files and build folders older than `max_age` seconds (left by a
    process that was killed mid-write); done once per process and folder before writing."""
    root = cache_dir()
    if str(root) in _state["swept"] and max_age == STALE_SECONDS:
        return 0
    _state["swept"].add(str(root))
    if not root.is_dir():
        return 0
    now, n = time.time(), 0
    for p in _owned(root):
        if not (p.name.startswith(".build-") or _TEMP.match(p.name)):
            continue
        try:
            if now - p.lstat().st_mtime >= max_age:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                n += 1
        except OSError:
            pass
    return n


def _nbytes(p):
    try:
        if p.is_dir() and not p.is_symlink():
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        return p.lstat().st_size
    except OSError:
        return 0


def size():
    """(number of gradc's files, their bytes) in the cache folder."""
    root = cache_dir()
    files = _owned(root) if root.is_dir() else []
    return len(files), sum(_nbytes(p) for p in files)


def clear():
    """Remove what gradc wrote to the cache folder (nothing else); returns (files, bytes) removed."""
    root = cache_dir()
    n = b = 0
    if root.is_dir():
        for p in _owned(root):
            size_ = _nbytes(p)
            try:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            except OSError:
                continue
            n, b = n + 1, b + size_
        for kind in KINDS:   # folders gradc made, once empty
            base = root / kind
            if base.is_dir() and not base.is_symlink():
                for dirpath, _, _ in sorted(os.walk(base), key=lambda t: -len(t[0])):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
        try:
            root.rmdir()   # only when nothing else is left in it
        except OSError:
            pass
    _loaded.clear()
    return n, b
