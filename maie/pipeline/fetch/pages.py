"""Web pages: find the media on a page with yt-dlp, every request it makes checked like ours.

yt-dlp is used as a library for what it knows, its extractors (the generic one reads a page's
``<audio>``, ``<video>`` and ``<source>`` elements; others know video and podcast sites), not for
downloading:

- **Its HTTP is ours.** The ``YoutubeDL`` instance gets one request handler, :class:`_GuardedRH`,
  instead of yt-dlp's own (urllib, requests, curl_cffi, websockets), so every request an
  extractor makes goes through the fetch's :class:`~maie.pipeline.fetch.session.FetchSession`:
  each address checked as its connection opens, redirects followed by hand and bounded, bodies
  read up to ``max_page_bytes``, all within the fetch's time limit. Proxies are ignored.
- **It only looks.** ``extract_info(download=False)``, no post-processors, no cache folder, no
  FFmpeg: it picks the best audio-only format (else the best one) served as one plain http(s)
  file, and MAIE downloads that URL itself, under the same checks and limits as a direct link.
  Media split into segments (HLS, DASH) would need yt-dlp's own downloaders and is refused.

A failure of one of our requests inside yt-dlp reaches it as a ``TransportError``, which it turns
into its own message; the handler keeps the original fetch error so that the caller raises that
(``fetch_refused_address``, ``fetch_http_error``...) rather than a vague "no media".
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

import msgspec
import structlog
import yt_dlp
from yt_dlp.networking.common import RequestHandler, Response
from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.utils import DownloadError

from maie.errors import FetchNoMediaError, FetchRefusedAddressError, MaieError
from maie.outbound import redact_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from maie.pipeline.fetch.session import FetchSession

__all__ = ["FORMAT", "MediaChoice", "find_media"]

log = structlog.get_logger(__name__)

#: yt-dlp format selection: the best audio-only format, else the best one, as one http(s) file.
FORMAT: Final = "bestaudio[protocol~='^https?$']/best[protocol~='^https?$']"

#: Request extensions yt-dlp may set that the handler accepts; their effects are the session's.
_EXTENSIONS: Final = ("cookiejar", "timeout", "legacy_ssl", "keep_header_casing")
#: Request headers left to httpx, which knows which encodings it can decode.
_DROPPED_HEADERS: Final = frozenset({"accept-encoding", "content-length", "host"})
_USERINFO: Final = re.compile(r"(?<=//)[^/@\s]+@")


class MediaChoice(msgspec.Struct, frozen=True, kw_only=True):
    """The media yt-dlp found on a page: one file to download."""

    #: The file's URL (may carry the site's signatures: never recorded).
    url: str
    #: Headers the site expects with it (User-Agent, Referer...).
    headers: dict[str, str]
    #: The extractor that found it (``Generic`` for a plain page).
    extractor: str | None = None
    #: The media's title, as the page gives it.
    title: str | None = None
    #: Its duration, as the page states it, in seconds.
    duration_s: float | None = None
    #: Its size, as the page states it (exactly or roughly), in bytes.
    size_bytes: int | None = None


class _Logger:
    """yt-dlp's messages as debug log lines (it would print them), credentials removed."""

    def _line(self, level: str, message: str) -> None:
        log.debug("fetch.ytdlp", level=level, message=_USERINFO.sub("", str(message))[:500])

    def debug(self, message: str) -> None:
        self._line("debug", message)

    def info(self, message: str) -> None:
        self._line("info", message)

    def warning(self, message: str, *, once: bool = False) -> None:  # noqa: ARG002 - yt-dlp's signature
        self._line("warning", message)

    def error(self, message: str, *, is_error: bool = True) -> None:  # noqa: ARG002 - yt-dlp's signature
        self._line("error", message)


def _body(data: object) -> bytes | None:
    """A request's body as bytes: yt-dlp allows bytes, a file or an iterable of bytes."""
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, io.IOBase):
        return bytes(data.read())
    if isinstance(data, Iterable):
        return b"".join(bytes(part) for part in data)
    msg = f"unsupported request body {type(data).__name__}"
    raise TypeError(msg)


class _GuardedRH(RequestHandler):  # type: ignore[misc]  # yt-dlp ships no type information
    """yt-dlp's only request handler in MAIE: every request through the fetch's session."""

    _SUPPORTED_URL_SCHEMES = ("http", "https")

    def __init__(self, *, session: FetchSession, failures: list[MaieError], **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(**kwargs)
        self.session = session
        self.failures = failures

    def _check_proxies(self, proxies: object) -> None:
        """Accept and ignore proxies: a proxy would make the address checks meaningless."""

    def _check_extensions(self, extensions: dict[str, object]) -> None:
        super()._check_extensions(extensions)
        for name in _EXTENSIONS:
            extensions.pop(name, None)

    def _send(self, request: Any) -> Response:  # noqa: ANN401 - yt_dlp.networking.Request
        headers = {k: v for k, v in self._get_headers(request).items() if k.lower() not in _DROPPED_HEADERS}
        try:
            with self.session.open(
                request.url, method=request.method, headers=headers, content=_body(request.data)
            ) as answer:
                body = self.session.read(answer, self.session.limits.max_page_bytes)
        except MaieError as exc:
            self.failures.append(exc)
            raise TransportError(cause=exc) from exc
        kept = {k: v for k, v in answer.headers.items() if k.lower() != "content-encoding"}
        response = Response(
            io.BytesIO(body),
            url=str(answer.url),
            headers=kept,
            status=answer.status_code,
            reason=answer.reason_phrase,
        )
        if not 200 <= answer.status_code < 300:  # noqa: PLR2004 - HTTP classes
            raise HTTPError(response)
        return response


class _GuardedYoutubeDL(yt_dlp.YoutubeDL):  # type: ignore[misc]  # yt-dlp ships no type information
    """A ``YoutubeDL`` whose requests all go through one handler (none of yt-dlp's own)."""

    def __init__(self, params: dict[str, object], handler: Callable[..., RequestHandler]) -> None:
        self._guarded_handler = handler
        super().__init__(params)

    @functools.cached_property
    def _request_director(self) -> Any:  # noqa: ANN401 - yt_dlp.networking.RequestDirector
        return self.build_request_director([self._guarded_handler])


def _params(session: FetchSession) -> dict[str, object]:
    return {
        "format": FORMAT,
        "logger": _Logger(),
        "quiet": True,
        "noprogress": True,
        "cachedir": False,
        "noplaylist": True,
        # A page with several recordings is a playlist: the first one is the recording.
        "playlist_items": "1",
        "check_formats": False,
        "extractor_retries": 0,
        "retries": 0,
        "socket_timeout": session.limits.stall_timeout_s,
        "postprocessors": [],
        "skip_download": True,
        # '' keeps yt-dlp from reading proxy variables; the handler ignores proxies anyway.
        "proxy": "",
    }


def _first_entry(info: dict[str, Any] | None) -> dict[str, Any] | None:
    while info is not None and info.get("_type") == "playlist":
        entries = [entry for entry in info.get("entries") or () if entry]
        info = entries[0] if entries else None
    return info


def _no_media(host: str) -> FetchNoMediaError:
    return FetchNoMediaError(
        f"no audio or video MAIE can download was found at {host!r}: give the link of the file "
        "itself, or of a page whose media is one http(s) file (streams in segments, HLS or DASH, "
        "are not fetched)"
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None


def find_media(url: str, session: FetchSession) -> MediaChoice:
    """Ask yt-dlp which file on the page at ``url`` holds the recording.

    Args:
        url: the page's URL.
        session: the fetch's session; every request yt-dlp makes goes through it.

    Returns:
        The file to download, with what the page says about it.

    Raises:
        FetchNoMediaError: when yt-dlp finds no media, or none served as one http(s) file.
        MaieError: the fetch error of a request that failed while yt-dlp looked (a refused
            address first), when that made the extraction fail.
    """
    host = session.rules.parse_url(url).host
    failures: list[MaieError] = []
    handler = functools.partial(_GuardedRH, session=session, failures=failures)
    try:
        with _GuardedYoutubeDL(_params(session), handler) as ydl:
            info = ydl.extract_info(url, download=False)
    except DownloadError as exc:
        refused = [f for f in failures if isinstance(f, FetchRefusedAddressError)]
        if refused or failures:
            raise (refused or failures)[-1] from None
        log.info("fetch.no_media", url=redact_url(url), reason=_USERINFO.sub("", str(exc))[:300])
        raise _no_media(host) from None
    entry = _first_entry(info)
    if entry is None or entry.get("requested_formats") or not entry.get("url"):
        raise _no_media(host)
    if entry.get("protocol") not in {"http", "https"}:
        raise _no_media(host)
    size = _number(entry.get("filesize")) or _number(entry.get("filesize_approx"))
    return MediaChoice(
        url=str(entry["url"]),
        headers={str(k): str(v) for k, v in (entry.get("http_headers") or {}).items()},
        extractor=entry.get("extractor_key") or entry.get("extractor"),
        title=entry.get("title"),
        duration_s=_number(entry.get("duration")),
        size_bytes=int(size) if size else None,
    )
