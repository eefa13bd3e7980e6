"""``python -m core.train`` that stops itself after the progress report of step ``$STOP_AT_STEP`` (for the
distributed resume test).

Rank 0 sets its stop flag there, as SIGTERM or the store's stop request would; the ranks agree on it at that
report, so the run stops at exactly that step and keeps a checkpoint of it (mid-epoch, with the epoch's order)."""

from __future__ import annotations

import os
import sys

from core import train as cli
from core import training

_stops: list = []
_stop_on_signals = cli._stop_on_signals
_on_batch_end = cli.ProgressBar.on_batch_end


def _keep_stop(stop) -> None:
    _stops.append(stop)
    _stop_on_signals(stop)


def _stop_at_step(self, progress: training.Progress) -> None:  # the progress bar runs on rank 0 only
    _on_batch_end(self, progress)
    if progress.step == int(os.environ["STOP_AT_STEP"]):
        _stops[-1].set()


cli._stop_on_signals = _keep_stop
cli.ProgressBar.on_batch_end = _stop_at_step  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(cli.main())
