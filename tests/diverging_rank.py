"""``python -m core.train`` whose loss reads infinite on rank 1 alone (for the agreed-divergence test).

The loss's value is infinite, its gradient untouched: rank 0's own loss stays finite, so only an agreement
between the ranks can end rank 0 with rank 1."""

from __future__ import annotations

import math
import os
import sys

from core import train as cli
from core.training import trainer

_loss = trainer.training_loss


def _infinite_on_rank_1(*args, **kwargs):
    loss, logits = _loss(*args, **kwargs)
    if os.environ.get("RANK") == "1":
        loss = loss + math.inf
    return loss, logits


trainer.training_loss = _infinite_on_rank_1

if __name__ == "__main__":
    sys.exit(cli.main())
