"""MNIST, Fashion-MNIST and CIFAR-10 on this machine: where they are looked for, what is needed, and the four
official MNIST / Fashion-MNIST files accepted from an upload (``.gz`` or raw idx).

An uploaded file is identified by its content, not its name: the idx magic number (2051 images, 2049 labels),
28×28 images, and the count (60,000 training, 10,000 test). Anything else is an :class:`IdxFileError` naming the
file and what is wrong. Good files are written un-gzipped into torchvision's ``raw`` folder, each through a
temporary file renamed into place, so that a half-written file never looks complete.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from core import data
from core.errors import ExplorerError

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
SIDE = 28
COUNTS = {"train": 60_000, "t10k": 10_000}  # the official training and test sets
KINDS = {"train-images-idx3-ubyte": "training images", "train-labels-idx1-ubyte": "training labels",
         "t10k-images-idx3-ubyte": "test images", "t10k-labels-idx1-ubyte": "test labels"}
FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "cifar-10-batches-py"}
# What a failed download says when there is no network (torchvision folds the URLError into a RuntimeError's text).
OFFLINE_MARKERS = ("urlopen error", "Name or service not known", "Temporary failure in name resolution",
                   "Network is unreachable", "nodename nor servname", "getaddrinfo failed", "timed out")
CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
               "batches.meta")


class IdxFileError(ExplorerError):
    """An uploaded file that is not one of the four official MNIST / Fashion-MNIST files, with the reason."""


@dataclass(frozen=True)
class IdxFile:
    """A checked official file: its standard name (``train-images-idx3-ubyte`` …) and its un-gzipped bytes."""

    kind: str
    payload: bytes


def folder(name: str, root: Path | None = None) -> Path:
    """The absolute folder where ``name``'s files are looked for (MNIST's ``raw`` folder, CIFAR-10's batches)."""
    base = (Path(root) if root is not None else data.data_dir()).resolve()
    if name not in FOLDERS:
        raise ExplorerError(f"{name} has no local files to look for.")
    return base / FOLDERS[name] / ("" if name == "cifar10" else "raw")


def needed(name: str) -> tuple[str, ...]:
    """The files ``name`` needs in :func:`folder` (MNIST's may also be the official ``.gz`` files)."""
    return CIFAR_FILES if name == "cifar10" else tuple(KINDS)


def missing(name: str, root: Path | None = None) -> list[str]:
    """Which of :func:`needed` are not in :func:`folder` (an MNIST file counts as present gzipped too)."""
    where = folder(name, root)
    return [file for file in needed(name)
            if not (where / file).is_file() and not (name != "cifar10" and (where / f"{file}.gz").is_file())]


def unavailable(name: str, where: Path, error: Exception, download: bool) -> str:
    """Why ``name`` could not be loaded, in words: the real folder looked in, and no raw errno text."""
    import socket

    reason = getattr(error, "reason", error)
    if isinstance(reason, (socket.gaierror, socket.timeout, ConnectionError)) \
            or any(marker in str(error) for marker in OFFLINE_MARKERS):  # torchvision wraps URLError in text
        why = "there is no internet connection to download it"
    elif not download:
        why = "downloading was not asked for"
    else:
        why = f"the download failed ({type(error).__name__})"
    files = (f"the four files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
             f"t10k-labels-idx1-ubyte (.gz or not) in {where / 'raw'}" if name != "cifar10"
             else f"the extracted cifar-10-batches-py folder at {where}")
    return (f"{name} is not on this machine and {why}. Put {files}, upload them on the Training page, or use "
            "the bundled 'digits' data set, which always works offline.")


def _unpacked(file_name: str, payload: bytes, counts: dict[str, int]) -> bytes:
    """``payload`` un-gzipped if it is gzip, reading no more than the largest official file allows."""
    limit = 16 + max(counts.values()) * SIDE * SIDE
    if payload[:2] != b"\x1f\x8b":
        if len(payload) > limit:
            raise IdxFileError(f"{file_name} is larger than any official MNIST file ({len(payload):,} bytes).")
        return payload
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(payload)) as archive:
            unpacked = archive.read(limit + 1)
    except (OSError, EOFError, zlib.error):
        raise IdxFileError(f"{file_name} is not a complete gzip file (truncated or damaged).") from None
    if len(unpacked) > limit:
        raise IdxFileError(f"{file_name} unpacks to more than any official MNIST file holds.")
    return unpacked


def check(file_name: str, payload: bytes, counts: dict[str, int] = COUNTS) -> IdxFile:
    """Which official file ``payload`` (``.gz`` or raw idx) is, checked: magic number, 28×28, the official count,
    the exact length and labels 0–9. Raises IdxFileError naming ``file_name`` otherwise."""
    raw = _unpacked(file_name, payload, counts)
    if len(raw) < 8:
        raise IdxFileError(f"{file_name} is too short to be an MNIST file ({len(raw)} bytes).")
    magic, count = struct.unpack(">II", raw[:8])
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise IdxFileError(f"{file_name} is not an MNIST idx file: its magic number is {magic}, not "
                           f"{IMAGES_MAGIC} (images) or {LABELS_MAGIC} (labels).")
    what = "images" if magic == IMAGES_MAGIC else "labels"
    split = next((s for s, n in counts.items() if n == count), None)
    if split is None:
        official = " or ".join(f"{n:,}" for n in counts.values())
        raise IdxFileError(f"{file_name} holds {count:,} {what}; the official files hold {official}.")
    header = 16 if what == "images" else 8
    if what == "images":
        rows, columns = struct.unpack(">II", raw[8:16]) if len(raw) >= 16 else (0, 0)
        if (rows, columns) != (SIDE, SIDE):
            raise IdxFileError(f"{file_name} holds {rows}×{columns} images; MNIST's are {SIDE}×{SIDE}.")
    expected = header + count * (SIDE * SIDE if what == "images" else 1)
    if len(raw) != expected:
        raise IdxFileError(f"{file_name} is truncated or padded: {len(raw):,} bytes, {expected:,} expected.")
    if what == "labels" and max(raw[header:], default=0) > 9:
        raise IdxFileError(f"{file_name} has labels above 9.")
    kind = f"{split}-{what}-idx{3 if what == 'images' else 1}-ubyte"
    return IdxFile(kind, raw)


def install(name: str, uploads: list[tuple[str, bytes]], root: Path | None = None,
            counts: dict[str, int] = COUNTS) -> list[str]:
    """Check every uploaded (file name, bytes) and write them into :func:`folder`; the kinds written. Nothing is
    written unless every upload is good. Raises IdxFileError for a bad file or two files of one kind."""
    if name not in ("mnist", "fashion_mnist"):
        raise IdxFileError(f"Only MNIST and Fashion-MNIST files can be uploaded, not {name}'s.")
    chosen: dict[str, str] = {}
    files = []
    for file_name, payload in uploads:
        checked = check(file_name, payload, counts)
        if checked.kind in chosen:
            raise IdxFileError(f"{chosen[checked.kind]} and {file_name} are both the {KINDS[checked.kind]}.")
        chosen[checked.kind] = file_name
        files.append(checked)
    where = folder(name, root)
    where.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, Path]] = []
    try:
        for checked in files:
            handle, part = tempfile.mkstemp(dir=where, prefix=f".{checked.kind}.", suffix=".part")
            written.append((Path(part), where / checked.kind))
            with os.fdopen(handle, "wb") as sink:
                sink.write(checked.payload)
        for temporary, target in written:
            os.replace(temporary, target)
    finally:
        for temporary, _ in written:
            temporary.unlink(missing_ok=True)
    data.load.cache_clear()
    return [checked.kind for checked in files]
