"""Data parallelism with torch.distributed: the process group torchrun describes, and the few
collectives the trainer and policies need. Every helper is a no-op in a single process."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .errors import InvalidValueError


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: `rank` of `world_size`, `local_rank` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group torchrun's environment describes (NCCL on CUDA, gloo on CPU).

    Returns this process's `Dist` and its device (`cuda:LOCAL_RANK` on GPUs). Without torchrun's
    `WORLD_SIZE` > 1 nothing happens: a single process, on `device`.
    """
    if dist.is_available() and dist.is_initialized():
        return _current(), _rank_device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist(), device
    if not dist.is_available():
        raise InvalidValueError(f"WORLD_SIZE={world_size} but this torch build has no torch.distributed")
    device = _rank_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    global _HOST_GROUP
    _HOST_GROUP = dist.new_group(backend="gloo") if backend == "nccl" else None  # flags stay on the host
    return _current(), device


_HOST_GROUP: Any = None  # a gloo group for small host-side flags under NCCL (None: the default gloo group)


def _rank_device(device: torch.device) -> torch.device:
    if device.type != "cuda":
        return device
    local = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.cuda.set_device(local)
    return local


def _current() -> Dist:
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def cleanup() -> None:
    """Leave the process group (end of a distributed run)."""
    global _HOST_GROUP
    if is_enabled():
        dist.destroy_process_group()
    _HOST_GROUP = None


def is_enabled() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_enabled() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_enabled() else 1


def comm_device() -> torch.device:
    """Where the process group's tensors must live: this rank's GPU under NCCL, else the CPU."""
    if is_enabled() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum_(tensor: Tensor) -> Tensor:
    """Sum `tensor` over ranks, in place."""
    if is_enabled():
        dist.all_reduce(tensor)
    return tensor


def all_reduce_mean_(tensors: Sequence[Tensor]) -> None:
    """Average tensors (gradients) over ranks, in place, with one collective per dtype."""
    if not is_enabled() or not tensors:
        return
    world = dist.get_world_size()
    by_dtype: dict[torch.dtype, list[Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat)
        flat.div_(world)
        offset = 0
        for t in group:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def all_reduce_max_(tensor: Tensor) -> Tensor:
    """Maximum of `tensor` over ranks, in place (on the process group's device)."""
    if is_enabled():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def all_reduce_max_host_(tensor: Tensor) -> Any:
    """Start a MAX over ranks of a small CPU tensor, in place, on a gloo group (no GPU work, no device sync).

    Returns the asynchronous work handle (`.wait()` before reading), or None in a single process."""
    if not is_enabled():
        return None
    return dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=_HOST_GROUP, async_op=True)


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's `obj` (small, picklable: RNG states, key lists), in rank order."""
    if not is_enabled():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (a policy's own network, at setup)."""
    if not is_enabled():
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def barrier() -> None:
    if is_enabled():
        dist.barrier()
