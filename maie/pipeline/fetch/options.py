"""What a fetch may do (limits, private addresses), what it is given and what it returns."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final, Literal

import msgspec

from maie import __version__
from maie.errors import (
    FetchConnectionError,
    FetchInvalidUrlError,
    FetchRefusedAddressError,
    FetchUnresolvableError,
)
from maie.outbound import AddressRules

if TYPE_CHECKING:
    from maie.config import Settings

__all__ = ["FETCHED_NAME", "FetchInput", "FetchLimits", "FetchOptions", "FetchedMedia", "fetch_rules"]

#: Name of the downloaded file in the destination folder (``<name>.part`` while it is written).
FETCHED_NAME: Final = "fetched"

_MIB: Final = 1024 * 1024
_PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
_Positive = Annotated[int, msgspec.Meta(gt=0)]


class FetchLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Bounds of one fetch: size, length and time, so a hostile server costs a bounded amount."""

    #: Largest file accepted, in bytes: the upload size limit (MAIE_MAX_FILE_SIZE_MB). A larger
    #: ``Content-Length`` is refused before the body is read; a body that grows past it is cut.
    max_bytes: _Positive
    #: Longest recording accepted, in seconds (MAIE_MAX_DURATION_S), checked here when a page
    #: states the duration before the download; the probe after the fetch checks it in any case.
    max_duration_s: _PositiveFloat | None = None
    #: Seconds to open a connection (each address, each hop).
    connect_timeout_s: _PositiveFloat = 10.0
    #: Seconds the whole fetch may take: page extraction, redirects and the download together.
    total_timeout_s: _PositiveFloat = 1800.0
    #: Seconds without a byte from the server before the transfer is judged stalled.
    stall_timeout_s: _PositiveFloat = 30.0
    #: Slowest accepted transfer, in bytes per second, averaged over each ``stall_timeout_s``
    #: window: a server that trickles a byte now and then never stalls, but falls below this.
    min_bytes_per_s: Annotated[int, msgspec.Meta(ge=0)] = 4096
    #: Redirects followed, per request, before the URL is refused.
    max_redirects: Annotated[int, msgspec.Meta(ge=0, le=30)] = 5
    #: Largest web page (or other answer yt-dlp reads while looking for the media), in bytes.
    max_page_bytes: _Positive = 8 * 1024 * 1024


class FetchOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Options of the fetch stage."""

    #: Size, length and time limits.
    limits: FetchLimits
    #: Allow loopback, private and shared addresses (MAIE_FETCH_ALLOW_PRIVATE); link-local
    #: addresses and cloud metadata services stay refused.
    allow_private: bool = False
    #: ``User-Agent`` of direct downloads (yt-dlp sends its own to the pages it reads).
    user_agent: str = f"MAIE-Fetch/{__version__}"

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchOptions:
        """The options of ``settings``: MAIE_FETCH_*, with the upload's size and duration limits."""
        fetch = settings.fetch
        limits = FetchLimits(
            max_bytes=int(settings.server.max_file_size_mb * _MIB),
            max_duration_s=settings.audio.max_duration_s,
            connect_timeout_s=fetch.connect_timeout_s,
            total_timeout_s=fetch.total_timeout_s,
            stall_timeout_s=fetch.stall_timeout_s,
            min_bytes_per_s=fetch.min_bytes_per_s,
            max_redirects=fetch.max_redirects,
            max_page_bytes=int(fetch.max_page_mb * _MIB),
        )
        return cls(limits=limits, allow_private=fetch.allow_private)


class FetchInput(msgspec.Struct, frozen=True, kw_only=True):
    """One fetch: where from, where to."""

    #: The recording's URL as the client gave it (credentials included, never recorded).
    url: str
    #: Existing folder the file is written to, as :data:`FETCHED_NAME`.
    dest_dir: Path


class FetchedMedia(msgspec.Struct, frozen=True, kw_only=True):
    """A downloaded recording, before any probe: what it is is for PyAV to decide."""

    #: The file, complete (``dest_dir / FETCHED_NAME``).
    path: Path
    #: The URL as given, without credentials (:func:`maie.outbound.redact_url`): for the record.
    source_url: str
    #: ``direct``: the URL answered with the file; ``page``: yt-dlp found it on a web page.
    via: Literal["direct", "page"]
    #: Bytes written.
    size_bytes: int
    #: ``Content-Type`` of the media answer, as the server stated it.
    content_type: str | None = None
    #: yt-dlp's extractor that found the media (``generic`` for a plain page), for ``page``.
    extractor: str | None = None
    #: Title the page gives the media, for ``page``.
    title: str | None = None
    #: Duration the page states, in seconds, for ``page`` (the probe measures the file itself).
    duration_s: float | None = None
    #: Redirects followed to reach the media.
    redirects: int = 0


def fetch_rules(*, allow_private: bool) -> AddressRules:
    """The outbound rules of recordings by URL, raising the ``fetch_*`` errors."""
    return AddressRules(
        allow_private=allow_private,
        subject="url",
        setting="MAIE_FETCH_ALLOW_PRIVATE",
        refused=FetchRefusedAddressError,
        invalid=FetchInvalidUrlError,
        unresolvable=FetchUnresolvableError,
        resolver_down=FetchConnectionError,
        drop_fragment=True,
    )
