"""Process placement for single-process and ``torchrun`` (DDP) training runs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "setup_distributed"]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process runs: world size, rank, device."""

    world: int
    rank: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str, threads: int = 0) -> DistributedContext:
    """Read torchrun's WORLD_SIZE / RANK / LOCAL_RANK, pick the device, join the process group.

    Args:
        device: "cpu", "cuda" or "auto" (cuda when available). Under torchrun each rank takes the
            GPU of its LOCAL_RANK; the process group uses NCCL on GPUs and gloo on CPUs.
        threads: intra-op threads for this process (0: leave torch's default).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if want_cuda:
        dev = torch.device("cuda", local_rank if world > 1 else 0)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if want_cuda else "gloo")
    if threads:
        torch.set_num_threads(threads)
    return DistributedContext(world=world, rank=rank, local_rank=local_rank, device=dev)
