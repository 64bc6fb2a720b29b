"""One training run over several processes (torchrun): who prints, who writes, what is shared.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; a run started without it is a world of one,
and then nothing here touches torch.distributed.
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        """The process that prints, validates and writes files."""
        return self.rank == 0

    def largest(self, value: int) -> int:
        """The largest of every process's value (how a stop reaches all of them at once)."""
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.int64)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return int(t.item())

    def from_main(self, obj):
        """The main process's obj, on every process."""
        if self.size == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list | None:
        """Every process's obj, in rank order, on the main process (None elsewhere)."""
        if self.size == 1:
            return [obj]
        boxes = [None] * self.size if self.main else None
        torch.distributed.gather_object(obj, boxes, dst=0)
        return boxes

    def same_weights(self, module: torch.nn.Module) -> str:
        """A digest of module's weights, the same on every process or an error."""
        h = hashlib.sha256()
        for value in module.state_dict().values():
            h.update(value.detach().float().cpu().numpy().tobytes())
        digest = h.hexdigest()
        digests = self.gather(digest)
        if self.main and len(set(digests)) != 1:
            raise RuntimeError("the processes ended with different weights")
        return digest


ALONE = World()


def world_from_environment(device_kind: str = "cpu") -> World:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA), or a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", size))
    cuda = device_kind == "cuda" or (device_kind == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local_rank)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
    return World(rank, size, local_rank, local_size)


def leave(world: World) -> None:
    """Wait for every process (the first may still be writing the model), then part."""
    if world.size > 1 and torch.distributed.is_initialized():
        gc.collect()  # the DDP wrapper's pending work goes while the group is alive
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def part_now(code: int) -> None:
    """In a run of several processes, end this one now, skipping the interpreter's teardown:
    gloo's threads can still hold tensors then, and freeing them aborts the process (seen
    rarely on a busy machine, after the model was written). A world of one returns."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
