"""``python -m tests.saving_loop FOLDER``: save the last checkpoint of a run in FOLDER over and over, as a trainer
does, until killed (for the SIGKILL-during-a-save test).

The weights of step ``s`` are all ``s``, its training state says ``step: s`` and holds a tensor of ``s`` too, so a
reader can tell whether the weights and state it loaded belong to the same save. Every other save also re-commits the
sidecar alone (``Writer.update``, as the end of a run does). A line ``saved <step>`` is printed after each save.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from core import checkpoints, training

SIZE = 2_000_000  # floats per file (8 MB): a save takes long enough to be caught in the middle
CONFIG = training.TrainConfig(epochs=1)


def state(step: int) -> dict:
    """The training state of ``step`` (what read_resume checks is there: the run's settings)."""
    return {"config": training.config_dict(CONFIG), "step": step, "moments": torch.full((SIZE,), float(step))}


def main(folder: Path) -> None:
    """Continue from the newest complete set in ``folder`` (if any) and save step after step."""
    writer = checkpoints.Writer(folder, "saving-loop", (0.1,), (0.3,))  # puts back what a killed save left
    step = writer.written["last"]["step"] if "last" in writer.written else 0
    while True:
        step += 1
        progress = SimpleNamespace(config=CONFIG, classes=["a", "b"], model=SimpleNamespace(in_channels=1),
                                   input_size=28, history=[], epoch=1, step=step, status="running")
        writer.save("last", {"weight": torch.full((SIZE,), float(step))}, progress,  # type: ignore[arg-type]
                    complete=False, training_state=state(step))
        if step % 2:
            writer.update("last", status=f"after save {step}")
        print(f"saved {step}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
