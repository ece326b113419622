"""torch.distributed set-up for `multi_gpu: true` runs launched by torchrun."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group torchrun describes (gloo on CPU, NCCL on GPU); (rank, world_size)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise RuntimeError(
            "multi_gpu is true but this process was not started by torchrun "
            "(RANK/WORLD_SIZE are unset): use commands/train_multi_gpu.sh or "
            "`torchrun --nproc_per_node N -m ai4med train ...`"
        )
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def launched_world_size() -> int:
    """How many processes a launcher (torchrun, or mpirun via `mpi_to_torch_env`) started for this run
    (`WORLD_SIZE`; 1 when unset or unreadable)."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        return 1


def barrier() -> None:
    """Wait for every rank (a no-op outside distributed runs)."""
    if dist.is_initialized():
        dist.barrier()


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj` (a list of one element outside distributed runs)."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def local_device(requested: str | None) -> torch.device:
    """The device for this process: `requested`, else this rank's GPU, else the CPU."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
