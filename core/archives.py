"""Safe extraction of an uploaded zip of class folders.

Every member is checked before anything is written: no path may leave the target (``..``, absolute
paths, drive letters), no symbolic links, no encrypted members or compression methods zipfile cannot
read, no duplicate names, no name that is both a file and a folder, no name part longer than a file
system allows, and the declared sizes, the member count and each member's compression ratio are
bounded (zip bombs). The declared size is enforced again while reading, and a bad CRC or a corrupt
header met while reading is a refusal too. Extraction goes to a private temporary folder that is
renamed into place only when everything succeeded, and removed on any failure: a refused zip leaves
nothing behind, and two sessions extracting the same upload at once both succeed. ``__MACOSX``,
hidden files and non-images are skipped and counted; a single wrapping folder is descended into.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from core.data import IMAGE_EXTENSIONS
from core.errors import ExplorerError, quoted

MAX_TOTAL_BYTES = 1 << 30  # 1 GiB uncompressed
MAX_MEMBERS = 50_000
MAX_RATIO = 200  # uncompressed / compressed, per member
# Image files barely compress (PNG, JPEG, WebP are compressed already): all the images together may declare at most
# this many times the zip's own size, or SMALL_ZIP_BYTES whatever the zip's size (small sets of BMPs or flat
# drawings compress well). Without it a 6.7 MB zip whose members each stay under MAX_RATIO declared 1 GiB and
# wrote it all before the scan refused the files.
MAX_TOTAL_RATIO = 20
SMALL_ZIP_BYTES = 64 << 20
MAX_NAME_BYTES = 255  # one path component, as most file systems allow
CHUNK = 1 << 20
READABLE = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
PARTIAL = ".partial-"  # marks a temporary extraction folder
# What reading a damaged member can raise (BadZipFile: bad CRC, bad local header; zlib/lzma: corrupt data).
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError, EOFError, OSError,
                RuntimeError, NotImplementedError, ValueError)


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


def _shown(name: str) -> str:
    """A member name for a message: quoted, control characters escaped, long names shortened."""
    return quoted(name)


def _safe_name(info: zipfile.ZipInfo) -> PurePosixPath:
    """The member's relative path, or ArchiveError if it could escape the target or cannot be a file name."""
    raw = info.filename.replace("\\", "/")
    name = PurePosixPath(raw)
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or ".." in name.parts:
        raise ArchiveError(f"Refused: the member {_shown(info.filename)} points outside the folder it is extracted "
                           "to.")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ArchiveError(f"Refused: the member {_shown(info.filename)} is a symbolic link.")
    if "\0" in raw:
        raise ArchiveError(f"Refused: the member {_shown(info.filename)} has a NUL byte in its name.")
    if any(len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for part in name.parts):
        raise ArchiveError(f"Refused: the member {_shown(info.filename)} has a name longer than {MAX_NAME_BYTES} "
                           "bytes, more than a file system allows.")
    return name


def _check_member(info: zipfile.ZipInfo, max_ratio: float) -> None:
    """Refuse what zipfile could not read, before anything is written."""
    if info.flag_bits & 0x1:
        raise ArchiveError(f"Refused: the member {_shown(info.filename)} is encrypted; upload a zip without a "
                           "password.")
    if info.compress_type not in READABLE:
        raise ArchiveError(f"Refused: the member {_shown(info.filename)} uses compression method "
                           f"{info.compress_type}, which cannot be read here (use deflate, the usual one).")
    if info.compress_size and info.file_size / info.compress_size > max_ratio:
        raise ArchiveError(f"Refused: {_shown(info.filename)} expands {info.file_size / info.compress_size:,.0f}"
                           f"-fold, more than {max_ratio:g}: this looks like a zip bomb.")


def _check_layout(members: list[tuple[zipfile.ZipInfo, PurePosixPath]]) -> None:
    """No two members with one name, and no name that is a file and also a folder holding other members."""
    files: dict[PurePosixPath, str] = {}
    folders: set[PurePosixPath] = set()
    for info, name in members:
        if info.is_dir():
            folders.add(name)
            continue
        if name in files:
            raise ArchiveError(f"Refused: two members are named {_shown(info.filename)}; which one is meant?")
        files[name] = info.filename
        folders.update(name.parents)
    clash = sorted(set(files) & folders)
    if clash:
        raise ArchiveError(f"Refused: {_shown(files[clash[0]])} is both a file and a folder in this zip.")


def extract_zip(source: Path | IO[bytes], target: Path, max_total: int = MAX_TOTAL_BYTES,
                max_members: int = MAX_MEMBERS, max_ratio: float = MAX_RATIO,
                max_total_ratio: float = MAX_TOTAL_RATIO) -> Extracted:
    """Check, then extract the images of ``source`` into ``target`` (a new folder, made all at once); return the
    class-folder root. If ``target`` already exists (the same upload, extracted before or by another session at the
    same time), the existing folder is used."""
    target = Path(target).absolute()
    try:
        size = _size_of(source)
        archive = zipfile.ZipFile(source)
    except Exception as error:  # noqa: BLE001 — BadZipFile, OSError, ValueError, EOFError, struct.error …
        raise ArchiveError(f"This is not a readable zip file ({type(error).__name__}: {str(error)[:120]}).") from None
    with archive:
        wanted, skipped = _plan(archive, max_total, max_members, max_ratio)
        _check_total(sum(info.file_size for info, _ in wanted), size, max_total_ratio)
        if target.is_dir():
            return Extracted(class_root(target), len(wanted), skipped)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}{PARTIAL}", dir=target.parent))
        try:
            for info, name in wanted:
                destination = partial.joinpath(*name.parts)
                if not destination.resolve().is_relative_to(partial.resolve()):
                    raise ArchiveError(f"Refused: the member {_shown(info.filename)} points outside the target "
                                       "folder.")
                try:
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    _copy_bounded(archive, info, destination)
                except ArchiveError:
                    raise
                except _READ_ERRORS as error:
                    raise ArchiveError(f"Refused: the member {_shown(info.filename)} cannot be read "
                                       f"({_reason(error)}).") from None
            try:
                partial.rename(target)
            except OSError:  # another session put the same upload in place first: use theirs
                if not target.is_dir():
                    raise
                shutil.rmtree(partial, ignore_errors=True)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return Extracted(class_root(target), len(wanted), skipped)


def _plan(archive: zipfile.ZipFile, max_total: int, max_members: int,
          max_ratio: float) -> tuple[list[tuple[zipfile.ZipInfo, PurePosixPath]], int]:
    """The members to extract and how many are skipped, after every check that needs no reading."""
    members = archive.infolist()
    if len(members) > max_members:
        raise ArchiveError(f"Refused: {len(members):,} members, more than the limit of {max_members:,}.")
    named = [(info, _safe_name(info)) for info in members]
    _check_layout(named)
    wanted: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    skipped = 0
    for info, name in named:
        if info.is_dir():
            continue
        if _is_skipped(name):
            skipped += 1
            continue
        _check_member(info, max_ratio)
        wanted.append((info, name))
    total = sum(info.file_size for info, _ in wanted)
    if total > max_total:
        raise ArchiveError(f"Refused: the images would take {total / 2**20:,.0f} MiB, more than the limit of "
                           f"{max_total / 2**20:,.0f} MiB.")
    if not wanted:
        raise ArchiveError("The zip holds no images (png, jpg, jpeg, bmp, gif, webp, tif, tiff).")
    return wanted, skipped


def _size_of(source: Path | IO[bytes]) -> int:
    """The zip's own size in bytes (a file object is left where it was)."""
    if isinstance(source, (str, Path)):
        return Path(source).stat().st_size
    position = source.tell()
    size = source.seek(0, os.SEEK_END)
    source.seek(position)
    return size


def _check_total(declared: int, size: int, max_total_ratio: float) -> None:
    """Refuse, before anything is written, images that would unpack to far more than a zip of images can hold."""
    budget = max(SMALL_ZIP_BYTES, max_total_ratio * size)
    if declared > budget:
        raise ArchiveError(f"Refused: this {size / 2**20:,.1f} MiB zip declares {declared / 2**20:,.0f} MiB of images, "
                           f"{declared / max(size, 1):,.0f} times its size (image files barely compress; at most "
                           f"{max_total_ratio:g} times, or {SMALL_ZIP_BYTES >> 20} MiB): this looks like a zip bomb. "
                           "Nothing was written.")


def _reason(error: BaseException) -> str:
    """What went wrong, without the server path an OSError names."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {str(error)[:120]}"


def _copy_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path) -> None:
    """Copy one member, never writing more than its declared size."""
    written = 0
    with archive.open(info) as source, open(destination, "xb") as sink:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > info.file_size:
                raise ArchiveError(f"Refused: {_shown(info.filename)} holds more data than it declares.")
            sink.write(chunk)


def _entries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]


def class_root(folder: Path) -> Path:
    """The folder of class sub-folders, through single wrapping folders (``photos/`` around ``cats/``, ``dogs/``).
    A single folder without sub-folders is a class, not a wrapper: a one-class zip stays one class (and the scan
    says so) rather than becoming a folder of loose images with no class at all."""
    while True:
        entries = _entries(folder)
        if len(entries) == 1 and entries[0].is_dir() and any(p.is_dir() for p in _entries(entries[0])):
            folder = entries[0]
        else:
            return folder


# Keeping the uploads folder small ----------------------------------------------------------------------


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (links not followed)."""
    total = 0
    for base, _folders, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total


def prune(uploads: Path, max_bytes: int, keep: set[Path], stale_after: float = 3600.0) -> list[Path]:
    """Remove extracted uploads, least recently used first, until ``uploads`` holds at most ``max_bytes``; never
    one in ``keep`` (or inside one). Temporary folders older than ``stale_after`` seconds are left-overs of a
    stopped server and go first. Returns what was removed."""
    if not uploads.is_dir():
        return []
    keep = {Path(k).absolute() for k in keep}
    removed: list[Path] = []
    now = time.time()
    entries = []
    for entry in uploads.iterdir():
        if not entry.is_dir() or entry.is_symlink():
            continue
        used = entry.stat().st_mtime
        if PARTIAL in entry.name:
            if now - used > stale_after:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
            continue
        entries.append((used, entry, folder_bytes(entry)))
    total = sum(size for _, _, size in entries)
    for _, entry, size in sorted(entries, key=lambda item: item[0]):
        if total <= max_bytes:
            break
        if any(k == entry.absolute() or k.is_relative_to(entry.absolute()) for k in keep):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
        total -= size
    return removed
