"""Distributed training under ``torchrun``: process group set-up, rank helpers, reductions.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them everything runs as a single
process and the helpers below are no-ops. NCCL is used on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from edgeseg.errors import InputError


@dataclass
class DistContext:
    """Where this process stands: rank, world size, the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files and prints progress."""
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA (this process's GPU under torchrun) when available, else CPU; ``cuda`` without a GPU
    is a clear error rather than a silent CPU run."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"train.device is '{name}' but CUDA is not available on this machine")
        if name == "cuda":
            name = f"cuda:{local_rank}"
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise InputError(f"train.device: '{name}' is not a device ({err})") from err


def env_rank() -> int:
    """This process's rank under torchrun (``RANK``), 0 outside it; the one place that reads it."""
    return int(os.environ.get("RANK", "0"))


def env_world_size() -> int:
    """How many processes torchrun started (``WORLD_SIZE``), 1 outside it."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def exit_worker(code: int) -> None:
    """End a torchrun worker with ``code`` once its command is done, skipping interpreter shutdown: with the
    gloo backend, C++ threads left by the process group sometimes abort the process as static objects are
    destroyed ("terminate called without an active exception"), which torchrun reports as a failed run
    though every file was written. Outside torchrun this returns and the process exits normally."""
    if env_world_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def is_main_process() -> bool:
    """Whether this process is rank 0 (always, outside torchrun): the one that prints and writes."""
    return env_rank() == 0


def setup(device_name: str) -> DistContext:
    """Join the process group when launched by torchrun, and pick this process's device."""
    world = env_world_size()
    rank = env_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def cleanup(ctx: DistContext) -> None:
    """Leave the process group (if this run joined one)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over all ranks (in place, returned); identity in a single process."""
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj: object, ctx: DistContext) -> list:
    """Every rank's ``obj``, in rank order (a one-element list in a single process)."""
    if not ctx.distributed:
        return [obj]
    out: list = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    """Wait for all ranks (no-op in a single process)."""
    if ctx.distributed:
        dist.barrier()
