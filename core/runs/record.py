"""A run as the store reads it: :class:`RunRecord`, one typed field per column of the runs table.

The store decodes its rows here (:meth:`RunRecord.from_row`): the JSON columns become dicts, the 0/1 flags bools,
and a ``running`` run whose trainer stopped sending heartbeats reads as ``interrupted``, with a message that says
why. A record is frozen, so it pickles through Ray unchanged (core.executors.RemoteStore).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from core.training import TrainConfig

Status = Literal["queued", "running", "completed", "stopped", "failed", "interrupted"]
ACTIVE: tuple[Status, ...] = ("queued", "running")
RESUMABLE: tuple[Status, ...] = ("stopped", "failed", "interrupted")
JSON_COLUMNS = ("config", "versions", "test", "progress")  # stored as JSON text, decoded to dicts
FLAG_COLUMNS = ("stop_requested", "resume")  # stored as 0/1, read as bools


@dataclass(frozen=True)
class RunRecord:
    """One row of the runs table (core.runs.schema), decoded; ``status`` and ``message`` as everyone reads them.

    The columns added since the first schema default to what an older store's rows get when it is upgraded.
    """

    id: str
    created: float
    updated: float
    status: Status  # "interrupted" is computed on read: a running run whose trainer went quiet
    arch: str
    dataset: str
    config: dict[str, Any]  # the TrainConfig as a dict (training.config_from_dict rebuilds it)
    device: str | None = None
    versions: dict[str, Any] | None = None  # python, torch, torchvision
    message: str | None = None
    elapsed: float | None = None  # seconds of training
    best_val_acc: float | None = None
    test: dict[str, Any] | None = None  # accuracy, loss, confusion, per_class, classes, misclassified
    heartbeat: float | None = None  # time.time() of the trainer's last sign of life (<= 0: an executor saw it die)
    worker: str | None = None  # who trains it: "worker-HOST-PID", "cli-HOST-PID"
    stop_requested: bool = False
    resume: bool = False  # continue from the last checkpoint when claimed
    group_id: str | None = None  # runs started together (a strategy race)
    queued_at: float | None = None
    progress: dict[str, Any] | None = None  # the trainer's latest progress snapshot
    processes: int = 1  # processes (GPUs) that train it together
    generation: int = 0  # raised by every claim: the fencing token (core.claims)

    @classmethod
    def from_row(cls, row: sqlite3.Row | Mapping[str, Any], heartbeat_timeout: float,
                 now: float | None = None) -> RunRecord:
        """Decode a row of the runs table; a ``running`` run whose last heartbeat is missing or older than
        ``heartbeat_timeout`` s (at ``now``, default the time of the call) reads as ``interrupted``."""
        values = dict(row)
        known = {field.name for field in dataclasses.fields(cls)}
        fields: dict[str, Any] = {name: value for name, value in values.items() if name in known}
        for name in JSON_COLUMNS:
            fields[name] = json.loads(values[name]) if values.get(name) else None
        fields["config"] = fields["config"] or {}  # NOT NULL: always a JSON object
        for name in (*FLAG_COLUMNS, "processes", "generation"):
            if values.get(name) is None:
                fields.pop(name, None)  # a row from before the column: its default
        for name in FLAG_COLUMNS:
            if name in fields:
                fields[name] = bool(fields[name])
        record = cls(**fields)
        now = time.time() if now is None else now
        if record.status == "running" and stale(record.heartbeat, heartbeat_timeout, now):
            return dataclasses.replace(record, status="interrupted", message=interrupted_message(record, now))
        return record

    def as_dict(self) -> dict[str, Any]:
        """The run as the store's row, by column: JSON columns decoded, the flags 0/1 (``python -m core.runs show``)."""
        return {**dataclasses.asdict(self), **{name: int(getattr(self, name)) for name in FLAG_COLUMNS}}

    @property
    def is_active(self) -> bool:
        """Queued or running: a trainer has it, or will."""
        return self.status in ACTIVE

    @property
    def has_ended(self) -> bool:
        """Neither queued nor running: completed, stopped, failed or interrupted."""
        return not self.is_active

    @property
    def is_resumable(self) -> bool:
        """Stopped, failed or interrupted: resume queues it again, to continue from its last checkpoint."""
        return self.status in RESUMABLE

    @property
    def test_accuracy(self) -> float | None:
        """The test accuracy, once the run was tested; else None."""
        return (self.test or {}).get("accuracy")

    @property
    def strategy(self) -> str | None:
        """The transfer strategy of a transfer run (``frozen``, ``partial``, ``full``…); None for any other run."""
        return self.config.get("strategy") or None

    def train_config(self) -> TrainConfig:
        """The run's TrainConfig, rebuilt from its stored dict (keys this version does not know ignored; validated)."""
        from core.training.config import config_from_dict  # the trainer's modules load only where a run trains

        return config_from_dict(self.config)


def stale(heartbeat: float | None, heartbeat_timeout: float, now: float) -> bool:
    """Has the trainer gone quiet: no heartbeat, or none for more than ``heartbeat_timeout`` s at ``now``?"""
    return heartbeat is None or now - heartbeat > heartbeat_timeout


def interrupted_message(record: RunRecord, now: float) -> str:
    """Why a running run reads as interrupted: its trainer never sent a sign of life, was seen to die, or went quiet."""
    beat = record.heartbeat
    quiet = ("has never sent a sign of life" if beat is None
             else "was lost: its process ended before the run did" if beat <= 0  # an executor saw it die
             else f"has not sent a sign of life for {now - beat:.0f} s")
    return (f"Interrupted: its trainer ({record.worker or 'unknown'}) {quiet} (the process was killed, or its machine "
            "stopped). Resume continues from the last checkpoint.")

