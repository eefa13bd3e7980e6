"""Safe extraction of an uploaded zip of class folders.

Every member is checked before anything is written: no path may leave the target
(``..``, absolute paths, drive letters), no symbolic links, and the declared sizes,
the member count and each member's compression ratio are bounded (zip bombs). The
declared size is enforced again while reading. ``__MACOSX``, hidden files and
non-images are skipped and counted; a single wrapping folder is descended into.
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from core.data import IMAGE_EXTENSIONS
from core.errors import ExplorerError

MAX_TOTAL_BYTES = 1 << 30  # 1 GiB uncompressed
MAX_MEMBERS = 50_000
MAX_RATIO = 200  # uncompressed / compressed, per member
CHUNK = 1 << 20


class ArchiveError(ExplorerError):
    """A zip that is unreadable, unsafe, or too large."""


@dataclass(frozen=True)
class Extracted:
    """What an extraction produced."""

    root: Path  # the folder holding one sub-folder per class
    images: int
    skipped: int  # hidden, __MACOSX and non-image members


def _is_skipped(name: PurePosixPath) -> bool:
    parts = name.parts
    return any(part.startswith(".") or part == "__MACOSX" for part in parts) or name.suffix.lower() not in IMAGE_EXTENSIONS


def _safe_name(info: zipfile.ZipInfo) -> PurePosixPath:
    """The member's relative path, or ArchiveError if it could escape the target."""
    raw = info.filename.replace("\\", "/")
    name = PurePosixPath(raw)
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or ".." in name.parts:
        raise ArchiveError(f"Refused: the member {info.filename!r} points outside the folder it is extracted to.")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"Refused: the member {info.filename!r} is a symbolic link.")
    return name


def extract_zip(source: Path | IO[bytes], target: Path, max_total: int = MAX_TOTAL_BYTES,
                max_members: int = MAX_MEMBERS, max_ratio: float = MAX_RATIO) -> Extracted:
    """Check, then extract the images of ``source`` into ``target``; return the class-folder root."""
    target = Path(target).resolve()
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as error:
        raise ArchiveError(f"This is not a readable zip file ({error}).") from None
    with archive:
        members = archive.infolist()
        if len(members) > max_members:
            raise ArchiveError(f"Refused: {len(members):,} members, more than the limit of {max_members:,}.")
        wanted: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        skipped = 0
        for info in members:
            name = _safe_name(info)
            if info.is_dir():
                continue
            if _is_skipped(name):
                skipped += 1
                continue
            if info.compress_size and info.file_size / info.compress_size > max_ratio:
                raise ArchiveError(f"Refused: {info.filename!r} expands {info.file_size / info.compress_size:,.0f}"
                                   f"-fold, more than {max_ratio:g}: this looks like a zip bomb.")
            wanted.append((info, name))
        total = sum(info.file_size for info, _ in wanted)
        if total > max_total:
            raise ArchiveError(f"Refused: the images would take {total / 2**20:,.0f} MiB, more than the limit of "
                               f"{max_total / 2**20:,.0f} MiB.")
        if not wanted:
            raise ArchiveError("The zip holds no images (png, jpg, jpeg, bmp, gif, webp, tif, tiff).")
        for info, name in wanted:
            destination = (target / Path(*name.parts)).resolve()
            if not destination.is_relative_to(target):
                raise ArchiveError(f"Refused: the member {info.filename!r} points outside the target folder.")
            destination.parent.mkdir(parents=True, exist_ok=True)
            _copy_bounded(archive, info, destination)
    return Extracted(class_root(target), len(wanted), skipped)


def _copy_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path) -> None:
    """Copy one member, never writing more than its declared size."""
    written = 0
    with archive.open(info) as source, open(destination, "wb") as sink:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > info.file_size:
                raise ArchiveError(f"Refused: {info.filename!r} holds more data than it declares.")
            sink.write(chunk)


def class_root(folder: Path) -> Path:
    """The folder of class sub-folders, through single wrapping folders (``photos/`` around ``cats/``, ``dogs/``)."""
    while True:
        entries = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
        if len(entries) == 1 and entries[0].is_dir():
            folder = entries[0]
        else:
            return folder
