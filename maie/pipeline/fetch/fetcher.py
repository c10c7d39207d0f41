"""Fetch stage: download a recording from a URL, the file itself or the media a web page holds.

The URL is requested once. An answer that is a web page (``text/html``, XHTML) goes to yt-dlp
(:mod:`maie.pipeline.fetch.pages`), which finds the media file on it; any other answer is the
recording, saved as it arrives. Either way the file is written to ``fetched.part`` in the
destination folder and renamed ``fetched`` once complete, so no reader ever sees half a file, and
a failed fetch leaves nothing behind. What the file is, is decided afterwards by the same probe and
preprocessing as an upload: the server's ``Content-Type`` and the URL's extension are only hints.

Everything, page included, is held to :class:`~maie.pipeline.fetch.options.FetchLimits` and to the
outbound rules (:mod:`maie.outbound`) at every connection and redirect.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

import msgspec
import structlog

from maie.errors import AudioTooLongError, FetchTooLargeError
from maie.outbound import redact_url, resolve, time_limit
from maie.pipeline.fetch.options import FETCHED_NAME, FetchedMedia, FetchInput, FetchOptions
from maie.pipeline.fetch.session import FetchSession
from maie.pipeline.stage import Stage

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from maie.outbound import Resolver

__all__ = ["Fetcher", "fetch"]

log = structlog.get_logger(__name__)

#: Answers handed to yt-dlp to find the media on; anything else is taken as the media itself.
PAGE_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
#: Media is asked for as is: a compressed transfer would only cost CPU here.
_DIRECT_HEADERS: Final = {"Accept-Encoding": "identity"}


def _is_page(response: httpx.Response) -> bool:
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type in PAGE_TYPES


class Fetcher(Stage[FetchOptions, FetchInput, FetchedMedia]):
    """Downloads one recording per :meth:`process` call, each with its own connections."""

    def __init__(self, options: FetchOptions, *, resolver: Resolver = resolve) -> None:
        super().__init__(options)
        self._resolve = resolver

    def process(self, data: FetchInput) -> FetchedMedia:
        """Download ``data.url`` into ``data.dest_dir``.

        Returns:
            The complete file and what is known of it; ``source_url`` is the URL without
            credentials.

        Raises:
            FetchInvalidUrlError, FetchUnresolvableError, FetchRefusedAddressError: the URL or a
                redirect may not be fetched (permanent).
            FetchTooLargeError, FetchTooManyRedirectsError, FetchTooSlowError, FetchHttpError,
                FetchTlsError, FetchNoMediaError, AudioTooLongError: permanent.
            FetchHttpUnavailableError, FetchConnectionError, FetchTimeoutError: worth a retry.
        """
        part = data.dest_dir / f"{FETCHED_NAME}.part"
        final = data.dest_dir / FETCHED_NAME
        source = redact_url(data.url)
        started = time.monotonic()
        log.info("fetch.started", url=source)
        try:
            with (
                time_limit(self.options.limits.total_timeout_s),
                FetchSession(self.options, resolver=self._resolve) as session,
            ):
                media = self._fetch(session, data.url, part)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        part.replace(final)
        log.info(
            "fetch.finished",
            url=source,
            via=media.via,
            size_bytes=media.size_bytes,
            redirects=media.redirects,
            seconds=round(time.monotonic() - started, 3),
        )
        return msgspec.structs.replace(media, path=final, source_url=source)

    def _fetch(self, session: FetchSession, url: str, part: Path) -> FetchedMedia:
        with session.open(url, headers=_DIRECT_HEADERS) as answer:
            session.raise_for_status(answer)
            if not _is_page(answer):
                size = session.save(answer, part)
                return FetchedMedia(
                    path=part,
                    source_url=url,
                    via="direct",
                    size_bytes=size,
                    content_type=answer.headers.get("content-type"),
                    redirects=session.redirects,
                )
        # yt-dlp takes about a second to import: only pages pay for it.
        from maie.pipeline.fetch import pages  # noqa: PLC0415

        choice = pages.find_media(url, session)
        limits = self.options.limits
        if choice.duration_s and limits.max_duration_s and choice.duration_s > limits.max_duration_s:
            raise AudioTooLongError(
                f"the page says the recording lasts {choice.duration_s:.0f} s, over the "
                f"{limits.max_duration_s:.0f} s MAIE accepts"
            )
        if choice.size_bytes and choice.size_bytes > limits.max_bytes:
            raise FetchTooLargeError(
                f"the page says the recording is {choice.size_bytes / 1048576:.1f} MiB, over the "
                f"{limits.max_bytes / 1048576:.1f} MiB MAIE accepts"
            )
        log.info("fetch.page", extractor=choice.extractor, stated_duration_s=choice.duration_s)
        with session.open(choice.url, headers=choice.headers) as answer:
            session.raise_for_status(answer)
            size = session.save(answer, part)
            content_type = answer.headers.get("content-type")
        return FetchedMedia(
            path=part,
            source_url=url,
            via="page",
            size_bytes=size,
            content_type=content_type,
            extractor=choice.extractor,
            title=choice.title,
            duration_s=choice.duration_s,
            redirects=session.redirects,
        )


def fetch(url: str, dest_dir: Path, options: FetchOptions, *, resolver: Resolver = resolve) -> FetchedMedia:
    """Download one recording: :meth:`Fetcher.process` without keeping a stage around.

    Args:
        url: the recording's (or its page's) URL.
        dest_dir: an existing folder; the file is written there as ``fetched``.
        options: limits and whether private addresses are allowed.
        resolver: host name resolution (tests map names to loopback with it).
    """
    with Fetcher(options, resolver=resolver) as fetcher:
        return fetcher.process(FetchInput(url=url, dest_dir=dest_dir))
