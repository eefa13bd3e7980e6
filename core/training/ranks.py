"""Every rank's own part of a distributed run's training state, gathered into the one state rank 0 saves.

The ranks of a run share its weights, optimiser, schedule and counters, but each trains its own share of every
epoch: its order of examples, the running sums of its loss, and its random generators are its own. Rank 0 writes
the checkpoint set (core.checkpoints), so at each save every rank hands its part to rank 0 (a gather, at the same
point on every rank), and the saved state holds all of them (``ranks``, by rank). On resume each rank takes its
own part back: a run continues with as many processes as it was trained by.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from core.sidecars import CheckpointError
from core.training.batches import Shard

# What a rank keeps to itself: restored from its own part of the saved state, never from rank 0's.
OWN = ("order", "epoch_loss", "epoch_correct", "epoch_seen", "train_loss", "train_acc", "rng_cpu",
       "rng_generator", "rng_cuda")


def distributed(shard: Shard) -> bool:
    """Whether this is one rank of several, in a process group that is up."""
    return shard[1] > 1 and dist.is_available() and dist.is_initialized()


def gather(own: dict[str, Any], shard: Shard) -> list[dict[str, Any]] | None:
    """Every rank's ``own`` part, by rank, on rank 0 (None on the others). Every rank of a distributed run
    must call it at the same point (it is a collective); a single process gets its own part back."""
    if not distributed(shard):
        return [own]
    parts: list[Any] | None = [None] * shard[1] if shard[0] == 0 else None
    dist.gather_object(own, parts, dst=0)
    return parts


def own_part(state: dict[str, Any], shard: Shard) -> dict[str, Any]:
    """This rank's part of a saved training state; a CheckpointError if the run had another number of
    processes, or if its state (saved before every rank's part was kept) holds rank 0's alone."""
    saved = tuple(state["shard"])
    if saved[1] != shard[1]:
        raise CheckpointError(f"This run was trained by {saved[1]} processes; resume it with as many "
                              f"(not {shard[1]}).")
    ranks = state.get("ranks")
    if ranks is None:  # saved by a version that kept only the saving rank's own part
        if saved != tuple(shard):
            raise CheckpointError("This run's checkpoint holds the training state of its first process only "
                                  "(it was saved by an older version): it cannot be resumed by several processes.")
        return state
    if len(ranks) != shard[1]:
        raise CheckpointError(f"This run's checkpoint holds the training state of {len(ranks)} processes, "
                              f"not of its {shard[1]}.")
    return dict(ranks[shard[0]])


def own_state(order: torch.Tensor | None, sums: tuple[torch.Tensor, torch.Tensor, int],
              figures: tuple[float, float], generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """A rank's own part, on the CPU: its epoch's order, its running sums (loss, correct, seen), its training
    figures (loss, accuracy) and its random generators (the global CPU one, ``generator``, CUDA's)."""
    return {
        "order": order.cpu() if order is not None else None,
        "epoch_loss": float(sums[0]), "epoch_correct": int(sums[1]), "epoch_seen": sums[2],
        "train_loss": figures[0], "train_acc": figures[1],
        "rng_cpu": torch.get_rng_state(), "rng_generator": generator.get_state().cpu(),
        "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }
