"""Recordings by URL at submit time: which of ``file`` and ``url`` was sent, and the URL checked.

The API never downloads anything: the worker's fetch stage does (:mod:`maie.pipeline.fetch`). At
submit time a URL is checked as every connection of the fetch will be: http(s) only, and every
address its host resolves to now allowed by the outbound rules (``MAIE_FETCH_ALLOW_PRIVATE``). A
refusal names the host and the rule, never the address (422). A resolver that cannot answer for
now is a 503 with ``Retry-After``, not a verdict on the URL: the client sends it again later.

A batch takes several URLs: repeated ``url`` fields, each of which may hold several URLs, one per
line (so a list can be sent as one field, ``-F url=<urls.txt``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, NamedTuple

import anyio

from maie.errors import FetchDnsUnavailableError, UnprocessableError
from maie.outbound import redact_url
from maie.pipeline.fetch import fetch_rules
from maie.schemas import SkippedMember

if TYPE_CHECKING:
    from collections.abc import Sequence

    from litestar.datastructures import UploadFile

    from maie.config import Settings
    from maie.outbound import AddressRules

__all__ = [
    "CHECKS_AT_ONCE",
    "SubmittedUrl",
    "batch_urls",
    "check_url",
    "check_urls",
    "one_source",
    "split_urls",
]

#: URLs of one batch whose hosts are resolved at the same time.
CHECKS_AT_ONCE = 8


class SubmittedUrl(NamedTuple):
    """A URL that passed the submit-time checks."""

    #: What the fetch stage requests: the URL as given (credentials included), without its fragment.
    url: str
    #: What is recorded and shown: the URL without credentials.
    source_url: str


def one_source(file: UploadFile | None, url: str | None) -> UploadFile | str:
    """The recording of POST /v1/process: the upload or the URL, exactly one of them.

    Raises:
        UnprocessableError: when both or neither were sent.
    """
    link = (url or "").strip() or None
    if (file is None) == (link is None):
        which = "both" if file is not None else "neither"
        raise UnprocessableError(
            f"send the recording either as `file` (an upload) or as `url` (a link to it); {which} was sent"
        )
    return file if file is not None else str(link)


def split_urls(values: Sequence[str] | None) -> list[str]:
    """Every URL of a batch's ``url`` fields: one per field or one per line, blanks dropped, in order."""
    return [line.strip() for value in values or [] for line in value.splitlines() if line.strip()]


def _rules(settings: Settings) -> AddressRules:
    return dataclasses.replace(
        fetch_rules(allow_private=settings.fetch.allow_private), resolver_down=FetchDnsUnavailableError
    )


async def check_url(url: str, settings: Settings) -> SubmittedUrl:
    """Check one recording's URL now: shape, scheme and every address of its host.

    Raises:
        FetchInvalidUrlError: not an absolute http(s) URL, or too long (422).
        FetchUnresolvableError: its host has no address (422).
        FetchRefusedAddressError: its host resolves to an address MAIE may not fetch from (422).
        FetchDnsUnavailableError: the resolver cannot answer for now (503, ``Retry-After``).
    """
    parsed = await _rules(settings).check_url(url)
    return SubmittedUrl(url=str(parsed), source_url=redact_url(parsed))


async def batch_urls(
    values: Sequence[str] | None, settings: Settings
) -> tuple[list[str], list[SubmittedUrl], list[SkippedMember]]:
    """The URLs of a batch's ``url`` fields: as sent, those that passed the checks, those skipped.

    Raises:
        UnprocessableError: more URLs than MAIE_BATCH_MAX_MEMBERS.
        FetchDnsUnavailableError: the resolver cannot answer for now (503).
    """
    sent = split_urls(values)
    limit = settings.batch.max_members
    if len(sent) > limit:
        raise UnprocessableError(
            f"the batch names {len(sent)} URLs, more than MAIE_BATCH_MAX_MEMBERS={limit}; split it",
            extra={"urls": len(sent), "max_members": limit},
        )
    checked = await check_urls(sent, settings)
    kept = [c for c in checked if isinstance(c, SubmittedUrl)]
    skipped = [c for c in checked if isinstance(c, SkippedMember)]
    return sent, kept, skipped


async def check_urls(urls: Sequence[str], settings: Settings) -> list[SubmittedUrl | SkippedMember]:
    """Check a batch's URLs, a few at a time; each is kept, or skipped with the reason (in order).

    Raises:
        FetchDnsUnavailableError: the resolver cannot answer for now: the whole batch is refused
            (503), since a retry may take every URL.
    """
    results: list[SubmittedUrl | SkippedMember | FetchDnsUnavailableError | None] = [None] * len(urls)
    limiter = anyio.CapacityLimiter(CHECKS_AT_ONCE)

    async def one(n: int, url: str) -> None:
        # Errors are kept, not raised: a task group would wrap them in an exception group.
        async with limiter:
            try:
                results[n] = await check_url(url, settings)
            except FetchDnsUnavailableError as exc:
                results[n] = exc
            except UnprocessableError as exc:
                results[n] = SkippedMember(name=redact_url(url), reason=exc.detail)

    async with anyio.create_task_group() as group:
        for n, url in enumerate(urls):
            group.start_soon(one, n, url)
    checked: list[SubmittedUrl | SkippedMember] = []
    for result in results:
        if isinstance(result, FetchDnsUnavailableError):
            raise result
        if result is not None:
            checked.append(result)
    return checked
