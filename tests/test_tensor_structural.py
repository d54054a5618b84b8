"""The structural tensor functions beyond what the op database checks: layout facts read off the
array (stride, contiguity, offsets, sizes), type(), the in-place variants, functions without
tensor inputs, hand-computed values, and the named errors for bad input."""
import numpy as np
import pytest

import gradc


def _t(a, **k):
    return gradc.tensor(np.asarray(a), **k)


# ---------------------------------------------------------------------- layout facts
def test_stride_counts_elements_and_follows_views():
    x = gradc.zeros(3, 4, 5)
    assert x.stride() == (20, 5, 1) and x.stride(1) == 5 and x.stride(-1) == 1
    assert x.transpose(0, 2).stride() == (1, 5, 20)
    assert x.expand(2, 3, 4, 5).stride() == (0, 20, 5, 1)
    assert x[:, 1:3].stride() == (20, 5, 1)
    assert gradc.zeros(()).stride() == ()


def test_is_contiguous_ignores_size_one_dims_and_sees_transposes():
    x = gradc.zeros(3, 4)
    assert x.is_contiguous() and not x.t().is_contiguous()
    assert x[:, :1].is_contiguous() is False
    assert x[:1].is_contiguous() and x.unsqueeze(1).is_contiguous()
    assert gradc.zeros(0, 3).t().is_contiguous()   # empty: contiguous, as in PyTorch
    assert not gradc.zeros(3, 1).expand(3, 4).is_contiguous()


def test_contiguous_copies_only_what_is_not_row_major():
    x = gradc.arange(12.0).reshape(3, 4)
    assert x.contiguous() is x
    y = x.t().contiguous()
    assert y.is_contiguous() and y.stride() == (3, 1) and y.tolist() == x.t().tolist()
    a = gradc.ones(3, 4, requires_grad=True)
    (a.t().contiguous() * gradc.arange(12.0).reshape(4, 3)).sum().backward()
    assert a.grad.tolist() == gradc.arange(12.0).reshape(4, 3).t().tolist()
    with pytest.raises(ValueError, match="memory_format"):
        x.contiguous(memory_format="channels_last")


def test_storage_offset_data_ptr_and_byte_sizes():
    x = gradc.arange(12.0).reshape(3, 4)
    v = x[1:, 2:]
    assert x.storage_offset() == 0 and v.storage_offset() == 6
    assert v.data_ptr() - x.data_ptr() == 6 * 4
    assert x.nbytes == 48 and x.itemsize == 4 and x.double().itemsize == 8 and v.nbytes == 16
    assert x.element_size() == x.itemsize


def test_traced_tensors_report_the_row_major_layout_and_have_no_address():
    seen = {}

    def f(x):
        y = x.t() * 2
        seen["stride"], seen["contig"] = y.stride(), y.is_contiguous()
        return y

    gradc.compile(f, backend="numpy")(gradc.ones(3, 4))
    assert seen == {"stride": (3, 1), "contig": True}
    with pytest.raises(gradc.TraceError, match="data_ptr"):
        gradc.compile(lambda x: x + x.data_ptr(), backend="numpy", fullgraph=True)(gradc.ones(2))


def test_type_strings_and_casts():
    x = gradc.ones(2)
    assert x.type() == "torch.FloatTensor" and x.long().type() == "torch.LongTensor"
    assert x.type("torch.DoubleTensor").dtype is gradc.float64
    assert x.type(gradc.int64).dtype is gradc.int64
    assert x.type(gradc.DoubleTensor).dtype is gradc.float64
    with pytest.raises(gradc.DTypeError, match="uint8"):
        x.type("torch.ByteTensor")
    with pytest.raises(gradc.DTypeError, match="not a tensor type name"):
        x.type("numpy.FloatTensor")


def test_predicates():
    assert gradc.is_nonzero(_t([2.0])) and not _t(0).is_nonzero()
    with pytest.raises(gradc.ShapeError, match="exactly one element"):
        gradc.is_nonzero(gradc.ones(2))
    assert gradc.is_complex(gradc.ones(2)) is False


# ---------------------------------------------------------------------- in place
def test_shape_changing_in_place_ops_rebind_the_tensor():
    x = gradc.arange(6.0).reshape(2, 3)
    assert x.unsqueeze_(0) is x and x.shape == (1, 2, 3)
    x.squeeze_()
    assert x.shape == (2, 3)
    x.t_()
    assert x.shape == (3, 2) and x.tolist() == [[0, 3], [1, 4], [2, 5]]
    x.transpose_(0, 1)
    assert x.tolist() == [[0, 1, 2], [3, 4, 5]]
    a = gradc.ones(2, 3, requires_grad=True)
    y = a * 2
    y.unsqueeze_(0)
    (y * gradc.arange(6.0).reshape(1, 2, 3)).sum().backward()
    assert a.grad.tolist() == [[0, 2, 4], [6, 8, 10]]
    with pytest.raises(gradc.AutogradError, match="leaf"):
        a.unsqueeze_(0)
    with pytest.raises(gradc.TraceError, match="x = x.squeeze"):
        gradc.compile(lambda t: t.squeeze_(), backend="numpy", fullgraph=True)(gradc.ones(1, 2))


def test_shape_changing_in_place_ops_compile_on_values_made_inside():
    def f(a):
        y = a * 2
        y.unsqueeze_(0)
        y.transpose_(0, 2)
        z = y.sum(1)
        z.t_()
        return y, z

    x = gradc.arange(6.0).reshape(2, 3)
    want = f(x)
    for backend in ("numpy", "c"):
        got = gradc.compile(f, backend=backend, fullgraph=True)(x)
        assert [g.shape for g in got] == [w.shape for w in want] == [(3, 2, 1), (1, 3)]
        assert all(g.tolist() == w.tolist() for g, w in zip(got, want))
    assert x.shape == (2, 3)


def test_index_ops_in_place_return_self():
    x = gradc.zeros(3, 2)
    assert x.index_add_(0, _t([0, 0, 2]), gradc.ones(3, 2)) is x
    assert x.tolist() == [[2, 2], [0, 0], [1, 1]]
    x.index_fill_(1, _t([1]), -1.0)
    assert x.tolist() == [[2, -1], [0, -1], [1, -1]]
    x.index_copy_(0, _t([1]), _t([[5.0, 6.0]]))
    assert x[1].tolist() == [5, 6]
    x.index_put_((_t([0]), _t([0])), _t(9.0), accumulate=True)
    assert x[0, 0].item() == 11
    x.masked_scatter_(x < 0, _t([7.0, 8.0, 9.0]))
    assert x[:, 1].tolist() == [7, 6, 8]   # the true entries, in order, take the first source elements
    x.scatter_reduce_(0, _t([[0, 0]]), _t([[1.0, 100.0]]), "amax")
    assert x[0].tolist() == [11, 100]


def test_writes_into_a_diagonal_reach_the_tensor_or_fail_never_vanish():
    x = gradc.zeros(3, 4)
    x.diagonal(1).add_(2.0)                  # a view, as in PyTorch: x changes
    assert x.tolist() == [[0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 2]]
    with pytest.raises(gradc.AutogradError, match="cannot be written in place"):
        x.t().diagonal().fill_(1.0)          # gradc's result is a copy here: the write must not be lost silently
    with pytest.raises(gradc.AutogradError, match="cannot be written in place"):
        x.unfold(1, 2, 2).fill_(1.0)
    assert x.sum().item() == 6 and (x.unfold(1, 2, 2) * 2).shape == (3, 2, 2)


def test_index_copy_with_repeated_indices_writes_the_last():
    x = gradc.index_copy(gradc.zeros(2), 0, _t([1, 1]), _t([1.0, 3.0]))
    assert x.tolist() == [0, 3]   # PyTorch's loop writes the last


# ---------------------------------------------------------------------- functions without tensor inputs
def test_tril_and_triu_indices_match_torch():
    torch = pytest.importorskip("torch")
    for args in [(3, 3), (4, 3, 1), (3, 5, -1), (0, 2), (2, 4, 7)]:
        assert gradc.tril_indices(*args).tolist() == torch.tril_indices(*args).tolist(), args
        assert gradc.triu_indices(*args).tolist() == torch.triu_indices(*args).tolist(), args
    assert gradc.tril_indices(3, 3).dtype is gradc.int64
    assert gradc.triu_indices(3, 3, dtype=gradc.int32).dtype is gradc.int32


def test_broadcast_shapes_and_hand_values():
    assert gradc.broadcast_shapes((2, 1), (3,), 1) == (2, 3)
    with pytest.raises(gradc.ShapeError, match=r"\(2,\) and \(3,\)"):
        gradc.broadcast_shapes((2,), (3,))
    assert gradc.kron(_t([1, 2]), _t([1, 10])).tolist() == [1, 10, 2, 20]
    assert gradc.cross(_t([1.0, 0, 0]), _t([0.0, 1, 0]), dim=0).tolist() == [0, 0, 1]
    assert gradc.diff(_t([1, 4, 9, 16])).tolist() == [3, 5, 7]
    assert gradc.searchsorted(_t([1, 3, 5]), 3).item() == 1
    assert gradc.searchsorted(_t([1, 3, 5]), 3, right=True).item() == 2
    assert gradc.bucketize(_t([0, 3, 6]), _t([1, 3, 5])).tolist() == [0, 1, 3]
    assert gradc.histc(_t([0.0, 0.1, 0.5, 1.0, 2.0]), bins=2, min=0, max=1).tolist() == [2, 2]
    assert gradc.logcumsumexp(_t([-1000.0, 0.0]), 0).tolist() == pytest.approx([-1000.0, 0.0])
    assert gradc.median(_t([1.0, 3.0, 2.0, 4.0])).item() == 2.0     # the lower of the two middles
    values, indices = gradc.mode(_t([3.0, 1.0, 3.0, 1.0, 2.0]))
    assert (values.item(), indices.item()) == (1.0, 3)
    assert gradc.block_diag(_t([[1]]), _t([2, 3])).tolist() == [[1, 0, 0], [0, 2, 3]]
    assert gradc.combinations(_t([1, 2, 3])).tolist() == [[1, 2], [1, 3], [2, 3]]
    assert gradc.combinations(_t([1, 2]), r=3).shape == (0, 3)


def test_named_tuples_have_values_and_indices():
    x = _t([[3.0, 1.0, 2.0]])
    for fn in (lambda: gradc.cummax(x, 1), lambda: gradc.cummin(x, 1), lambda: x.median(1),
               lambda: x.kthvalue(2), lambda: x.mode(), lambda: gradc.nanmedian(x, 1)):
        out = fn()
        assert out.values.shape == out.indices.shape and out.indices.dtype is gradc.int64
    assert type(gradc.cummax(x, 1)).__name__ == "cummax"
    assert gradc.kthvalue(x, 2).indices.tolist() == [2]


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, match", [
    (lambda: gradc.index_add(gradc.zeros(3, 4), 1, _t([0, 1]), gradc.ones(3, 3)), r"\(3, 3\).*needs \(3, 2\)"),
    (lambda: gradc.index_add(gradc.zeros(3), 0, _t([0.0]), gradc.ones(1)), "int64"),
    (lambda: gradc.hsplit(gradc.zeros(2, 5), 2), "cannot be split into 2 equal sections"),
    (lambda: gradc.vsplit(gradc.zeros(4), 2), "at least 2 dims"),
    (lambda: gradc.tensordot(gradc.zeros(2, 3), gradc.zeros(4, 2)), "equal sizes"),
    (lambda: gradc.mv(gradc.zeros(2, 3), gradc.zeros(4)), r"needs 3 entries"),
    (lambda: gradc.cross(gradc.zeros(2, 4), gradc.zeros(2, 4), dim=1), "expected 3"),
    (lambda: gradc.kthvalue(gradc.zeros(3), 4), "k=4 is out of range"),
    (lambda: gradc.quantile(gradc.zeros(3), 1.5), r"\[0, 1\]"),
    (lambda: gradc.zeros(2, 3).unfold(1, 4, 1), "size 4 is out of range"),
    (lambda: gradc.zeros(2, 3).sum_to_size(2, 2), "not expandable"),
    (lambda: gradc.masked_scatter(gradc.zeros(2), _t([True, True]), gradc.ones(1)), "fewer elements"),
    (lambda: gradc.searchsorted(gradc.zeros(2, 3), gradc.zeros(3, 2)), "share every dim"),
    (lambda: gradc.diagonal(gradc.zeros(3, 3), 0, 1, 1), "must differ"),
    (lambda: gradc.rot90(gradc.zeros(3)), "at least 2 dims"),
    (lambda: gradc.cdist(gradc.zeros(3, 2), gradc.zeros(3, 4)), "same last dim"),
])
def test_bad_input_gets_a_named_error(call, match):
    with pytest.raises(gradc.GradcError, match=match):
        call()


def test_unknown_options_are_value_errors_naming_the_choices():
    with pytest.raises(ValueError, match="'amax'"):
        gradc.scatter_reduce(gradc.zeros(3), 0, _t([0]), gradc.ones(1), "max")
    with pytest.raises(ValueError, match="'midpoint'"):
        gradc.quantile(gradc.zeros(3), 0.5, interpolation="middle")


def test_masked_scatter_short_source_fails_compiled_as_eagerly():
    f = gradc.compile(lambda x, m, s: x.masked_scatter(m, s), backend="numpy", fullgraph=True)
    with pytest.raises(gradc.GradcError, match="fewer elements"):
        f(gradc.zeros(3), _t([True, True, True]), gradc.ones(2))


# ---------------------------------------------------------------------- eager parity beyond the database's samples
def _seeded(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


_A, _B = _seeded((4, 5)), _seeded((2, 5), 1)
_IDX = np.array([[0, 1, 0, 1, 2], [1, 1, 0, 0, 2]])
PARITY = {
    "scatter_reduce sum": lambda T: T.tensor(_A).scatter_reduce(0, T.tensor(_IDX), T.tensor(_B), "sum"),
    "scatter_reduce amin": lambda T: T.tensor(_A).scatter_reduce(0, T.tensor(_IDX), T.tensor(_B), "amin",
                                                                 include_self=False),
    "scatter_reduce mean int": lambda T: T.tensor([10, 20]).scatter_reduce(0, T.tensor([0, 0, 1]), T.tensor([1, 2, 3]),
                                                                          "mean"),
    "scatter_reduce prod int": lambda T: T.tensor([2, 3, 4]).scatter_reduce(0, T.tensor([0, 0, 2, 2]),
                                                                           T.tensor([2, 0, 5, 3]), "prod",
                                                                           include_self=False),
    "hstack 2-D": lambda T: T.hstack([T.tensor(_A), T.tensor(_A)]),
    "vstack mixed dtypes": lambda T: T.vstack([T.tensor([1, 2]), T.tensor([1.0, 2.0])]),
    "tensor_split sections": lambda T: T.tensor_split(T.arange(7), 3),
    "tensor_split index tensor": lambda T: T.tensor_split(T.arange(7), T.tensor([2, 5])),
    "tensor_split past the end": lambda T: T.tensor_split(T.arange(6), [4, 2, -1, 9]),
    "rot90 k=-2": lambda T: T.rot90(T.tensor(_A), -2),
    "rot90 negative dims": lambda T: T.rot90(T.tensor(_A), 1, [-1, -2]),
    "combinations r=2": lambda T: T.combinations(T.tensor([1.0, 2.0, 3.0, 4.0])),
    "unfold step 1": lambda T: T.tensor(_A).unfold(0, 2, 1),
    "unfold 0-d": lambda T: T.tensor(3.0).unfold(0, 1, 1),
    "masked_scatter full mask": lambda T: T.tensor(_A).masked_scatter(T.tensor(_A > 0), T.arange(20.0).double()),
    "searchsorted 1-D": lambda T: T.searchsorted(T.tensor([1.0, 3.0, 5.0]), T.tensor(_A)),
    "searchsorted sorter": lambda T: T.searchsorted(T.tensor([5.0, 1.0, 3.0]), T.tensor([2.5, 3.0]),
                                                   sorter=T.tensor([1, 2, 0])),
    "searchsorted out_int32": lambda T: T.searchsorted(T.tensor([1.0, 3.0]), T.tensor([2.0]), out_int32=True),
    "bucketize": lambda T: T.bucketize(T.tensor(_A), T.tensor([-1.0, 0.0, 1.0])),
    "isin ints": lambda T: T.isin(T.tensor([1, 2, 3, 4, 5, 2]), T.tensor([2, 5, 9])),
    "isin scalar": lambda T: T.isin(T.tensor([1, 3, 5]), 3),
    "histc range": lambda T: T.histc(T.tensor(_A.ravel()), bins=5, min=-1, max=1),
    "histc constant": lambda T: T.histc(T.tensor([2.0, 2.0, 2.0]), bins=4),
    "tensordot int dims": lambda T: T.tensordot(T.tensor(_seeded((2, 3, 4))), T.tensor(_seeded((3, 4, 5))), 2),
    "tensordot dims=0": lambda T: T.tensordot(T.tensor([2.0, 1.0]), T.tensor([1.0, 3.0]), dims=0),
    "inner 0-d": lambda T: T.inner(T.tensor(2.0), T.tensor([1.0, 3.0])),
    "kron ints": lambda T: T.kron(T.tensor([[1, 2], [3, 4]]), T.tensor([1, -1])),
    "cross dim=1": lambda T: T.cross(T.tensor(_seeded((4, 3))), T.tensor(_seeded((4, 3), 1)), dim=1),
    "diff n=2": lambda T: T.diff(T.tensor(_A), n=2),
    "diff bool": lambda T: T.diff(T.tensor([True, False, False, True])),
    "diff append": lambda T: T.diff(T.tensor(_A), dim=0, append=T.tensor(_B[:1])),
    "diagonal past the edge": lambda T: T.diagonal(T.tensor(_A), 7),
    "diag_embed": lambda T: T.diag_embed(T.tensor(_B)),
    "diag_embed ints": lambda T: T.diag_embed(T.tensor([1, 2]), -1),
    "cdist p=1": lambda T: T.cdist(T.tensor(_A), T.tensor(_B), p=1),
    "cdist p=0": lambda T: T.cdist(T.tensor(_A), T.tensor(_B), p=0),
    "cdist p=inf": lambda T: T.cdist(T.tensor(_A), T.tensor(_B), p=float("inf")),
    "cdist forced mm": lambda T: T.cdist(T.tensor(_A), T.tensor(_B), compute_mode="use_mm_for_euclid_dist"),
    "dist": lambda T: T.dist(T.tensor(_A), T.tensor(_B[0])),
    "pdist": lambda T: T.pdist(T.tensor(_A)),
    "renorm p=1": lambda T: T.renorm(T.tensor(_seeded((2, 3, 4))), 1, 1, 2.0),
    "cov": lambda T: T.cov(T.tensor(_A)),
    "cov ints": lambda T: T.cov(T.tensor([[1, 2, 4], [3, 1, 0]])),
    "corrcoef 1-D": lambda T: T.corrcoef(T.tensor([1.0, 2.0, 4.0])),
    "vander": lambda T: T.vander(T.tensor([1.0, 2.0, 3.0])),
    "vander N=0": lambda T: T.vander(T.tensor([1.0, 2.0]), N=0),
    "cummax ints dim 0": lambda T: T.cummax(T.tensor([[1, 4], [3, 2], [0, 5]]), 0),
    "cummax ties and NaN": lambda T: T.cummax(T.tensor([[1.0, 1.0, 0.0, 2.0, 2.0], [3, float("nan"), 1, 5, 0]]), 1),
    "cummin ties": lambda T: T.cummin(T.tensor([1.0, 1.0, 0.0, 2.0, 0.0]), 0),
    "logcumsumexp -inf": lambda T: T.logcumsumexp(T.tensor([[-1000.0, 0.0, 1.0, -float("inf")]]), 1),
    "nansum all": lambda T: T.nansum(T.tensor([1.0, float("nan"), 2.0])),
    "nansum ints": lambda T: T.nansum(T.tensor([1, 2, 3])),
    "median dim": lambda T: T.median(T.tensor(_A), 1),
    "median NaN": lambda T: T.median(T.tensor([[1.0, float("nan"), 2.0, 4.0]]), 1),
    "median ints": lambda T: T.median(T.tensor([3, 1, 2, 5])),
    "median empty": lambda T: T.median(T.zeros(0)),
    "kthvalue": lambda T: T.kthvalue(T.tensor(_A), 2),
    "mode rows": lambda T: T.mode(T.tensor([[3.0, 1.0, 3.0, 1.0, 2.0], [1.0, 2.0, 2.0, 0.0, 5.0]])),
    "mode ints": lambda T: T.mode(T.tensor([2, 2, 1, 1, 3])),
    **{f"quantile {m}": (lambda T, m=m: T.quantile(T.tensor(_A), T.tensor([0.1, 0.5, 0.9]).double(), dim=1,
                                                   interpolation=m))
       for m in ("lower", "higher", "midpoint", "nearest")},
    "quantile all": lambda T: T.quantile(T.tensor(_A), 0.7),
    "quantile NaN": lambda T: T.quantile(T.tensor([[1.0, float("nan"), 3.0], [1.0, 2.0, 3.0]]), 0.5, dim=1),
    "nanquantile all NaN": lambda T: T.nanquantile(T.tensor([[float("nan")] * 2, [1.0, 2.0]]), 0.5, dim=1),
    "std_mean all": lambda T: T.std_mean(T.tensor(_A)),
    "var_mean unbiased=False": lambda T: T.var_mean(T.tensor(_A), 1, False),
    "index_put bool mask": lambda T: T.zeros(3).index_put((T.tensor([True, False, True]),), T.tensor(1.0)),
    "index_fill 0-d index": lambda T: T.index_fill(T.tensor([1, 2, 3]), 0, T.tensor(1), 7),
    "take empty": lambda T: T.take(T.ones(2, 2), T.zeros(0, dtype=T.int64)),
    "block_diag promotes": lambda T: T.block_diag(T.tensor([[1, 2]]), T.tensor([[1.5]])),
    "block_diag empty": lambda T: T.block_diag(T.ones(0, 2), T.ones(1, 1)),
    "cartesian_prod one": lambda T: T.cartesian_prod(T.tensor([1, 2])),
    "atleast_3d list": lambda T: T.atleast_3d([T.tensor(1.0), T.ones(2), T.ones(2, 3)]),
    "column_stack 0-d": lambda T: T.column_stack([T.tensor(1.0), T.tensor(2.0)]),
    "moveaxis": lambda T: T.moveaxis(T.tensor(_seeded((2, 3, 4))), (0, 1), (2, 0)),
    "ravel of a transpose": lambda T: T.ravel(T.tensor(_A).t()),
}


@pytest.mark.parametrize("name", sorted(PARITY))
def test_matches_torch_eagerly(name):
    torch = pytest.importorskip("torch")
    want, got = PARITY[name](torch), PARITY[name](gradc)
    want, got = (want, got) if isinstance(want, tuple) else ((want,), (got,))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype.name == str(w.dtype).replace("torch.", ""), (g.dtype, w.dtype)
        assert g.shape == tuple(w.shape)
        tol = 1e-12 if g.dtype is gradc.float64 else 2e-6
        np.testing.assert_allclose(np.asarray(g.numpy(), dtype=float), w.double().numpy(), rtol=tol, atol=tol)


# ---------------------------------------------------------------------- how models use them
def _graph_step(lib, x, w, src, dst, n):
    """A message-passing layer (GNN scripts' index_add_ / scatter_reduce) and an image-patch
    embedding (ViT scripts' unfold): loss and gradients."""
    msg = (x.index_select(0, src) @ w).tanh()
    agg = lib.zeros(n, w.shape[1], dtype=x.dtype).index_add(0, dst, msg)
    peak = lib.zeros(n, w.shape[1], dtype=x.dtype).scatter_reduce(
        0, dst.unsqueeze(1).expand(-1, w.shape[1]), msg, "amax", include_self=False)
    img = x[:, :4].reshape(1, 1, n, 4)
    patches = img.unfold(2, 2, 2).unfold(3, 2, 2).reshape(-1, 4)
    dists = lib.cdist(patches, patches)
    loss = agg.pow(2).mean() + peak.sum() + lib.logcumsumexp(dists, 1).mean() + lib.median(agg, 1).values.sum()
    loss.backward()
    return loss.detach(), w.grad, x.grad


def test_a_message_passing_step_matches_torch_eagerly_and_compiled():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((6, 5)), rng.standard_normal((5, 3))
    src, dst = rng.integers(0, 6, 10), rng.integers(0, 6, 10)

    def run(lib, compiled=False):
        xs = [lib.tensor(x, requires_grad=True), lib.tensor(w, requires_grad=True), lib.tensor(src), lib.tensor(dst)]
        fn = (lambda *a: _graph_step(lib, *a, 6)) if not compiled else gradc.compile(
            lambda *a: _graph_step(lib, *a, 6), backend="c", fullgraph=True)
        return [np.asarray(o.detach().numpy()) for o in fn(*xs)]

    want = run(torch)
    for got in (run(gradc), run(gradc, compiled=True)):
        for g, t in zip(got, want):
            np.testing.assert_allclose(g, t, rtol=1e-10, atol=1e-12)
