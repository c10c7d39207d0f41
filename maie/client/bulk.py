"""``maie submit PATH...``: many recordings to a server, resumable, a few at a time.

Files are submitted one by one to /v1/process, archives (zip, tar, tar.gz, by content) as one
batch each to /v1/batches, folders by walking them for audio and archive files, and http(s) URLs
one by one to /v1/process as ``url`` (the server fetches them). At most ``concurrency`` uploads
run at once; a busy (429) or unavailable (503) server is retried with back-off by
:mod:`maie.client`.

**Resuming.** Every submission is keyed by the sha256 of the file's content (or the recording's
URL), the options and the server URL, and recorded in a ledger (a JSON-lines file) as soon as
the server accepts it. A second run skips what the ledger holds, so it submits nothing twice;
the key is also sent as the ``Idempotency-Key``, so even a run killed between the server's answer
and the ledger write gets the first task back. With ``--out`` a task whose outputs were written
is done; one that was submitted but not written is waited for and written; one the server no
longer knows (expired) is submitted again.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import anyio.to_thread
import msgspec

from maie.archives import archive_kind
from maie.errors import MaieError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from maie.client import AsyncMaieClient, SubmitOptions
    from maie.schemas import StatusResponse

__all__ = ["AUDIO_SUFFIXES", "Item", "Ledger", "Report", "collect", "is_url", "submit_all", "url_item"]

#: File suffixes a folder walk picks up as recordings (explicit files are always submitted).
AUDIO_SUFFIXES = frozenset({
    ".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".webm", ".mp4",
    ".mkv", ".mka", ".wma", ".aiff", ".aif", ".amr", ".caf", ".wv", ".mov",
})  # fmt: skip
#: File suffixes a folder walk picks up as archives.
ARCHIVE_SUFFIXES = frozenset({".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz"})
#: Transcript formats written next to each result with ``--out``.
EXPORTS = ("txt", "srt", "vtt")
#: Fewest tasks waited for at once, whatever the upload concurrency.
MIN_WATCHERS = 8
_HASH_CHUNK = 1024 * 1024
#: What an argument of ``maie submit`` looks like when it is a recording's URL, not a path.
_URL: Final = re.compile(r"^https?://", re.IGNORECASE)


@dataclass(frozen=True)
class Item:
    """One thing to submit: a recording, an archive that becomes a batch, or a recording's URL."""

    #: The file; ``None`` for a URL.
    path: Path | None
    #: Where its outputs go under ``--out`` (and how reports name it).
    label: PurePosixPath
    archive: bool
    #: The recording's URL, for one the server fetches.
    url: str | None = None

    @property
    def source(self) -> str:
        """The file's path or the URL, as the ledger records it."""
        return self.url if self.url is not None else str(self.path)


def is_url(argument: str) -> bool:
    """Whether a ``maie submit`` argument is a recording's URL (``http://`` or ``https://``)."""
    return bool(_URL.match(argument))


def url_item(url: str) -> Item:
    """The item of a recording's URL, labelled by its host and path (its outputs go there)."""
    parts = urlsplit(url)
    return Item(None, _safe(f"{parts.hostname or 'url'}/{parts.path}"), archive=False, url=url)


class Entry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One ledger line: what a content key was submitted as."""

    key: str
    path: str
    submitted_at: datetime
    task_ids: list[str]
    batch_id: str | None = None
    written: bool = False


@dataclass
class Report:
    """What a run did."""

    submitted: int = 0
    already_submitted: int = 0
    complete: int = 0
    written: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


class Ledger:
    """The submissions of earlier runs, by content key, in an append-only JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, Entry] = {}
        if path.is_file():
            for line in path.read_bytes().splitlines():
                if line.strip():
                    try:
                        entry = msgspec.json.decode(line, type=Entry)
                    except msgspec.DecodeError:
                        continue  # a line cut short by a crash; the submission is redone
                    self._entries[entry.key] = entry

    def get(self, key: str) -> Entry | None:
        """The latest entry of ``key``."""
        return self._entries.get(key)

    def record(self, entry: Entry) -> None:
        """Append ``entry`` (durably) and make it the latest of its key."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as fh:
            fh.write(msgspec.json.encode(entry) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._entries[entry.key] = entry

    def forget(self, key: str) -> None:
        """Drop ``key`` from memory (its task expired); the next record of it replaces the line."""
        self._entries.pop(key, None)


def collect(paths: Sequence[Path]) -> list[Item]:
    """Expand files and folders into items, in a stable order."""
    items: list[Item] = []
    for path in paths:
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                relative = found.relative_to(path)
                if any(part.startswith(".") for part in relative.parts):
                    continue
                suffix = found.suffix.lower()
                if suffix in AUDIO_SUFFIXES:
                    items.append(Item(found, PurePosixPath(relative.as_posix()), archive=False))
                elif suffix in ARCHIVE_SUFFIXES and archive_kind(found):
                    items.append(Item(found, PurePosixPath(relative.as_posix()), archive=True))
        else:
            items.append(Item(path, PurePosixPath(path.name), archive=archive_kind(path) is not None))
    return items


def content_key(item: Item, options: SubmitOptions, server: str) -> str:
    """sha256 of the content (or the URL), the options and the server: what makes two submissions the same."""
    digest = hashlib.sha256()
    digest.update(msgspec.json.encode([server, options]))
    if item.url is not None or item.path is None:
        digest.update(b"url\0" + item.source.encode())
        return digest.hexdigest()
    with item.path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _safe(label: str) -> PurePosixPath:
    """A server-given member name as a relative path that stays inside the output folder."""
    parts = [p for p in PurePosixPath(label.replace("\\", "/")).parts if p not in {"/", "..", "."}]
    return PurePosixPath(*parts) if parts else PurePosixPath("unnamed")


def _archive_stem(name: str) -> str:
    """``meetings.tar.gz`` → ``meetings``: the folder an archive's outputs go to."""
    stem = name
    while (suffix := PurePosixPath(stem).suffix.lower()) and (suffix in ARCHIVE_SUFFIXES or suffix == ".tar"):
        stem = stem[: -len(suffix)]
    return stem or name


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as fh:
        fh.write(data)
    Path(fh.name).replace(target)


class _Run:
    def __init__(
        self,
        client: AsyncMaieClient,
        options: SubmitOptions,
        *,
        server: str,
        ledger: Ledger,
        concurrency: int,
        out_dir: Path | None,
        wait: bool,
        advance: Callable[[], None],
    ) -> None:
        self.client = client
        self.options = options
        self.server = server
        self.ledger = ledger
        self.slots = asyncio.Semaphore(concurrency)
        #: Tasks polled at once: a run of thousands must not poll thousands of tasks every second.
        self.watching = asyncio.Semaphore(max(concurrency, MIN_WATCHERS))
        self.out_dir = out_dir
        self.wait = wait or out_dir is not None
        self.advance = advance
        self.report = Report()

    async def one(self, item: Item) -> None:
        try:
            await self._one(item)
        except MaieError as exc:
            self.report.failed.append((str(item.label), exc.detail))
        finally:
            self.advance()

    async def _one(self, item: Item) -> None:
        key = await anyio.to_thread.run_sync(content_key, item, self.options, self.server)
        entry = self.ledger.get(key)
        if entry is not None and (entry.written or not self.wait):
            self.report.already_submitted += 1
            return
        if entry is not None:
            self.report.already_submitted += 1
            try:
                statuses = await self._finish(entry)
            except NotFoundError:  # expired on the server: submit it again
                self.ledger.forget(key)
                self.report.already_submitted -= 1
                entry = None
        if entry is None:
            entry = await self._submit(item, key)
            self.report.submitted += 1
            if not self.wait:
                return
            statuses = await self._finish(entry)
        if self.out_dir is not None:
            await self._write_outputs(item, entry, statuses)
            entry.written = True
            self.ledger.record(entry)

    async def _submit(self, item: Item, key: str) -> Entry:
        async with self.slots:
            now = datetime.now(UTC)
            if item.url is not None:
                task = await self.client.submit_url_with(item.url, self.options, idempotency_key=key)
                entry = Entry(key=key, path=item.source, submitted_at=now, task_ids=[task.task_id])
            elif item.archive and item.path is not None:
                batch = await self.client.submit_batch_with([item.path], self.options, idempotency_key=key)
                for skipped in batch.skipped:
                    self.report.failed.append((f"{item.label}/{skipped.name}", f"skipped: {skipped.reason}"))
                entry = Entry(
                    key=key,
                    path=item.source,
                    submitted_at=now,
                    task_ids=batch.task_ids,
                    batch_id=batch.batch_id,
                )
            elif item.path is not None:
                task = await self.client.submit_with(item.path, self.options, idempotency_key=key)
                entry = Entry(key=key, path=item.source, submitted_at=now, task_ids=[task.task_id])
            else:  # pragma: no cover - an item is a file or a URL
                msg = f"{item.label}: neither a file nor a URL"
                raise AssertionError(msg)
        self.ledger.record(entry)
        return entry

    async def _finish(self, entry: Entry) -> list[StatusResponse]:
        async with self.watching:
            statuses = [await self.client.wait(task_id) for task_id in entry.task_ids]
        for status in statuses:
            if status.status.value == "COMPLETE":
                self.report.complete += 1
            else:
                self.report.failed.append((status.task_id, f"{status.error_code}: {status.error}"))
        return statuses

    async def _write_outputs(self, item: Item, entry: Entry, statuses: list[StatusResponse]) -> None:
        """Write each task's result (JSON) and transcript exports under the output folder."""
        assert self.out_dir is not None  # noqa: S101 - only called with an output folder
        names: dict[str, str] = {}
        if entry.batch_id is not None:
            batch = await self.client.batch(entry.batch_id)
            names = {t.task_id: t.filename or t.task_id for t in batch.tasks}
        for status in statuses:
            relative = item.label
            if entry.batch_id is not None:
                relative = (
                    item.label.parent / _archive_stem(item.label.name) / _safe(names.get(status.task_id, ""))
                )
            stem = self.out_dir.joinpath(*relative.with_suffix("").parts)
            if status.status.value != "COMPLETE":
                _write(stem.with_name(stem.name + ".error.json"), msgspec.json.encode(status))
                continue
            result = await self.client.result(status.task_id)
            _write(stem.with_name(stem.name + ".json"), msgspec.json.encode(result))
            for fmt in EXPORTS:
                text = await self.client.transcript(status.task_id, fmt)
                _write(stem.with_name(f"{stem.name}.{fmt}"), text.encode())
            self.report.written += 1


async def submit_all(
    client: AsyncMaieClient,
    items: Sequence[Item],
    options: SubmitOptions,
    *,
    server: str,
    ledger: Ledger,
    concurrency: int,
    out_dir: Path | None,
    wait: bool,
    advance: Callable[[], None],
) -> Report:
    """Submit ``items`` (and wait for them, and write their outputs) as the options say."""
    run = _Run(
        client,
        options,
        server=server,
        ledger=ledger,
        concurrency=concurrency,
        out_dir=out_dir,
        wait=wait,
        advance=advance,
    )
    await asyncio.gather(*(run.one(item) for item in items))
    return run.report
