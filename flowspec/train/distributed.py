"""Multi-process training with ``torch.distributed`` (run under ``torchrun``).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; with
WORLD_SIZE > 1 the process group starts with gloo on CPU (nccl when the device is CUDA),
the objective is wrapped in ``DistributedDataParallel`` (which all-reduces and averages
the gradients), and only rank 0 logs and writes files.  Without torchrun (no WORLD_SIZE)
everything here is a no-op for one process.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside torchrun."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup(device: str) -> tuple[int, int]:
    """Join the process group torchrun describes (if any); (rank, world)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    return rank_and_world()


def device_for(device: str) -> str:
    """``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun (one GPU per process)."""
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def wrap(module: torch.nn.Module) -> torch.nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module)


def mean(value: torch.Tensor) -> float:
    """The mean of a scalar over the ranks (itself for one process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return float(value)


def step_consensus(loss: torch.Tensor, stop: bool) -> tuple[float, bool]:
    """The step's loss averaged over the ranks, and whether any rank was asked to stop
    (Ctrl-C, SIGTERM): one all-reduce of [loss, stop], so every rank ends at the same
    step and none is left waiting in the next step's collectives."""
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        both = torch.tensor(
            [float(loss.detach()), float(stop)], dtype=torch.float64, device=loss.device
        )
        dist.all_reduce(both)
        return float(both[0]) / dist.get_world_size(), bool(both[1] > 0)
    return float(loss.detach()), stop


def teardown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


__all__ = [
    "device_for",
    "mean",
    "rank_and_world",
    "setup",
    "step_consensus",
    "teardown",
    "wrap",
]
