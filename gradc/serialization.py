"""gradc.save / gradc.load: checkpoints (tensors, state dicts, optimizer and scheduler states, nested
dicts, lists and tuples of them with numbers, strings, booleans and None) in a format that holds
data only, so loading one can never run code.

A checkpoint file is: the magic b"GRADCKPT", a little-endian u32 format version, a u64 header
length, a JSON header (the object's structure, and a table of arrays: dtype, shape, device, byte
offset and length), then the raw little-endian array bytes, 64-byte aligned, with their SHA-256 in
the header. Loading checks the whole header against a strict schema and the file's real size before
it allocates anything, so a truncated, corrupt or crafted file raises ArtifactError and cannot make
it allocate more than the file holds. gradc.load also loads compiled-program artifacts (zip files
written by Program.save): the two are told apart by their first bytes."""
import argparse
import collections
import hashlib
import json
import math
import os
import pickle
from pathlib import Path

import numpy as np

from . import dtypes as D
from .device import CPU, Device, device as _device, require as _require_device
from .dtypes import DType
from .errors import ArtifactError, DeviceError, GradcError
from .functions import from_numpy
from .runtime.cache import atomic_write
from .shapes import Size
from .tensor import Tensor

MAGIC = b"GRADCKPT"
VERSION = 1
_FORMAT = "gradc-checkpoint"
_ALIGN = 64
_PREFIX = len(MAGIC) + 4 + 8
_HEADER_LIMIT = 256 << 20      # bytes of JSON header no real checkpoint comes near
_MAX_ARRAYS = 1 << 20
_MAX_NDIM = 64
_MAX_DEPTH = 200               # nesting of dicts/lists/tuples
_ZIP = b"PK\x03\x04"
_HEADER_KEYS = {"format", "version", "data_bytes", "data_sha256", "arrays", "root"}
_ARRAY_KEYS = {"kind", "dtype", "shape", "device", "offset", "nbytes"}
# NumPy arrays a checkpoint may hold (stored little-endian): no objects, strings or datetimes.
_NP_DTYPES = {np.dtype(t).newbyteorder("<").str for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64, np.complex64, np.complex128)}


# ---------------------------------------------------------------------------------------------- save
class _Writer:
    """Turns an object into (JSON structure, arrays). A tensor or array reached twice is stored
    once and loads back as one object, as torch.save keeps shared tensors shared."""

    def __init__(self):
        self.arrays, self.entries, self.memo, self.open = [], [], {}, set()

    def array(self, key, make):
        """Index of the array for `key` (an object id, stable while `obj` is alive; None: no memo)."""
        if key is not None and key in self.memo:
            return self.memo[key]
        arr, entry = make()
        entry["offset"] = _align(self.entries[-1]["offset"] + self.entries[-1]["nbytes"] if self.entries else 0)
        entry["nbytes"] = int(arr.nbytes)
        self.entries.append(entry)
        self.arrays.append(arr)
        if key is not None:
            self.memo[key] = len(self.entries) - 1
        return len(self.entries) - 1

    def encode(self, obj, where="obj"):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, np.generic):  # before int/float: np.float64 is a float, and keeps its type
            return {"t": "npscalar", "i": self.array(None, lambda: _ndarray_entry(np.asarray(obj), where))}
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return float(obj) if math.isfinite(obj) else {"t": "float", "v": repr(float(obj))}
        if isinstance(obj, Tensor):
            return {"t": "tensor", "i": self.array(id(obj), lambda: _tensor_entry(obj, where))}
        if isinstance(obj, np.ndarray):
            return {"t": "ndarray", "i": self.array(id(obj), lambda: _ndarray_entry(obj, where))}
        if isinstance(obj, DType):
            return {"t": "dtype", "v": obj.name}
        if isinstance(obj, Device):
            return {"t": "device", "v": str(obj)}
        if isinstance(obj, complex):
            return {"t": "complex", "v": repr(obj)}
        if isinstance(obj, bytes):
            return {"t": "bytes", "v": obj.hex()}
        if type(obj) in (set, frozenset):   # (elements as dict keys are: hashable data)
            return {"t": type(obj).__name__, "items": [self.key(k, where) for k in obj]}
        if type(obj) is Size:
            return {"t": "size", "items": [int(n) for n in obj]}
        if type(obj) is argparse.Namespace:   # a training script's `args`, saved beside the weights
            return {"t": "namespace", "items": [[k, self.encode(v, f"{where}.{k}")] for k, v in vars(obj).items()]}
        if type(obj) in (dict, collections.OrderedDict, list, tuple):
            if id(obj) in self.open:
                raise GradcError(f"gradc.save: {where} contains itself; a checkpoint holds trees, not cycles")
            self.open.add(id(obj))
            try:
                if isinstance(obj, dict):
                    items = [[self.key(k, where), self.encode(v, f"{where}[{k!r}]")] for k, v in obj.items()]
                    return {"t": "odict" if type(obj) is collections.OrderedDict else "dict", "items": items}
                return {"t": type(obj).__name__, "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
            finally:
                self.open.discard(id(obj))
        kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
        raise GradcError(f"gradc.save: {where} is a {kind}, which a checkpoint cannot hold. Checkpoints hold "
                         "tensors, NumPy arrays, numbers (complex too), strings, bytes, booleans, None, dtypes, devices "
                         "and sizes, in dicts, OrderedDicts, lists, tuples, sets and argparse Namespaces; save a module's or optimizer's .state_dict() rather than "
                         "the object itself")

    def key(self, k, where):
        if k is None or isinstance(k, (bool, str, int)) or isinstance(k, float) and math.isfinite(k):
            return self.encode(k, where)
        if type(k) is tuple:
            return {"t": "tuple", "items": [self.key(x, where) for x in k]}
        raise GradcError(f"gradc.save: {where} has a dict key of type {type(k).__name__} ({k!r:.40}); checkpoint dict "
                         "keys are strings, ints, finite floats, booleans, None or tuples of them")


def _align(n):
    return -(-n // _ALIGN) * _ALIGN


def _contiguous(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)  # (ascontiguousarray makes 0-d arrays 1-d)


def _tensor_entry(t, where):
    if t._data is None:
        raise GradcError(f"gradc.save: {where} is a symbolic tensor (inside gradc.compile tracing); save outside the "
                         "compiled function")
    arr = _contiguous(t.detach().cpu().numpy())
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False), {
        "kind": "tensor", "dtype": t.dtype.name, "shape": list(t.shape), "device": str(t.device)}


def _ndarray_entry(a, where):
    if a.dtype.newbyteorder("<").str not in _NP_DTYPES:
        raise GradcError(f"gradc.save: {where} is a NumPy array of dtype {a.dtype}, which a checkpoint cannot hold "
                         "(numeric and bool arrays only)")
    arr = _contiguous(a)
    arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return arr, {"kind": "ndarray", "dtype": arr.dtype.str, "shape": list(arr.shape), "device": "cpu"}


def save(obj, f, pickle_module=None, pickle_protocol=None, _use_new_zipfile_serialization=True, **kwargs):
    """Write `obj` to `f` (a path, written atomically: a temporary file beside it is renamed over
    it; or a binary file object). No pickle: see the module docstring for what `obj` may hold.
    torch's pickle_protocol and _use_new_zipfile_serialization choose among its pickle formats: gradc
    has one format, whatever they say; a pickle_module other than Python's pickle is refused."""
    if kwargs:
        raise GradcError(f"gradc.save: unexpected argument(s) {sorted(kwargs)}")
    _no_pickler("save", pickle_module)
    w = _Writer()
    root = w.encode(obj)
    digest = hashlib.sha256()
    chunks = []
    pos = 0
    for arr, e in zip(w.arrays, w.entries):
        if e["offset"] > pos:
            chunks.append(b"\0" * (e["offset"] - pos))
        chunks.append(memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else b"")
        pos = e["offset"] + e["nbytes"]
    for c in chunks:
        digest.update(c)
    header = json.dumps({"format": _FORMAT, "version": VERSION, "data_bytes": pos, "data_sha256": digest.hexdigest(),
                         "arrays": w.entries, "root": root},
                        separators=(",", ":"), allow_nan=False).encode()
    head = MAGIC + VERSION.to_bytes(4, "little") + len(header).to_bytes(8, "little") + header
    head += b"\0" * (_align(len(head)) - len(head))
    if hasattr(f, "write"):
        f.write(head)
        for c in chunks:
            f.write(c)
        return
    atomic_write(Path(os.fspath(f)), lambda out: out.writelines([head] + chunks))


def _no_pickler(what, pickle_module):
    if pickle_module not in (None, pickle):
        raise GradcError(f"gradc.{what}: pickle_module={pickle_module!r}: gradc's checkpoints are not pickles, so no "
                         "other pickler can read or write them; leave it out")


# ---------------------------------------------------------------------------------------------- load
def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **pickle_load_args):
    """Load what gradc.save wrote (a path or a binary file object), or a compiled-program artifact
    (a path to a file written by Program.save / `gradc compile`).

    map_location: None puts each tensor back on the device it was saved from; "cpu", "cuda:N" or a
    gradc.device puts all of them there; a dict maps saved device names to devices
    ({"cuda:0": "cpu"}). weights_only is accepted for torch compatibility: every gradc checkpoint
    is data only, so every load is what torch calls weights_only. So are torch's pickle options
    (pickle_module: Python's pickle only; encoding: for Python 2 pickles, which gradc never reads) and
    mmap: the arrays are always read whole, since their checksum is verified before any is used."""
    _no_pickler("load", pickle_module)
    if weights_only not in (None, True, False):
        raise GradcError(f"gradc.load: weights_only must be a bool or None, got {weights_only!r}")
    if set(pickle_load_args) - {"encoding"} or mmap not in (None, False, True):
        raise GradcError(f"gradc.load: unexpected argument(s) {sorted(set(pickle_load_args) - {'encoding'})}"
                         if pickle_load_args else f"gradc.load: mmap must be a bool, got {mmap!r}")
    where = getattr(f, "name", None) if hasattr(f, "read") else os.fspath(f)
    where = str(where) if where is not None else "<file object>"
    if hasattr(f, "read"):
        return _load_from(f, where, map_location, None)
    try:
        handle = open(f, "rb")
    except FileNotFoundError:
        raise ArtifactError(f"{where}: no such file") from None
    except OSError as e:
        raise ArtifactError(f"{where}: cannot be read ({e.strerror or e})") from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        return _load_from(handle, where, map_location, size, path=f)


def _load_from(fh, where, map_location, size, path=None):
    first = fh.read(len(MAGIC))
    if first == MAGIC:
        return _load_checkpoint(fh, where, map_location, size)
    if first.startswith(_ZIP):
        return _load_zip(fh, where, map_location, path)
    if not first:
        raise ArtifactError(f"{where} is empty: it is neither a gradc checkpoint nor a program artifact")
    if MAGIC.startswith(first):
        raise ArtifactError(f"{where} is truncated: only {len(first)} bytes of a gradc checkpoint; save it again")
    if first[:1] == b"\x80":
        raise ArtifactError(f"{where} is a Python pickle (an older torch.save file?). gradc never unpickles: a pickle "
                            "can run arbitrary code. Convert it where it was made, e.g. load it with torch and save "
                            "its tensors as NumPy arrays, then build a state dict of gradc tensors and gradc.save it")
    raise ArtifactError(f"{where} is neither a gradc checkpoint (gradc.save) nor a compiled-program artifact "
                        "(Program.save): its first bytes match neither format")


def _load_zip(fh, where, map_location, path):
    import zipfile
    try:
        fh.seek(0)
        names = zipfile.ZipFile(fh).namelist()  # the central directory only: nothing is extracted
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as e:
        raise ArtifactError(f"{where} is a truncated or corrupt zip archive ({e}); save it again") from None
    if any(n.endswith("data.pkl") for n in names) and "manifest.json" not in names:
        raise ArtifactError(f"{where} is a PyTorch checkpoint (torch.save: a zip holding a pickle). gradc never "
                            "unpickles, since a pickle can run arbitrary code; convert it where it was made (load it "
                            "with torch, save the tensors as NumPy arrays) and gradc.save a state dict of gradc "
                            "tensors")
    if "manifest.json" not in names and not _ends_with_zip_directory(fh):
        # what was read is the directory of a zip stored inside (an artifact's state.npz): the rest is cut off
        raise ArtifactError(f"{where} is a truncated or corrupt zip archive (its end holds no zip directory); "
                            "save it again")
    if "manifest.json" not in names:
        raise ArtifactError(f"{where} is a zip archive but not a compiled-program artifact (it has no manifest.json) "
                            "nor a gradc checkpoint; gradc.load reads what gradc.save and Program.save write")
    if path is None:
        raise ArtifactError(f"{where} is a compiled-program artifact; load artifacts from a path: gradc.load(path)")
    if map_location is not None:
        raise GradcError("gradc.load: map_location applies to checkpoints; a compiled-program artifact runs where "
                         "its backend runs (re-export it with another backend to move it)")
    from .artifacts import load as load_artifact
    return load_artifact(path)


def _ends_with_zip_directory(fh):
    """Whether the file's last bytes are a zip end-of-directory record (with its comment, if any)."""
    fh.seek(0, 2)
    size = fh.tell()
    fh.seek(max(0, size - (22 + 0xFFFF)))
    tail = fh.read()
    at = tail.rfind(b"PK\x05\x06")
    return at >= 0 and len(tail) - at >= 22 and at + 22 + int.from_bytes(tail[at + 20:at + 22], "little") == len(tail)


def _fail(where, what):
    raise ArtifactError(f"{where}: {what}; the file is corrupt, truncated or was not written by gradc.save")


def _read_exact(fh, n, where, what):
    data = fh.read(n)
    if len(data) != n:
        _fail(where, f"it ends inside the {what} ({len(data)} of {n} bytes)")
    return data


def _load_checkpoint(fh, where, map_location, size):
    prefix = _read_exact(fh, _PREFIX - len(MAGIC), where, "file prefix")
    version = int.from_bytes(prefix[:4], "little")
    if version != VERSION:
        raise ArtifactError(f"{where}: checkpoint format version {version}; this gradc reads version {VERSION}. Load it "
                            "with the gradc that wrote it and save it again")
    n_header = int.from_bytes(prefix[4:], "little")
    if n_header > _HEADER_LIMIT or size is not None and _PREFIX + n_header > size:
        _fail(where, f"its header claims {n_header} bytes, more than the file holds")
    header = _parse_header(_read_exact(fh, n_header, where, "header"), where)
    data_start = _align(_PREFIX + n_header)
    if size is not None and size != data_start + header["data_bytes"]:
        _fail(where, f"it is {size} bytes long, but its header describes {data_start + header['data_bytes']} bytes")
    _read_exact(fh, data_start - _PREFIX - n_header, where, "header padding")
    devices = [_target_device(e["device"], map_location, where) for e in header["arrays"]]
    arrays = _read_arrays(fh, header, where)
    values = []
    for arr, e, dev in zip(arrays, header["arrays"], devices):
        if e["kind"] == "tensor":
            t = from_numpy(arr)
            values.append(t if dev.type == "cpu" else t.to(dev))
        else:
            values.append(arr)
    return _Reader(values, header["arrays"], where).decode(header["root"], 0)


def _parse_header(raw, where):
    def no_constants(name):
        _fail(where, f"its header holds the bare constant {name}")
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        _fail(where, f"its header is not valid JSON ({type(e).__name__}: {str(e)[:120]})")
    if not isinstance(header, dict) or set(header) != _HEADER_KEYS or header["format"] != _FORMAT:
        _fail(where, "its header does not have the fields of a gradc checkpoint")
    if header["version"] != VERSION or not isinstance(header["data_sha256"], str):
        _fail(where, "its header's version or checksum field is malformed")
    arrays = header["arrays"]
    if not isinstance(arrays, list) or len(arrays) > _MAX_ARRAYS:
        _fail(where, "its array table is malformed or absurdly long")
    end = 0
    for i, e in enumerate(arrays):
        _check_entry(e, i, end, where)
        end = e["offset"] + e["nbytes"]
    if not _is_int(header["data_bytes"]) or header["data_bytes"] != end:
        _fail(where, f"its header says the data has {header['data_bytes']} bytes, but its arrays end at byte {end}")
    return header


def _is_int(x):
    return type(x) is int


def _check_entry(e, i, end, where):
    if not isinstance(e, dict) or set(e) != _ARRAY_KEYS:
        _fail(where, f"array {i} in its table is malformed")
    shape = e["shape"]
    if not isinstance(shape, list) or len(shape) > _MAX_NDIM or not all(_is_int(d) and d >= 0 for d in shape):
        _fail(where, f"array {i} has the malformed shape {str(shape)[:80]}")
    if e["kind"] == "tensor":
        if e["dtype"] not in D.ALL:
            _fail(where, f"tensor {i} has the unknown dtype {str(e['dtype'])[:40]!r}")
        itemsize = D.ALL[e["dtype"]].itemsize
    elif e["kind"] == "ndarray":
        if e["dtype"] not in _NP_DTYPES:
            _fail(where, f"array {i} has the dtype {str(e['dtype'])[:40]!r}, which a checkpoint may not hold")
        itemsize = np.dtype(e["dtype"]).itemsize
    else:
        _fail(where, f"array {i} is of the unknown kind {str(e['kind'])[:40]!r}")
    if not isinstance(e["device"], str) or len(e["device"]) > 32:
        _fail(where, f"array {i} has a malformed device")
    if not (_is_int(e["offset"]) and _is_int(e["nbytes"])):
        _fail(where, f"array {i} has a malformed offset or length")
    if e["nbytes"] != math.prod(shape) * itemsize:
        _fail(where, f"array {i} claims {e['nbytes']} bytes, but shape {shape} of {e['dtype']} needs "
                     f"{math.prod(shape) * itemsize}")
    if e["offset"] != _align(end):  # the one layout gradc.save writes: in order, aligned, never overlapping
        _fail(where, f"array {i} starts at byte {e['offset']}, not at {_align(end)} where it must")


def _empty_cpu():
    return Tensor._wrap(np.zeros(0, dtype=np.float32), D.float32, CPU)


def _target_device(saved, map_location, where):
    if map_location is None:
        target = saved
    elif isinstance(map_location, dict):
        target = map_location.get(saved, saved)
    elif isinstance(map_location, (str, Device)):
        target = map_location
    elif callable(map_location):
        # PyTorch's fn(storage, location): it gets an empty tensor on the CPU (where the data is read)
        # and the saved device's name; the device of what it returns is where the tensor goes (None: saved)
        placed = map_location(_empty_cpu(), saved)
        target = saved if placed is None else getattr(placed, "device", None)
        if not isinstance(target, (str, Device)):
            raise GradcError(f"gradc.load: map_location({saved!r}) returned {type(placed).__name__}; return the "
                             "storage it was given (on a device of your choice) or None")
    else:
        raise GradcError("gradc.load: map_location must be None, a device ('cpu', 'cuda:0', gradc.device(...)), a "
                         f"dict from saved device names to devices or a function; got {type(map_location).__name__}")
    try:
        dev = _device(target)
    except DeviceError:
        if target is saved:
            _fail(where, f"it names the unknown device {saved[:32]!r}")
        raise
    try:
        return _require_device(dev)
    except DeviceError as e:
        raise DeviceError(f"{where} holds tensors saved on {saved}, which is not available here ({e}); load them "
                          "onto the CPU with gradc.load(path, map_location='cpu')") from None


def _read_arrays(fh, header, where):
    digest = hashlib.sha256()
    out, pos = [], 0
    for i, e in enumerate(header["arrays"]):
        if e["offset"] > pos:
            digest.update(_read_exact(fh, e["offset"] - pos, where, "data padding"))
        dtype = D.ALL[e["dtype"]].np if e["kind"] == "tensor" else np.dtype(e["dtype"])
        arr = np.empty(e["shape"], dtype=dtype.newbyteorder("<"))
        view = memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else memoryview(b"")
        got = fh.readinto(view) if arr.size else 0
        if got != e["nbytes"]:
            _fail(where, f"it ends inside array {i} ({got} of {e['nbytes']} bytes)")
        digest.update(view)
        out.append(arr.astype(dtype.newbyteorder("="), copy=False))
        pos = e["offset"] + e["nbytes"]
    if fh.read(1):
        _fail(where, "it has bytes after its last array")
    if digest.hexdigest() != header["data_sha256"]:
        _fail(where, "its array data does not match the checksum in its header")
    return out


class _Reader:
    def __init__(self, values, entries, where):
        self.values, self.entries, self.where = values, entries, where

    def bad(self, what):
        _fail(self.where, f"its structure is malformed ({what})")

    def decode(self, node, depth):
        if depth > _MAX_DEPTH:
            self.bad(f"nested deeper than {_MAX_DEPTH} levels")
        if node is None or isinstance(node, (bool, str, int, float)):
            return node
        if isinstance(node, list) or not isinstance(node, dict) or not isinstance(node.get("t"), str):
            self.bad("an untagged container")
        tag = node["t"]
        if tag in ("dict", "odict", "list", "tuple", "set", "frozenset", "size", "namespace"):
            if set(node) != {"t", "items"} or not isinstance(node["items"], list):
                self.bad(f"a {tag} without its items")
            if tag in ("list", "tuple"):
                items = [self.decode(v, depth + 1) for v in node["items"]]
                return items if tag == "list" else tuple(items)
            if tag in ("set", "frozenset"):
                return (set if tag == "set" else frozenset)(self.key(k, depth + 1) for k in node["items"])
            if tag == "size":
                if not all(_is_int(n) and n >= 0 for n in node["items"]):
                    self.bad("a size that is not a list of non-negative ints")
                return Size(node["items"])
            out = collections.OrderedDict() if tag == "odict" else {}
            for pair in node["items"]:
                if not isinstance(pair, list) or len(pair) != 2:
                    self.bad("a dict entry that is not a [key, value] pair")
                k = self.key(pair[0], depth + 1)
                if k in out:
                    self.bad(f"the dict key {k!r:.40} twice")
                out[k] = self.decode(pair[1], depth + 1)
            if tag == "namespace":
                if not all(isinstance(k, str) for k in out):
                    self.bad("a namespace attribute that is not a string")
                return argparse.Namespace(**out)
            return out
        if set(node) != {"t", "i" if tag in ("tensor", "ndarray", "npscalar") else "v"}:
            self.bad(f"a malformed {tag[:20]!r} entry")
        if tag in ("tensor", "ndarray", "npscalar"):
            i = node["i"]
            if not _is_int(i) or not 0 <= i < len(self.values):
                self.bad(f"a reference to array {str(i)[:20]}, which does not exist")
            kind = self.entries[i]["kind"]
            if (kind == "tensor") != (tag == "tensor") or tag == "npscalar" and self.entries[i]["shape"]:
                self.bad(f"a {tag} entry that refers to a {kind}")
            return self.values[i][()] if tag == "npscalar" else self.values[i]
        v = node["v"]
        if tag == "float" and v in ("nan", "inf", "-inf"):
            return float(v)
        if tag == "bytes" and isinstance(v, str):
            try:
                return bytes.fromhex(v)
            except ValueError:
                pass
        if tag == "complex" and isinstance(v, str) and len(v) <= 64:
            try:
                return complex(v)
            except ValueError:
                pass
        if tag == "dtype" and v in D.ALL:
            return D.ALL[v]
        if tag == "device" and isinstance(v, str) and len(v) <= 32:
            try:
                return _device(v)
            except DeviceError:
                pass
        self.bad(f"the unknown entry {tag[:20]!r} = {str(v)[:40]!r}")

    def key(self, node, depth):
        k = self.decode(node, depth)
        try:
            hash(k)
        except TypeError:
            self.bad(f"an unhashable dict key of type {type(k).__name__}")
        return k


__all__ = ["save", "load", "MAGIC"]
