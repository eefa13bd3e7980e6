"""``python -m core.train`` with rank 1 frozen before its first all-reduce (for the process-group timeout test)."""

from __future__ import annotations

import os
import signal
import sys
import time

from core import train as cli
from core import training

_fit = training.fit


class _Freeze:
    """A subscriber that hangs the rank it runs on, as a deadlocked or stopped process would."""

    def on_fit_start(self, state: object) -> None:
        # Dies when torchrun tears the group down (SIGTERM, then SIGKILL 30 s later): a frozen rank takes no
        # notice of the trainer's own SIGTERM handler, which asks for a stop at the next batch, never reached.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        time.sleep(3600)


def _fit_frozen_on_rank_1(config, data, callbacks=(), **options):
    if os.environ.get("RANK") == "1":
        callbacks = [*callbacks, _Freeze()]
    return _fit(config, data, callbacks, **options)


training.fit = _fit_frozen_on_rank_1

if __name__ == "__main__":
    sys.exit(cli.main())
