"""This process's place under torchrun: the one description of a rank that training and generation share.

torch.distributed is imported only where a group is needed, so a one-process command never loads it here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass
class Rank:
    """Rank `rank` of `world` processes (rank 0 of 1 without torchrun); `created_group`: this process started
    the process group, so it is the one to end it."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    created_group: bool = False

    @property
    def enabled(self) -> bool:
        """More than one process: collectives are needed."""
        return self.world > 1

    @property
    def master(self) -> bool:
        """Rank 0: the one that writes the workspace, the checkpoint and the logs."""
        return self.rank == 0

    def owns(self, i: int, batch: int) -> bool:
        """Whether item `i` is this rank's when whole batches of `batch` go round-robin: (i // batch) % world.

        Whole render batches go to one rank, so every rank renders exactly the batches a single process would
        (same maps together, same reseed), and generated pairs come out byte-identical to a one-process run.
        """
        return (i // max(1, batch)) % self.world == self.rank

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        """End the process group if this process started it."""
        if self.created_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def torchrun_rank(backend: str = "gloo") -> Rank:
    """This process's rank from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), joining the process
    group over `backend` where none is started yet; rank 0 of 1 without torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1 or "RANK" not in os.environ:
        return Rank()
    import torch.distributed as dist

    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend)
        created = True
    return Rank(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), created)


__all__ = ["Rank", "torchrun_rank"]
