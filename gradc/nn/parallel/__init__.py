"""Data parallelism: DataParallel (replicas in one process) and DistributedDataParallel (one
process per rank, gradients averaged across ranks after backward)."""
from .data_parallel import DataParallel
from .distributed import DistributedDataParallel, bucket_layout

__all__ = ["DataParallel", "DistributedDataParallel", "bucket_layout"]
