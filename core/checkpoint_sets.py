"""Checkpoint sets: the files of one checkpoint, made complete by a commit record written last.

A checkpoint is several files (weights, sidecar, and for the last one the training state). Each is written to a
temporary file, flushed and renamed into place, but that alone makes each file whole, not the set: a crash between
two of them used to leave new weights beside an old sidecar or training state. So a set ``<stem>`` (``best``,
``last``) is ``<stem>.<suffix>`` files plus ``<stem>.commit.json``, the commit record, written last and atomically::

    {"format": 1, "set": "last", "epoch": 3, "step": 120, "epoch_complete": true, "saved": 1764900000.0,
     "files": {"last.safetensors": {"sha256": "…", "size": 1234}, "last.json": {…}, "last.state.pt": {…}}}

A set is complete when every file its record names is there with that size and SHA-256. While a new set is
written, the previous complete one is kept as ``<stem>.prev.*`` (hard links: no copy, no extra space) with its own
record, so a crash or a full disk at any moment leaves a complete set to load; the writer removes it once the new
record is down, and puts it back in place of a save that failed. A folder written before sets existed has no
record: its files are a *legacy* set, which the caller checks as it always did (``core.checkpoints``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEMPORARY_SUFFIX = ".tmp"
RECORD = "commit.json"  # the suffix of a set's commit record
PREVIOUS = ".prev"  # added to the stem of the set kept while its successor is written
FORMAT = 1


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TEMPORARY_SUFFIX}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def sha256(data: bytes) -> str:
    """The SHA-256 of ``data``, in hex."""
    return hashlib.sha256(data).hexdigest()


def record_path(folder: Path, stem: str) -> Path:
    """Where the commit record of the set ``stem`` lives."""
    return Path(folder) / f"{stem}.{RECORD}"


@dataclass(frozen=True)
class CommittedSet:
    """A set whose record was read: its folder, stem and record (complete only if ``problem`` says nothing)."""

    folder: Path
    stem: str
    record: dict[str, Any]

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """The files the record names: ``{name: {"sha256": …, "size": …}}``."""
        return self.record["files"]

    def path(self, suffix: str) -> Path:
        """The path of this set's ``suffix`` file (``safetensors``, ``json``, ``state.pt``)."""
        return self.folder / f"{self.stem}.{suffix}"

    def has(self, suffix: str) -> bool:
        """Whether the record names a ``suffix`` file."""
        return self.path(suffix).name in self.files

    def problem(self) -> str | None:
        """What makes this set incomplete (a file missing, or of another size), or None; sizes only: cheap."""
        for name, facts in self.files.items():
            try:
                size = (self.folder / name).stat().st_size
            except OSError:
                return f"{name} is missing"
            if size != facts["size"]:
                return f"{name} has {size} bytes, not the {facts['size']} its commit record names"
        return None

    def read(self, suffix: str) -> bytes:
        """The bytes of this set's ``suffix`` file, checked against the record's size and SHA-256 (OSError or
        ValueError saying what does not match)."""
        path = self.path(suffix)
        facts = self.files.get(path.name)
        if facts is None:
            raise ValueError(f"its commit record names no {path.name}")
        data = path.read_bytes()
        if len(data) != facts["size"] or sha256(data) != facts["sha256"]:
            raise ValueError(f"{path.name} does not match the SHA-256 its commit record names: it was changed or "
                             "damaged after it was saved")
        return data


def _sound_record(record: object) -> bool:
    files = record.get("files") if isinstance(record, dict) else None
    return isinstance(files, dict) and bool(files) and all(
        isinstance(name, str) and "/" not in name and isinstance(facts, dict) and isinstance(facts.get("sha256"), str)
        and isinstance(facts.get("size"), int) for name, facts in files.items())


def read_record(folder: Path, stem: str) -> CommittedSet | None:
    """The set ``stem`` as its commit record describes it; None without a record. A record that cannot be read
    describes no file, so its set is never complete."""
    path = record_path(folder, stem)
    try:
        record = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        record = None
    if not _sound_record(record):
        record = {"files": {path.name: {"sha256": "", "size": -1}}}  # unreadable: a set that never checks out
    return CommittedSet(Path(folder), stem, record)


def candidates(folder: Path, stem: str) -> list[CommittedSet]:
    """The recorded sets of ``stem``, newest first: the set in place, then the one kept while it was written."""
    return [found for name in (stem, stem + PREVIOUS) if (found := read_record(folder, name)) is not None]


def _link(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` (a hard link renamed into place; a copy where links fail)."""
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}{TEMPORARY_SUFFIX}")
    try:
        try:
            os.link(source, temporary)
        except OSError:  # a file system without hard links: a real copy
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _renamed(record: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    files = {new + name[len(old):]: facts for name, facts in record["files"].items()}
    return {**record, "set": new, "files": files}


def _copy_set(found: CommittedSet, stem: str) -> CommittedSet:
    """Link the files of ``found`` under ``stem`` and write their record last; the copy."""
    for name in found.files:
        _link(found.folder / name, found.folder / (stem + name[len(found.stem):]))
    record = _renamed(found.record, found.stem, stem)
    atomic_write(record_path(found.folder, stem), json.dumps(record, indent=2).encode())
    return CommittedSet(found.folder, stem, record)


def _remove(folder: Path, stem: str, names: Iterable[str]) -> None:
    """Remove a set's record, then its files (a crash in between leaves files that no record names)."""
    for path in (record_path(folder, stem), *(Path(folder) / name for name in names)):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            continue


@contextlib.contextmanager
def _previous_kept(folder: Path, stem: str, current: CommittedSet | None) -> Iterator[None]:
    """While the body writes the set ``stem``: ``current`` (its complete set in place, if any) kept as the
    previous set; put back in place if the body raises an OSError (a full disk: links need no space), removed
    once the body is done."""
    previous = _copy_set(current, stem + PREVIOUS) if current is not None else None
    try:
        yield
    except OSError:
        if previous is not None:
            _copy_set(previous, stem)
            _remove(folder, previous.stem, previous.files)
        raise
    if previous is not None:
        _remove(folder, previous.stem, previous.files)


def _write_record(folder: Path, stem: str, facts: dict[str, Any], entries: dict[str, dict[str, Any]],
                  **extra: Any) -> CommittedSet:
    """Write the commit record of the set ``stem`` naming ``entries`` (atomically: the set's last write)."""
    record = {"format": FORMAT, "set": stem, **facts, "saved": time.time(), **extra, "files": entries}
    atomic_write(record_path(folder, stem), json.dumps(record, indent=2).encode())
    return CommittedSet(Path(folder), stem, record)


def _entry(data: bytes) -> dict[str, Any]:
    """What a commit record says of one file."""
    return {"sha256": sha256(data), "size": len(data)}


def write(folder: Path, stem: str, files: dict[str, bytes], facts: dict[str, Any],
          current: CommittedSet | None, keep: Iterable[str] = ()) -> CommittedSet:
    """Write the set ``stem``: ``files`` (by suffix) and the ``keep`` suffixes of ``current`` unchanged, then its
    record (``facts``: epoch, step… ) last. ``current`` is the complete set in place, if any: it is kept as the
    previous set until the record is down. On an OSError (a full disk) the folder is put back as it was and the
    error raised again."""
    folder = Path(folder)
    entries = {name: current.files[name] for suffix in keep
               if current is not None and (name := current.path(suffix).name) in current.files}
    written: list[Path] = []
    try:
        with _previous_kept(folder, stem, current):
            for suffix, data in files.items():
                path = folder / f"{stem}.{suffix}"
                atomic_write(path, data)
                written.append(path)
                entries[path.name] = _entry(data)
            committed = _write_record(folder, stem, facts, entries)
    except OSError:
        if current is None:  # no previous set to put back: the new files go
            for path in written:
                path.unlink(missing_ok=True)
        raise
    if current is not None:
        for name in set(current.files) - set(entries):
            (folder / name).unlink(missing_ok=True)  # a file the new set does without (no stale state beside it)
    return committed


def adopt(folder: Path, stem: str, suffixes: Iterable[str], facts: dict[str, Any]) -> CommittedSet:
    """Write a commit record for the files of a legacy set (checked by the caller), so that the next save keeps
    them until it is complete."""
    entries = {f"{stem}.{suffix}": _entry((Path(folder) / f"{stem}.{suffix}").read_bytes()) for suffix in suffixes}
    return _write_record(folder, stem, facts, entries, adopted=True)


def install(folder: Path, files: dict[str, bytes]) -> None:
    """Put checkpoint files that arrive as bytes (sent from the node that trained them) into ``folder``: the files
    no record names first (sidecars last among them), then each set whose record is among them as :func:`write`
    writes one (the complete set in place kept until the record is down, put back if a write fails), record last."""
    folder = Path(folder)
    records = {name[: -len(RECORD) - 1]: name for name in files if name.endswith(f".{RECORD}")}
    named: dict[str, list[str]] = {}
    for stem, name in records.items():
        try:
            listed = json.loads(files[name]).get("files", {})
        except (ValueError, AttributeError):
            listed = {}
        named[stem] = [member for member in listed if member in files and member not in records.values()]
    in_sets = {member for members in named.values() for member in members}
    for name in sorted(set(files) - in_sets - set(records.values()), key=lambda name: (name.endswith(".json"), name)):
        atomic_write(folder / name, files[name])
    for stem, members in named.items():
        current = read_record(folder, stem)
        with _previous_kept(folder, stem, current if current is not None and complete(current) else None):
            for member in members:
                atomic_write(folder / member, files[member])
            atomic_write(record_path(folder, stem), files[records[stem]])


def complete(found: CommittedSet) -> bool:
    """Whether every file of ``found`` is there with the size and SHA-256 its record names."""
    if found.problem() is not None:
        return False
    try:
        return all(sha256((found.folder / name).read_bytes()) == facts["sha256"]
                   for name, facts in found.files.items())
    except OSError:
        return False


def recover(folder: Path, stem: str) -> CommittedSet | None:
    """Before writing into ``folder``: the complete set ``stem`` in place, after putting the previous one back in
    place of a save that was interrupted, and removing the previous set's files (also those a save died while
    linking, which no record names yet); None if there is no complete recorded set (none yet, or a legacy folder)."""
    folder = Path(folder)
    current, previous = read_record(folder, stem), read_record(folder, stem + PREVIOUS)
    found = current if current is not None and complete(current) else None
    if found is None and previous is not None and complete(previous):
        found = _copy_set(previous, stem)
    if found is not None:
        _remove(folder, stem + PREVIOUS, [path.name for path in folder.glob(f"{stem}{PREVIOUS}.*")])
    return found
