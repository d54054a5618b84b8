"""gradc.utils.data: datasets, samplers, collation and DataLoader (single process and a real
worker pool). Reproducibility is gradc's own: the same gradc.manual_seed (or Generator seed) gives
the same batches; orders are compared with torch where the order does not depend on a generator
(sequential sampling, batching, drop_last, collation, random_split's lengths)."""
import collections
import os

import numpy as np
import pytest

import gradc
from gradc import GradcError
from gradc.utils.data import (BatchSampler, ChainDataset, ConcatDataset, DataLoader, Dataset, IterableDataset,
                              RandomSampler, SequentialSampler, StackDataset, Subset, SubsetRandomSampler,
                              TensorDataset, WeightedRandomSampler, default_collate, default_convert,
                              get_worker_info, random_split)


def _xy(n=10):
    x = gradc.arange(n * 3, dtype=gradc.float32).reshape(n, 3)
    y = gradc.arange(n)
    return TensorDataset(x, y)


def _batches(loader):
    return [tuple(t.numpy().tolist() for t in b) for b in loader]


class Squares(Dataset):
    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return {"x": np.array([i, i * i], dtype=np.float32), "i": i, "name": f"s{i}"}

    def __len__(self):
        return self.n


class Stream(IterableDataset):
    """0..n-1, each worker taking every num_workers-th value (the sharding torch documents)."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))

    def __len__(self):
        return self.n


class Boom(Dataset):
    def __getitem__(self, i):
        if i == 3:
            raise KeyError(f"sample {i} is missing")
        return gradc.tensor([float(i)])

    def __len__(self):
        return 8


class SeedProbe(Dataset):
    def __getitem__(self, i):
        info = get_worker_info()
        return gradc.tensor([float(info.id if info else -1), float(info.seed % 1000 if info else -1)]), \
            gradc.rand(1)

    def __len__(self):
        return 4


# ------------------------------------------------------------------------------------------ datasets
def test_tensor_dataset_and_errors():
    ds = _xy(5)
    assert len(ds) == 5
    x, y = ds[2]
    assert x.numpy().tolist() == [6.0, 7.0, 8.0] and y.item() == 2
    with pytest.raises(gradc.ShapeError, match="first dimension"):
        TensorDataset(gradc.zeros(3, 2), gradc.zeros(4))
    with pytest.raises(GradcError, match="gradc tensors"):
        TensorDataset(np.zeros(3))


def test_concat_subset_stack_chain():
    a, b = _xy(3), _xy(4)
    cat = a + b
    assert isinstance(cat, ConcatDataset) and len(cat) == 7 and cat.cumulative_sizes == [3, 7]
    assert cat[3][1].item() == 0 and cat[-1][1].item() == 3 and cat[2][1].item() == 2
    with pytest.raises(IndexError):
        cat[7]
    sub = Subset(b, [3, 1])
    assert len(sub) == 2 and sub[0][1].item() == 3 and [s[1].item() for s in sub.__getitems__([1, 0])] == [1, 3]
    st = StackDataset(a, Squares(3))
    assert st[1][1]["i"] == 1 and len(st) == 3
    assert StackDataset(p=a, q=a)[0].keys() == {"p", "q"}
    with pytest.raises(gradc.ShapeError):
        StackDataset(a, b)
    assert list(ChainDataset([Stream(2), Stream(3)])) == [0, 1, 0, 1, 2]
    assert list(Stream(2) + Stream(1)) == [0, 1, 0]


def test_random_split_lengths_fractions_and_seeds():
    torch = pytest.importorskip("torch")
    ds = _xy(10)
    for lengths in ([3, 7], [0.3, 0.7], [0.25, 0.25, 0.5], [0.33, 0.33, 0.34], [1 / 3] * 3):
        got = [len(s) for s in random_split(ds, lengths)]
        want = [len(s) for s in torch.utils.data.random_split(range(10), lengths)]
        assert got == want, lengths
    # the parts partition the dataset, and the same seed gives the same split
    g1 = random_split(ds, [4, 6], generator=gradc.Generator().manual_seed(7))
    g2 = random_split(ds, [4, 6], generator=gradc.Generator().manual_seed(7))
    assert [list(s.indices) for s in g1] == [list(s.indices) for s in g2]
    assert sorted(g1[0].indices + g1[1].indices) == list(range(10))
    gradc.manual_seed(3)
    d1 = [list(s.indices) for s in random_split(ds, [5, 5])]
    gradc.manual_seed(3)
    d2 = [list(s.indices) for s in random_split(ds, [5, 5])]
    assert d1 == d2 and d1 != [list(range(5)), list(range(5, 10))]
    with pytest.raises(GradcError, match="sum to 9"):
        random_split(ds, [4, 5])
    with pytest.raises(GradcError, match="lengths"):
        random_split(ds, [-1, 11])


# ------------------------------------------------------------------------------------------ samplers
def test_samplers():
    ds = _xy(7)
    assert list(SequentialSampler(ds)) == list(range(7))
    g = gradc.Generator().manual_seed(0)
    perm = list(RandomSampler(ds, generator=g))
    assert sorted(perm) == list(range(7)) and perm != list(range(7))
    assert list(RandomSampler(ds, generator=gradc.Generator().manual_seed(0))) == perm
    assert list(RandomSampler(ds, generator=g)) != perm  # the generator moved on: a new epoch, a new order
    more = list(RandomSampler(ds, num_samples=16, generator=g))
    assert len(more) == 16 and sorted(more[:14]) == sorted(list(range(7)) * 2)
    rep = list(RandomSampler(ds, replacement=True, num_samples=50, generator=g))
    assert len(rep) == 50 and set(rep) <= set(range(7)) and len(set(rep)) < 7 + 1
    assert sorted(SubsetRandomSampler([5, 1, 3], generator=g)) == [1, 3, 5]
    w = list(WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], 200, generator=g))
    assert set(w) == {1, 3} and 100 < w.count(3) < 190
    assert sorted(WeightedRandomSampler([1, 1, 1, 0], 3, replacement=False, generator=g)) == [0, 1, 2]
    with pytest.raises(GradcError, match="without replacement"):
        WeightedRandomSampler([1, 0], 2, replacement=False)
    with pytest.raises(GradcError, match="num_samples"):
        RandomSampler(ds, num_samples=0)


def test_batch_sampler_matches_torch():
    torch = pytest.importorskip("torch")
    for bs in (1, 3, 7, 10):
        for drop in (False, True):
            got = BatchSampler(SequentialSampler(range(7)), bs, drop)
            want = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(7)), bs, drop)
            assert list(got) == list(want) and len(got) == len(want)
    with pytest.raises(GradcError, match="batch_size"):
        BatchSampler(range(3), 0, False)


# ------------------------------------------------------------------------------------------ collation
def test_default_collate_matches_torch():
    torch = pytest.importorskip("torch")
    Point = collections.namedtuple("Point", "x y")
    samples = [
        [(np.array([1.0, 2.0], dtype=np.float32), 3, 0.5, True, "a"), (np.array([3.0, 4.0], dtype=np.float32), 4, 1.5,
                                                                        False, "b")],
        [{"img": np.ones((2, 2)), "label": np.int64(3)}, {"img": np.zeros((2, 2)), "label": np.int64(1)}],
        [Point(1.0, [1, 2]), Point(2.0, [3, 4])],
        [[1, 2, 3], [4, 5, 6]],
        [collections.OrderedDict(a=1.0, b=np.float32(2.0)), collections.OrderedDict(a=3.0, b=np.float32(4.0))],
    ]

    def same(g, t):
        if isinstance(t, torch.Tensor):
            assert isinstance(g, gradc.Tensor), (g, t)
            assert g.shape == tuple(t.shape) and g.dtype.name == str(t.dtype).replace("torch.", ""), (g, t)
            np.testing.assert_array_equal(g.numpy(), t.numpy())
        elif isinstance(t, dict):
            assert type(g) is type(t) and list(g) == list(t)
            for k in t:
                same(g[k], t[k])
        elif isinstance(t, (list, tuple)):
            assert type(g) is type(t) and len(g) == len(t), (g, t)
            for a, b in zip(g, t):
                same(a, b)
        else:
            assert g == t
    for batch in samples:
        same(default_collate(batch), torch.utils.data.default_collate(batch))
    gbatch = [(gradc.tensor([1.0, 2.0]), gradc.tensor(3)), (gradc.tensor([5.0, 6.0]), gradc.tensor(4))]
    x, y = default_collate(gbatch)
    assert x.shape == (2, 2) and y.numpy().tolist() == [3, 4]
    with pytest.raises(gradc.ShapeError, match="different shapes"):
        default_collate([gradc.zeros(2), gradc.zeros(3)])
    with pytest.raises(gradc.ShapeError, match="same length"):
        default_collate([[1, 2], [3]])
    with pytest.raises(gradc.DTypeError, match="found object"):
        default_collate([object(), object()])
    with pytest.raises(gradc.DTypeError, match="dtype <U1"):
        default_collate([np.array(["a"]), np.array(["b"])])
    conv = default_convert({"a": np.arange(3), "b": (np.float32(1.0), "s")})
    assert isinstance(conv["a"], gradc.Tensor) and isinstance(conv["b"], list) and conv["b"][1] == "s"
    assert isinstance(conv["b"][0], gradc.Tensor) and conv["b"][0].dtype is gradc.float32


# ------------------------------------------------------------------------------------------ DataLoader
def test_sequential_batches_match_torch():
    torch = pytest.importorskip("torch")
    x = np.arange(33, dtype=np.float32).reshape(11, 3)
    y = np.arange(11)
    tds = torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y))
    for kw in (dict(batch_size=4), dict(batch_size=4, drop_last=True), dict(batch_size=11), dict(batch_size=1),
               dict(batch_size=5, sampler=SequentialSampler(range(11)))):
        tkw = dict(kw)
        if "sampler" in tkw:
            tkw["sampler"] = torch.utils.data.SequentialSampler(range(11))
        got = DataLoader(TensorDataset(gradc.tensor(x), gradc.tensor(y)), **kw)
        want = torch.utils.data.DataLoader(tds, **tkw)
        assert _batches(got) == [tuple(t.numpy().tolist() for t in b) for b in want]
        assert len(got) == len(want)
    # batch_size=None: samples unbatched, NumPy converted
    got = list(DataLoader(Squares(3), batch_size=None))
    assert got[2]["i"] == 2 and isinstance(got[2]["x"], gradc.Tensor) and got[2]["x"].shape == (2,)


def test_shuffle_is_reproducible_from_the_global_seed_and_a_generator():
    ds = _xy(20)
    gradc.manual_seed(5)
    loader = DataLoader(ds, batch_size=6, shuffle=True)
    epoch1, epoch2 = _batches(loader), _batches(loader)
    gradc.manual_seed(5)
    assert _batches(loader) == epoch1 and _batches(loader) == epoch2
    assert epoch1 != epoch2  # each epoch draws a new order
    seen = sorted(v for b in epoch1 for v in b[1])
    assert seen == list(range(20))
    assert epoch1 != _batches(DataLoader(ds, batch_size=6))  # shuffled, not sequential
    g = gradc.Generator().manual_seed(11)
    a = _batches(DataLoader(ds, batch_size=6, shuffle=True, generator=g))
    g.manual_seed(11)
    gradc.manual_seed(999)  # a generator makes the order independent of the global seed
    assert _batches(DataLoader(ds, batch_size=6, shuffle=True, generator=g)) == a


def test_loader_argument_checks():
    ds = _xy(4)
    with pytest.raises(GradcError, match="exclude each other"):
        DataLoader(ds, sampler=SequentialSampler(ds), shuffle=True)
    with pytest.raises(GradcError, match="batch_sampler"):
        DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), 2, False), batch_size=2)
    with pytest.raises(GradcError, match="drop_last"):
        DataLoader(ds, batch_size=None, drop_last=True)
    with pytest.raises(GradcError, match="shuffled"):
        DataLoader(Stream(3), shuffle=True)
    with pytest.raises(GradcError, match="prefetch_factor"):
        DataLoader(ds, prefetch_factor=2)
    with pytest.raises(GradcError, match="num_workers"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(GradcError, match="persistent_workers"):
        DataLoader(ds, persistent_workers=True)
    with pytest.warns(UserWarning, match="pin_memory"):
        DataLoader(ds, pin_memory=True)
    bs = DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), 3, False))
    assert _batches(bs) == _batches(DataLoader(ds, batch_size=3)) and len(bs) == 2


def test_iterable_dataset_batches():
    assert [b.numpy().tolist() for b in DataLoader(Stream(7), batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [b.numpy().tolist() for b in DataLoader(Stream(7), batch_size=3, drop_last=True)] == [[0, 1, 2], [3, 4, 5]]
    assert len(DataLoader(Stream(7), batch_size=3)) == 3
    assert [b for b in DataLoader(Stream(3), batch_size=None)] == [0, 1, 2]


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_workers_give_the_same_batches_as_one_process(start):
    if start not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"no {start} start method here")
    ds = _xy(23)
    gradc.manual_seed(1)
    single = _batches(DataLoader(ds, batch_size=4, shuffle=True))
    gradc.manual_seed(1)
    multi = DataLoader(ds, batch_size=4, shuffle=True, num_workers=2, multiprocessing_context=start)
    assert _batches(multi) == single
    dicts = list(DataLoader(Squares(5), batch_size=2, num_workers=3, multiprocessing_context=start))
    assert [d["i"].numpy().tolist() for d in dicts] == [[0, 1], [2, 3], [4]] and dicts[1]["name"] == ["s2", "s3"]
    assert dicts[0]["x"].dtype is gradc.float32 and dicts[0]["x"].shape == (2, 2)


def test_worker_pool_iterable_sharding_and_order():
    loader = DataLoader(Stream(10), batch_size=2, num_workers=2)
    # worker 0 streams 0,2,4,6,8 and worker 1 streams 1,3,5,7,9; batches alternate between them
    assert [b.numpy().tolist() for b in loader] == [[0, 2], [1, 3], [4, 6], [5, 7], [8], [9]]
    out = sorted(v for b in DataLoader(Stream(9), batch_size=2, num_workers=3, in_order=False) for v in b.tolist())
    assert out == list(range(9))


def test_worker_seeds_and_init_fn(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()

    def init(worker_id):
        (marks / f"w{worker_id}-{os.getpid()}").write_text(str(get_worker_info().seed))
    gradc.manual_seed(0)
    a = list(DataLoader(SeedProbe(), batch_size=1, num_workers=2, worker_init_fn=init))
    gradc.manual_seed(0)
    b = list(DataLoader(SeedProbe(), batch_size=1, num_workers=2))
    ids = [int(x[0][0, 0].item()) for x in a]
    assert ids == [0, 1, 0, 1]  # round-robin over workers
    seeds = {int(x[0][0, 1].item()) for x in a}
    assert len(seeds) == 2  # base_seed + worker_id: different per worker
    # same global seed: same worker seeds, so the same random draws inside the workers
    assert [x[1].item() for x in a] == [x[1].item() for x in b]
    assert len(list(marks.iterdir())) == 2
    assert get_worker_info() is None


class NumpyDraws(Dataset):
    def __getitem__(self, i):
        return gradc.tensor(float(np.random.rand()))

    def __len__(self):
        return 4


def test_workers_seed_numpy_apart_and_per_pass():
    # augmentation written with np.random: each worker and each pass draws its own values, as in torch
    loader = DataLoader(NumpyDraws(), batch_size=1, num_workers=2)
    first, second = [x.item() for x in loader], [x.item() for x in loader]
    assert len(set(first)) == 4 and first != second


def test_a_worker_error_does_not_hang_the_interpreter_at_exit():
    import subprocess
    import sys
    code = ("import gradc\nfrom gradc.utils.data import DataLoader\n"
            "loader = DataLoader([gradc.ones(2), gradc.ones(3)], batch_size=2, num_workers=2)\n"
            "try:\n    next(iter(loader))\nexcept Exception as e:\n    print(type(e).__name__)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(gradc.__file__))))
    assert run.returncode == 0 and "ShapeError" in run.stdout, run.stderr


def test_worker_errors_name_the_worker():
    loader = DataLoader(Boom(), batch_size=2, num_workers=2)
    it = iter(loader)
    first = next(it)
    assert first.numpy().ravel().tolist() == [0.0, 1.0]
    with pytest.raises(KeyError, match="sample 3 is missing") as info:
        next(it)
    assert any("DataLoader worker 1" in n for n in getattr(info.value, "__notes__", []))

    class Dies(Dataset):
        def __getitem__(self, i):
            os._exit(3)

        def __len__(self):
            return 2
    with pytest.raises(GradcError, match="exited unexpectedly with exit code 3"):
        list(DataLoader(Dies(), num_workers=1))


def test_persistent_workers_keep_their_processes():
    loader = DataLoader(_xy(9), batch_size=4, num_workers=2, persistent_workers=True, shuffle=True,
                        generator=gradc.Generator().manual_seed(0))
    e1 = _batches(loader)
    pool = loader._iterator
    pids = [w.pid for w in pool.workers]
    half = iter(loader)
    next(half)  # abandon an epoch midway: its results must not leak into the next one
    e3 = _batches(loader)
    assert loader._iterator is pool and [w.pid for w in pool.workers] == pids
    for e in (e1, e3):
        assert sorted(v for b in e for v in b[1]) == list(range(9)) and len(e) == 3
    del half
    pool.shutdown()
    assert all(not w.is_alive() for w in pool.workers)


def test_timeout():
    class Slow(Dataset):
        def __getitem__(self, i):
            import time
            time.sleep(3)
            return i

        def __len__(self):
            return 1
    with pytest.raises(GradcError, match="timed out"):
        list(DataLoader(Slow(), num_workers=1, timeout=0.5))


def test_random_sampler_with_replacement_draws_as_it_goes():
    # minGPT's trainer: RandomSampler(replacement=True, num_samples=int(1e10)) must not draw 1e10 indices up front
    import itertools
    sampler = RandomSampler(list(range(10)), replacement=True, num_samples=int(1e10))
    assert len(sampler) == int(1e10)
    first = list(itertools.islice(iter(sampler), 100))
    assert len(first) == 100 and all(0 <= i < 10 for i in first)
