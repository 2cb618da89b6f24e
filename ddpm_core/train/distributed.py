"""Training on several processes: ``torchrun --nproc_per_node=N -m ddpm_core.train ...``.

torchrun starts N copies of the training command and tells each its ``RANK``, ``LOCAL_RANK``
and ``WORLD_SIZE`` through the environment. Each process holds a full copy of the network
(wrapped in ``DistributedDataParallel``, which averages the gradients over processes after
every backward pass) and trains on its slice of every global batch:

* every process draws the same global batch, the same timesteps t and the same noise eps
  (same seed, same generators), and keeps its slice (:func:`~ddpm_core.train.batches.rank_slice`),
  so N processes compute what one process would compute on the whole batch, up to the order
  of floating-point sums;
* the weights, the optimizer and the EMA stay identical on every process; process 0 alone
  writes checkpoints, metrics and previews, and every process resumes from the same file;
* the learning rate and its warm-up follow the global step, which every process counts alike.

Without torchrun (``WORLD_SIZE`` unset or 1) nothing here does anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Processes:
    """Which process this is, of how many."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (process 0 alone)."""
        return self.rank == 0


def processes_from_environment() -> Processes:
    """The rank and world size torchrun set (a single process when it did not)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Processes()
    return Processes(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def start(processes: Processes, device: torch.device) -> None:
    """Join the process group: NCCL between GPUs, gloo between CPU processes."""
    if processes.distributed and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend, rank=processes.rank, world_size=processes.world_size)


def stop(processes: Processes, wait: bool = True) -> None:
    """Leave the process group, once every process has got here (``wait``) or at once (after an error)."""
    if processes.distributed and torch.distributed.is_initialized():
        if wait:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def wait_for_all(processes: Processes) -> None:
    """Block until every process has got here (e.g. until process 0 has written a checkpoint)."""
    if processes.distributed:
        torch.distributed.barrier()


def wrap(model: torch.nn.Module, processes: Processes, device: torch.device) -> torch.nn.Module:
    """The network as the processes train it: DistributedDataParallel around it when there are several."""
    if not processes.distributed:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def mean_over_processes(value: float, processes: Processes, device: torch.device) -> float:
    """The mean of ``value`` over every process (``value`` itself for a single one)."""
    if not processes.distributed:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(total)
    return float(total) / processes.world_size
