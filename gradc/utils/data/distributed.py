"""DistributedSampler: each rank of a process group visits its own share of a dataset (torch's
torch.utils.data.distributed.DistributedSampler, same arguments and same split)."""
import math

from ... import distributed as dist
from ...generator import Generator
from .sampler import Sampler


class DistributedSampler(Sampler):
    """Rank `rank` of `num_replicas` takes every num_replicas-th index from `rank` on. The index
    list is first padded with its own start (or, with drop_last, cut) to a multiple of num_replicas,
    as PyTorch does, so every rank gets the same number of samples. With shuffle, each epoch's order
    is a permutation drawn from a gradc.Generator seeded with seed + epoch (call set_epoch(epoch)
    each epoch): the same order on every rank, reproducible, though not PyTorch's permutation."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None or rank is None:
            if not dist.is_initialized():
                raise ValueError("DistributedSampler: the default process group has not been initialized; call "
                                 "gradc.distributed.init_process_group(...) first, or pass num_replicas= and rank=")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.epoch, self.shuffle, self.seed, self.drop_last = 0, shuffle, seed, drop_last
        n = len(dataset)
        if drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            indices = Generator().manual_seed(self.seed + self.epoch).numpy_generator.permutation(n).tolist()
        else:
            indices = list(range(n))
        if not self.drop_last:
            padding = self.total_size - len(indices)
            if padding <= len(indices):
                indices += indices[:padding]
            else:
                indices += (indices * math.ceil(padding / len(indices)))[:padding]
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """The epoch whose order the next pass uses (with shuffle)."""
        self.epoch = epoch
