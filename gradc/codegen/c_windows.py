"""im2col and col2im as C kernels of the C backend (templates/c/windows.c.j2).

The gradient of a convolution's im2col adds every window offset's columns back into the image: in
NumPy that is one strided add per offset over the whole batch (9 passes over the image for a 3x3
kernel, each a read-modify-write of memory that no longer fits in cache). One C loop per image
keeps that image's output in cache while all offsets add into it, and reads the columns once, in
the order they lie: window_matmul's column gradient is window-offset-major (a permuted view of
(KH, KW, N, OH, OW, C) memory), a pooling's gradient window-position-major. The result has the
NumPy kernel's bits (the same additions in the same order into a zeroed image). im2col copies
each window from contiguous channels-last memory (a strided view is made contiguous first, as the
NumPy kernel does for overlapping windows; windows that do not overlap read a view in NumPy)."""
import math
from dataclasses import dataclass
from math import prod

from ..passes.memory import VIEW_OPS

from .templates import render

_OFFSET_MAJOR = (2, 3, 4, 0, 1, 5)   # (KH, KW, N, OH, OW, C) memory viewed as (N, OH, OW, KH, KW, C)
PARALLEL_ELEMENTS = 1 << 15


@dataclass(frozen=True)
class WindowKernel:
    id: int
    name: str
    ctype: str
    n: int
    h: int
    w: int
    c: int
    oh: int
    ow: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    ph: int
    pw: int
    offset_major: bool
    tiles: bool
    parallel: int
    bytes_read: int
    bytes_written: int
    ops: str = "col2im"
    value: str = "0"       # im2col: the padding value (C literal), or the name of a non-finite one
    special: str = ""

    @property
    def op(self):
        return self.ops

    @property
    def bytes_moved(self):
        return self.bytes_read + self.bytes_written


def col2im_kernel(graph, n):
    """(WindowKernel, the node whose memory the kernel reads as its columns) for col2im node n,
    or None when n is not a float col2im of 2-D windows with one leading and one trailing axis."""
    d = graph.node(n)
    a = d["attrs"]
    if d["dtype"] not in ("float32", "float64") or len(a["kernel"]) != 2 or a["axis"] != 1 or len(d["shape"]) != 4:
        return None
    (src,) = graph.args(n)
    cols = tuple(graph.node(src)["shape"])
    if len(cols) != 6:
        return None
    offset_major, s = False, graph.node(src)
    if s["op"] == "permute" and tuple(s["attrs"]["perm"]) == _OFFSET_MAJOR:
        src, offset_major = graph.args(src)[0], True
    nb, h, w, c = d["shape"]
    (kh, kw), (sh, sw), (dh, dw) = a["kernel"], a["stride"], a["dilation"]
    (ph, ph_hi), (pw, pw_hi) = a["pads"]
    tiles = (sh, sw) == (kh, kw) and (dh, dw) == (1, 1) and ph == 0 and pw == 0 and ph_hi <= 0 and pw_hi <= 0
    k = WindowKernel(id=n, name=f"g{n}", ctype="float" if d["dtype"] == "float32" else "double", n=nb, h=h, w=w, c=c,
                     oh=cols[1], ow=cols[2], kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw, ph=ph, pw=pw,
                     offset_major=offset_major, tiles=tiles, parallel=int(prod(d["shape"]) >= PARALLEL_ELEMENTS and nb > 1),
                     bytes_read=graph.nbytes(src), bytes_written=graph.nbytes(n))
    return k, src


def _plain(graph, n):
    """Whether node n's value is contiguous by construction (an op's own result, or a reshape of one)."""
    d = graph.node(n)
    if d["op"] == "reshape":
        return _plain(graph, graph.args(n)[0])
    return d["op"] not in VIEW_OPS


def im2col_kernel(graph, n):
    """(WindowKernel, its input node) for im2col node n, or None when n is not a float im2col of
    2-D windows of (N, H, W, C) with C >= 8 (a few channels: the NumPy kernel's copy per offset,
    runs of a row's windows, is faster) whose input is contiguous or read by overlapping windows."""
    d = graph.node(n)
    a = d["attrs"]
    (src,) = graph.args(n)
    x = tuple(graph.node(src)["shape"])
    if d["dtype"] not in ("float32", "float64") or len(a["kernel"]) != 2 or a["axis"] != 1 or len(x) != 4 \
            or x[3] < 8:
        return None
    (kh, kw), (sh, sw), (dh, dw) = a["kernel"], a["stride"], a["dilation"]
    if not _plain(graph, src) and kh * kw <= sh * sw:
        return None
    (ph, _), (pw, _) = a["pads"]
    v = float(a["value"])
    special = "NAN" if math.isnan(v) else ("INFINITY" if v > 0 else "-INFINITY") if math.isinf(v) else ""
    nb, h, w, c = x
    k = WindowKernel(id=n, name=f"g{n}", ctype="float" if d["dtype"] == "float32" else "double", n=nb, h=h, w=w, c=c,
                     oh=d["shape"][1], ow=d["shape"][2], kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw, ph=ph, pw=pw,
                     offset_major=False, tiles=False, parallel=int(prod(d["shape"]) >= PARALLEL_ELEMENTS and nb > 1),
                     bytes_read=graph.nbytes(src), bytes_written=graph.nbytes(n), ops="im2col", value=repr(v),
                     special=special)
    return k, src


def _only_user(graph, n, op):
    users = graph.users(n)
    return users[0] if len(users) == 1 and graph.node(users[0])["op"] == op and len(graph.args(users[0])) == 1 \
        else None


def wide_column_gradient(graph, n, storage):
    """(col2im node, weight view) when matmul node n is window_matmul's column gradient, K products
    g @ w_k of (M, O) @ (O, C) into window-offset-major memory read only by a col2im that runs as a
    C kernel: then one GEMM of g with the weight as an (O, K * C) matrix writes the same values
    window-position-major into the same planned buffer (~20% faster than K narrow products: each
    is C = 32 columns wide for a 32-channel input), and the col2im kernel reads that order."""
    d = graph.node(n)
    if d["op"] != "matmul" or d["dtype"] not in ("float32", "float64") or len(d["shape"]) != 3 or \
            (storage.get(n) or ("",))[0] != "pool":
        return None
    a, b = graph.args(n)
    db = graph.node(b)
    if len(graph.node(a)["shape"]) != 2 or db["op"] != "permute" or tuple(db["attrs"]["perm"]) != (1, 0, 2):
        return None
    r = _only_user(graph, n, "reshape")
    p = r is not None and _only_user(graph, r, "permute")
    c = p and tuple(graph.node(p)["attrs"]["perm"]) == _OFFSET_MAJOR and _only_user(graph, p, "col2im")
    if not c or col2im_kernel(graph, c) is None:
        return None
    return c, b


def render_window(k, where):
    return render("c/windows.c.j2", w=k, where=where)
