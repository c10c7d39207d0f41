"""Unpacking uploaded archives (zip, tar, tar.gz/bz2/xz) without trusting them.

An archive is hostile until proven otherwise. The rules:

- **Names are labels, never paths.** Every member is written to ``<dest>/<n>.member``, a name MAIE
  makes up; what the archive calls it is kept only as a label. So no member can land outside
  ``dest``, whatever its name. Members whose names would have escaped anyway (absolute paths,
  ``..``), links, device files and other non-regular entries are still refused by name, each
  listed as skipped with the reason (tar members are vetted by :func:`tarfile.data_filter`).
- **Limits before bytes.** Entries are counted (the zip central directory's own count is read
  before it is parsed, tar headers are counted while streaming) and sizes and compression ratios
  summed before anything is written; an archive over ``MAIE_BATCH_MAX_MEMBERS`` entries,
  ``MAIE_BATCH_MAX_UNPACKED_MB`` or ``MAIE_BATCH_MAX_RATIO`` is refused whole
  (:class:`~maie.errors.ArchiveLimitError`, 413). Bytes are counted again while copying.
- A member larger than one upload may be (``MAIE_MAX_FILE_SIZE_MB``), encrypted, or damaged is
  skipped with its reason; the rest of the archive goes on.
"""

from __future__ import annotations

import stat
import struct
import tarfile
import unicodedata
import zipfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

import msgspec

from maie.errors import ArchiveLimitError
from maie.schemas import SkippedMember

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ArchiveLimits", "Unpacked", "archive_kind", "member_label", "unpack"]

#: Bytes copied per read.
CHUNK_BYTES = 1024 * 1024
#: Ratios are only judged past this many unpacked bytes (small text files compress 100:1 too).
RATIO_FLOOR_BYTES = 1024 * 1024
#: Longest label kept for a member name.
MAX_LABEL = 255
#: Tail of a zip file searched for the end-of-central-directory record (65,535-byte comment + 22).
_EOCD_SEARCH = 65_557
#: Entry count of an end-of-central-directory record that defers to its zip64 record.
_ZIP64_COUNT = 0xFFFF


class ArchiveLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What one archive may contain."""

    #: Most entries (files, folders, links) in the archive.
    max_members: int
    #: Most bytes all extracted members may add up to.
    max_total_bytes: int
    #: Largest single member; larger ones are skipped.
    max_member_bytes: int
    #: Highest compression ratio, per zip member and over the whole archive.
    max_ratio: float


class Unpacked(msgspec.Struct, frozen=True, kw_only=True):
    """A member written to disk: its label and where its bytes are."""

    name: str
    path: Path


def archive_kind(path: Path) -> Literal["zip", "tar"] | None:
    """Whether ``path`` holds a zip or a (possibly compressed) tar archive, judged by content."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        return "tar" if tarfile.is_tarfile(path) else None
    except (OSError, tarfile.TarError, EOFError):
        return None


def member_label(name: str) -> str:
    """A member's name as a readable label: NFC, forward slashes, no control characters."""
    label = unicodedata.normalize("NFC", name).replace("\\", "/")
    label = "".join(c for c in label if not unicodedata.category(c).startswith("C"))
    while label.startswith("./"):
        label = label[2:]
    return label[-MAX_LABEL:] or "unnamed"


def _name_problem(name: str) -> str | None:
    path = name.replace("\\", "/")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return "absolute path refused"
    if ".." in path.split("/"):
        return "path leaving the archive ('..') refused"
    return None


def _ratio_problem(unpacked: int, packed: int, limits: ArchiveLimits, what: str) -> None:
    if unpacked > RATIO_FLOOR_BYTES and unpacked > limits.max_ratio * max(packed, 1):
        raise ArchiveLimitError(
            f"{what} unpacks {unpacked / max(packed, 1):.0f} times larger than it is packed, over "
            f"MAIE_BATCH_MAX_RATIO={limits.max_ratio:g}; the archive is refused as a zip bomb"
        )


def _too_many(count: int | None, limits: ArchiveLimits) -> ArchiveLimitError:
    held = f"{count} entries" if count is not None else f"more than {limits.max_members} entries"
    return ArchiveLimitError(
        f"the archive holds {held}, over MAIE_BATCH_MAX_MEMBERS={limits.max_members}; "
        "split it into smaller archives",
        extra={"max_members": limits.max_members},
    )


def _too_big(total: int, limits: ArchiveLimits) -> ArchiveLimitError:
    return ArchiveLimitError(
        f"the archive unpacks to more than {limits.max_total_bytes // (1024 * 1024)} MiB "
        f"(MAIE_BATCH_MAX_UNPACKED_MB; {total // (1024 * 1024)} MiB so far); split it"
    )


def _copy(src: IO[bytes], target: Path, limit: int) -> int:
    """Copy ``src`` into ``target``; stop past ``limit`` bytes. Returns the bytes copied."""
    copied = 0
    with target.open("wb") as out:
        while chunk := src.read(CHUNK_BYTES):
            copied += len(chunk)
            if copied > limit:
                break
            out.write(chunk)
    return copied


def _zip_entry_count(path: Path) -> int | None:
    """Entries the zip's end-of-central-directory record announces, read before parsing it.

    zipfile builds an object per central-directory entry up front, so an archive of millions of
    tiny entries would exhaust memory before any limit could be checked. Layout per PKWARE's
    APPNOTE 4.3.14-4.3.16. Returns None when the record cannot be found (zipfile then decides).
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        start = max(0, size - _EOCD_SEARCH)
        fh.seek(start)
        tail = fh.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:  # noqa: PLR2004 - size of the EOCD record
        return None
    total = int(struct.unpack_from("<H", tail, at + 10)[0])
    locator = at - 20
    if total == _ZIP64_COUNT and locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        zip64_offset = int(struct.unpack_from("<Q", tail, locator + 8)[0])
        with path.open("rb") as fh:
            fh.seek(zip64_offset)
            record = fh.read(56)
        if len(record) == 56 and record[:4] == b"PK\x06\x06":  # noqa: PLR2004 - size of the record
            total = int(struct.unpack_from("<Q", record, 32)[0])
    return total


def _zip_problem(info: zipfile.ZipInfo, limits: ArchiveLimits) -> str | None:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symbolic link refused"
    if mode and stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        return "not a regular file (device, pipe or socket) refused"
    if info.flag_bits & 0x1:
        return "encrypted member; upload it unencrypted"
    if info.file_size > limits.max_member_bytes:
        return f"larger than one upload may be ({limits.max_member_bytes // (1024 * 1024)} MiB)"
    return None


def _unpack_zip(path: Path, dest: Path, limits: ArchiveLimits) -> Iterator[Unpacked | SkippedMember]:
    announced = _zip_entry_count(path)
    if announced is not None and announced > limits.max_members:
        raise _too_many(announced, limits)
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if len(infos) > limits.max_members:
            raise _too_many(len(infos), limits)
        wanted: list[zipfile.ZipInfo] = []
        for info in infos:
            if info.is_dir():
                continue
            problem = _name_problem(info.filename) or _zip_problem(info, limits)
            if problem:
                yield SkippedMember(name=member_label(info.filename), reason=problem)
                continue
            _ratio_problem(
                info.file_size, info.compress_size, limits, f"member {member_label(info.filename)!r}"
            )
            wanted.append(info)
        declared = sum(i.file_size for i in wanted)
        if declared > limits.max_total_bytes:
            raise _too_big(declared, limits)
        _ratio_problem(declared, path.stat().st_size, limits, "the archive")
        total = 0
        for n, info in enumerate(wanted):
            target = dest / f"{n:05d}.member"
            try:
                with archive.open(info) as src:
                    copied = _copy(src, target, info.file_size)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                target.unlink(missing_ok=True)
                yield SkippedMember(name=member_label(info.filename), reason=f"damaged member: {exc}")
                continue
            total += copied
            if total > limits.max_total_bytes:
                raise _too_big(total, limits)
            yield Unpacked(name=member_label(info.filename), path=target)


def _tar_problem(member: tarfile.TarInfo, dest: Path, limits: ArchiveLimits) -> str | None:
    try:
        tarfile.data_filter(member, str(dest))
    except tarfile.FilterError as exc:
        return f"refused: {exc}"
    if member.issym() or member.islnk():
        return "link refused"
    if member.issparse():
        return "sparse file refused"
    if not member.isreg():
        return "not a regular file (device, pipe or socket) refused"
    if member.size > limits.max_member_bytes:
        return f"larger than one upload may be ({limits.max_member_bytes // (1024 * 1024)} MiB)"
    return None


def _scan_tar(path: Path, dest: Path, limits: ArchiveLimits) -> None:
    """Count entries and sum sizes over the whole tar before anything is written."""
    count = 0
    total = 0
    with tarfile.open(path, mode="r|*") as archive:
        for member in archive:
            count += 1
            if count > limits.max_members:
                raise _too_many(None, limits)
            if _tar_problem(member, dest, limits) is None:
                total += member.size
                if total > limits.max_total_bytes:
                    raise _too_big(total, limits)
    _ratio_problem(total, path.stat().st_size, limits, "the archive")


def _unpack_tar(path: Path, dest: Path, limits: ArchiveLimits) -> Iterator[Unpacked | SkippedMember]:
    _scan_tar(path, dest, limits)
    total = 0
    with tarfile.open(path, mode="r|*") as archive:
        for n, member in enumerate(archive):
            if member.isdir():
                continue
            problem = _name_problem(member.name) or _tar_problem(member, dest, limits)
            if problem:
                yield SkippedMember(name=member_label(member.name), reason=problem)
                continue
            src = archive.extractfile(member)
            if src is None:
                yield SkippedMember(name=member_label(member.name), reason="no data")
                continue
            target = dest / f"{n:05d}.member"
            with src:
                total += _copy(src, target, member.size)
            if total > limits.max_total_bytes:
                raise _too_big(total, limits)
            yield Unpacked(name=member_label(member.name), path=target)


def unpack(path: Path, dest: Path, limits: ArchiveLimits) -> tuple[list[Unpacked], list[SkippedMember]]:
    """Extract the regular files of archive ``path`` into the (existing) folder ``dest``.

    Returns:
        The members written, in archive order, and the ones skipped with their reasons.

    Raises:
        ArchiveLimitError: if the archive breaks a limit; whatever was written is left in
            ``dest`` for the caller to remove with the folder.
        zipfile.BadZipFile, tarfile.TarError: if the archive itself is damaged.
    """
    kind = archive_kind(path)
    members = _unpack_zip(path, dest, limits) if kind == "zip" else _unpack_tar(path, dest, limits)
    unpacked: list[Unpacked] = []
    skipped: list[SkippedMember] = []
    for item in members:
        if isinstance(item, Unpacked):
            unpacked.append(item)
        else:
            skipped.append(item)
    return unpacked, skipped
