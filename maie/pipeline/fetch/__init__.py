"""Recordings by URL: direct media over HTTP(S), or the media on a web page (yt-dlp).

Pure: no web framework, queue or store. The API checks a URL at submit time with
:func:`fetch_rules` (``await fetch_rules(...).check_url(url)``); the worker's fetch stage runs a
:class:`Fetcher` (or :func:`fetch`) and hands the file to the same probe and preprocessing as an
upload.
"""

from maie.pipeline.fetch.fetcher import PAGE_TYPES, Fetcher, fetch
from maie.pipeline.fetch.options import (
    FETCHED_NAME,
    FetchedMedia,
    FetchInput,
    FetchLimits,
    FetchOptions,
    fetch_rules,
)

__all__ = [
    "FETCHED_NAME",
    "PAGE_TYPES",
    "FetchInput",
    "FetchLimits",
    "FetchOptions",
    "FetchedMedia",
    "Fetcher",
    "fetch",
    "fetch_rules",
]
