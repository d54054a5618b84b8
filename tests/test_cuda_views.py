"""Views feeding fused groups: permutes, transposes, slices, expands and reshapes (of contiguous
and of permuted values) compiled for CUDA equal eager on the host check, forward and backward.

A generated kernel indexes its operands as contiguous rows: every operand that is not a plain
contiguous buffer is materialised first, and a reshape inside a group reads its source at the
same flat index (not as a broadcast of the source to the reshape's shape). A state updated in
place whose array is a view is written through a contiguous buffer and copied into it."""
import numpy as np
import pytest

import gradc
from gradc.runtime import cuda_emulation, native

pytestmark = pytest.mark.skipif(not cuda_emulation.available(), reason="needs g++ to build kernels for the host")


@pytest.fixture(autouse=True, scope="module")
def _cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADC_CACHE_DIR", str(tmp_path_factory.mktemp("gradc_cache")))
        yield


def _t(*shape, seed=0):
    return gradc.tensor(np.random.default_rng(seed + len(shape) * 31 + sum(shape)).standard_normal(shape)
                        .astype(np.float32))


# name -> (function, operand shapes)
CHAINS = {
    "permute_reshape_merging_rows": (lambda a, b: a.permute(1, 0, 2).reshape(30, 6) + b, ((2, 30, 3), (30, 6))),
    "permute_reshape_to_rows": (lambda a, b: a.permute(1, 0, 2).reshape(30, 6) + b, ((5, 6, 6), (30, 6))),
    "reshape_merging_a_row": (lambda a, b: a.reshape(5, 24) * b + 1.0, ((5, 6, 4), (5, 24))),
    "computed_permute_reshape": (lambda a, b: ((a * 2.0).permute(1, 0, 2).reshape(5, 24)).exp() + b,
                                 ((6, 5, 4), (5, 24))),
    "permute_reshape_softmax": (lambda a, b: (a.permute(1, 0, 2).reshape(5, 24) + b).softmax(-1),
                                ((6, 5, 4), (5, 24))),
    "reshape_of_a_sum_of_permutes": (lambda a, b: (a.permute(0, 2, 1) + b).reshape(4, 30).sum(-1),
                                     ((4, 5, 6), (4, 6, 5))),
    "transpose": (lambda a, b: a.t() * b + 1.0, ((7, 9), (9, 7))),
    "transpose_of_a_computed_value": (lambda a, b: (a + 1.0).t() * b, ((7, 9), (9, 7))),
    "transpose_reduced": (lambda a, b: (a.transpose(1, 2) + b).sum(-1), ((4, 5, 6), (4, 6, 5))),
    "slice": (lambda a, b: a[1:, 2:] + b, ((9, 8), (8, 6))),
    "strided_slice": (lambda a, b: a[::2, 1::2] * b, ((10, 8), (5, 4))),
    "slice_reshape": (lambda a, b: a[:, 1:].reshape(6, 2, 4) + b, ((6, 9), (6, 2, 4))),
    "slice_reshape_merging": (lambda a, b: a[:, :, 1:].reshape(6, 12) + b, ((6, 3, 5), (6, 12))),
    "expand": (lambda a, b: a.expand(8, 6) * b, ((1, 6), (8, 6))),
    "expand_inner": (lambda a, b: a.expand(4, 5, 6) * b, ((4, 1, 6), (4, 5, 6))),
    "expand_reshape": (lambda a, b: a.expand(4, 5, 6).reshape(4, 30) * b, ((4, 1, 6), (4, 30))),
    "reshape_expand": (lambda a, b: a.reshape(4, 1, 6).expand(4, 5, 6) + b, ((4, 6), (4, 5, 6))),
    "permute_twice": (lambda a, b: (a.permute(2, 0, 1) * b).permute(1, 2, 0).exp(), ((3, 4, 5), (5, 3, 4))),
    "permute_reshape_column_sum": (lambda a, b: (a.permute(1, 0, 2).reshape(30, 6) + b).sum(0),
                                   ((2, 30, 3), (30, 6))),
}


def _host_check(fn, args):
    prog = gradc.compile(fn, backend="cuda").lower(*args)
    return prog, cuda_emulation.run(prog, [t._data.copy() for t in prog.resolve(list(args))])


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_view_chain_into_a_fused_group_matches_eager(name):
    fn, shapes = CHAINS[name]
    args = [_t(*s, seed=i) for i, s in enumerate(shapes)]
    want = fn(*args).numpy()
    prog, got = _host_check(fn, args)
    assert prog.stats["launches"] >= 1 and prog.kernels, "the chain reaches a generated kernel"
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)


def test_a_reshape_inside_a_group_reads_its_source_at_the_same_flat_index():
    # (5, 6, 4) -> (5, 24) keeps the rows, so the reshape is a member of the add's group
    prog = gradc.compile(CHAINS["reshape_merging_a_row"][0], backend="cuda").lower(_t(5, 6, 4), _t(5, 24))
    assert len(prog.kernels) == 1 and "reshape" in prog.kernels[0][1].split("\n", 1)[0]
    body = prog.kernels[0][1].split("#else")[0]
    assert "/ 24) * 4" not in body and "% 4)" not in body   # not indexed as a broadcast of (6, 4) to (24,)


@pytest.mark.skipif(not native.available(), reason="needs backend c")
@pytest.mark.parametrize("name", ["permute_reshape_merging_rows", "reshape_merging_a_row", "slice_reshape_merging"])
def test_the_c_backend_reads_a_reshape_inside_a_group_the_same_way(name):
    fn, shapes = CHAINS[name]
    args = [_t(*s, seed=i) for i, s in enumerate(shapes)]
    np.testing.assert_allclose(gradc.compile(fn, backend="c")(*args).numpy(), fn(*args).numpy(), rtol=1e-5, atol=1e-5)


def test_gradients_through_permuted_and_reshaped_views_match_eager():
    w = _t(5, 24, seed=7)

    def step(a, b):
        y = (a.permute(1, 0, 2).reshape(5, 24) * w + b.t()).tanh()
        (y * y).sum().backward()
        return a.grad, b.grad
    shapes = ((6, 5, 4), (24, 5))
    make = lambda: [_t(*s, seed=i).requires_grad_() for i, s in enumerate(shapes)]  # noqa: E731
    want = step(*make())
    _, got = _host_check(step, make())
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-5, atol=1e-5)


def test_a_state_that_is_a_view_is_updated_in_place_through_a_contiguous_buffer():
    s = _t(6, 8, seed=3).t()   # a transposed view: the kernel cannot write it as rows

    def f(x):
        s.mul_(0.5).add_(x)
        return (s * 2.0).sum(-1)
    x = _t(8, 6, seed=4)
    before = s.numpy().copy()
    prog = gradc.compile(f, backend="cuda").lower(x)
    assert prog.stats["inplace_state_updates"] == 1
    assert "_written_back(" in prog.source["host.py"]
    arrays = [t._data for t in prog.resolve([x])]
    i = next(k for k, a in enumerate(arrays) if not a.flags.c_contiguous)
    state = arrays[i]
    out, new_state = cuda_emulation.run(prog, arrays)
    want = before * 0.5 + x.numpy()
    np.testing.assert_allclose(state, want, rtol=1e-6)          # the argument itself holds the update
    np.testing.assert_allclose(new_state, want, rtol=1e-6)
    np.testing.assert_allclose(out, (want * 2.0).sum(-1), rtol=1e-5)
    # a contiguous state is written by the kernel directly: no copy
    arrays = [np.ascontiguousarray(a) for a in arrays]
    _, new_state = cuda_emulation.run(prog, arrays)
    assert np.shares_memory(new_state, arrays[i])
