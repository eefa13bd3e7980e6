"""The library of designed networks, kept in the run store beside the runs.

A design is saved by its canonical text (``core.models.design_spec.format_design``) under the start of that
text's SHA-256: saving is idempotent, and a save never replaces another design, even one with the same name
(a class saving "mynet" twenty times keeps twenty designs). The text is checked before it is kept.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass

from core.errors import InvalidArgumentError
from core.models import design_spec, designed
from core.runs.store import RunStore

MAX_DESIGNS = 500  # the library's size; the oldest go first past it
ID_LENGTH = 12


@dataclass(frozen=True)
class SavedDesign:
    """One design in the library."""

    id: str
    name: str
    text: str
    parameters: int
    saved: float


def design_id(text: str) -> str:
    """The library id of a design's canonical text."""
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def save(store: RunStore, text: str) -> SavedDesign:
    """Check ``text`` (DesignError says what is wrong) and keep it in the library; returns what was kept."""
    design = design_spec.parse(text)
    figures = designed.check(design)
    canonical = design_spec.format_design(design)
    kept = SavedDesign(design_id(canonical), design.name, canonical, figures.parameters, time.time())

    def insert(db: sqlite3.Connection) -> None:
        db.execute("INSERT OR IGNORE INTO designs (id, name, text, parameters, saved) VALUES (?, ?, ?, ?, ?)",
                   (kept.id, kept.name, kept.text, kept.parameters, kept.saved))
        db.execute("DELETE FROM designs WHERE id NOT IN (SELECT id FROM designs ORDER BY saved DESC LIMIT ?)",
                   (MAX_DESIGNS,))

    store._transaction(insert)
    return get(store, kept.id)


def _row(row: sqlite3.Row) -> SavedDesign:
    return SavedDesign(row["id"], row["name"], row["text"], int(row["parameters"]), float(row["saved"]))


def get(store: RunStore, id: str) -> SavedDesign:
    """The design kept under ``id``; InvalidArgumentError if there is none."""
    rows = store._execute("SELECT * FROM designs WHERE id = ?", (str(id),))
    if not rows:
        raise InvalidArgumentError(f"No saved design has the id {str(id)[:40]!r}.")
    return _row(rows[0])


def library(store: RunStore, limit: int = 100) -> list[SavedDesign]:
    """The saved designs, newest first."""
    return [_row(row) for row in store._execute("SELECT * FROM designs ORDER BY saved DESC LIMIT ?", (int(limit),))]


def delete(store: RunStore, id: str) -> None:
    """Remove the design kept under ``id`` (runs trained on it keep their architecture in their model name)."""
    get(store, id)
    store._execute("DELETE FROM designs WHERE id = ?", (str(id),))
