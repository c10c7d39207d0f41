"""The asyncio client: the methods of the blocking one, awaitable."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Self, Unpack

import httpx
import msgspec
from httpx_sse import aconnect_sse

from maie.client._http import (
    RETRY_STATUS,
    Submission,
    SubmitFields,
    SubmitOptions,
    TaskFilters,
    decode,
    error_of,
    filter_params,
    headers_of,
    pause,
    retry_after,
)
from maie.errors import ConflictError
from maie.schemas import (
    BatchAccepted,
    BatchStatus,
    ProcessAccepted,
    ResultVersion,
    ResultVersionList,
    SearchPage,
    SpeakerNames,
    StatusResponse,
    TaskPage,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence
    from pathlib import Path

__all__ = ["AsyncMaieClient"]

#: Seconds between polls when the server names no Retry-After.
DEFAULT_POLL_S = 2.0


class AsyncMaieClient:
    """Asyncio client. Use it as an async context manager, or await :meth:`aclose`.

    Args:
        base_url: Where the API is, e.g. ``http://127.0.0.1:8000``.
        api_key: An ``X-API-Key`` of the server.
        timeout: Seconds one HTTP request may take (uploads of long recordings take a while).
        max_attempts: Attempts per request when the server is busy or unreachable.
        transport: An httpx transport (tests, proxies).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 300.0,
        max_attempts: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.max_attempts = max_attempts
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers_of(api_key), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _post(self, submission: Submission) -> httpx.Response:
        response = None
        for attempt in range(1, self.max_attempts + 1):
            response = None
            try:
                with ExitStack() as stack:
                    response = await self._http.post(
                        submission.url,
                        files=submission.files(stack),
                        data=submission.form,
                        headers=submission.headers,
                    )
            except submission.retry_errors:
                if attempt == self.max_attempts:
                    raise
            if response is not None and (
                response.status_code not in submission.retry_status or attempt == self.max_attempts
            ):
                return response
            await asyncio.sleep(pause(attempt - 1, response))
        raise AssertionError  # pragma: no cover - the last attempt returns or raises

    async def _get(self, url: str, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:  # noqa: ANN401
        query = {k: v for k, v in params.items() if v is not None}
        for attempt in range(1, self.max_attempts + 1):
            response = None
            try:
                response = await self._http.get(url, params=query, headers=headers)
            except httpx.TransportError:
                if attempt == self.max_attempts:
                    raise
            if response is not None and (
                response.status_code not in RETRY_STATUS or attempt == self.max_attempts
            ):
                return response
            await asyncio.sleep(pause(attempt - 1, response))
        raise AssertionError  # pragma: no cover - the last attempt returns or raises

    async def submit(
        self,
        path: Path,
        *,
        idempotency_key: str | None = None,
        **fields: Unpack[SubmitFields],
    ) -> ProcessAccepted:
        """Upload one recording (``POST /v1/process``); the options are those of docs/api.md."""
        options = SubmitOptions.of(**fields)
        return await self.submit_with(path, options, idempotency_key=idempotency_key)

    async def submit_with(
        self, path: Path, options: SubmitOptions, *, idempotency_key: str | None = None
    ) -> ProcessAccepted:
        """:meth:`submit` with the options as one Struct."""
        return decode(
            await self._post(Submission("/v1/process", [path], options, idempotency_key)), ProcessAccepted
        )

    async def submit_url(
        self,
        url: str,
        *,
        idempotency_key: str | None = None,
        **fields: Unpack[SubmitFields],
    ) -> ProcessAccepted:
        """Submit a recording by its URL (``POST /v1/process`` with ``url``); the server fetches it."""
        options = SubmitOptions.of(**fields)
        return await self.submit_url_with(url, options, idempotency_key=idempotency_key)

    async def submit_url_with(
        self, url: str, options: SubmitOptions, *, idempotency_key: str | None = None
    ) -> ProcessAccepted:
        """:meth:`submit_url` with the options as one Struct."""
        submission = Submission("/v1/process", [], options, idempotency_key, links=[url])
        return decode(await self._post(submission), ProcessAccepted)

    async def submit_batch(
        self,
        paths: Sequence[Path],
        *,
        urls: Sequence[str] = (),
        idempotency_key: str | None = None,
        **fields: Unpack[SubmitFields],
    ) -> BatchAccepted:
        """Upload archives and/or recordings, and/or recordings' URLs, as one batch (``POST /v1/batches``)."""
        options = SubmitOptions.of(**fields)
        return await self.submit_batch_with(paths, options, urls=urls, idempotency_key=idempotency_key)

    async def submit_batch_with(
        self,
        paths: Sequence[Path],
        options: SubmitOptions,
        *,
        urls: Sequence[str] = (),
        idempotency_key: str | None = None,
    ) -> BatchAccepted:
        """:meth:`submit_batch` with the options as one Struct."""
        submission = Submission("/v1/batches", paths, options, idempotency_key, links=urls)
        return decode(await self._post(submission), BatchAccepted)

    async def status(self, task_id: str) -> StatusResponse:
        """``GET /v1/status/{task_id}``."""
        return decode(await self._get(f"/v1/status/{task_id}"), StatusResponse)

    async def wait(self, task_id: str) -> StatusResponse:
        """Poll until the task is COMPLETE or FAILED, cheaply (``If-None-Match``, ``Retry-After``).

        Bound it with ``asyncio.timeout(...)`` where it must not wait forever.
        """
        etag: str | None = None
        status: StatusResponse | None = None
        while True:
            response = await self._get(
                f"/v1/status/{task_id}", headers={"If-None-Match": etag} if etag else None
            )
            if status is None or response.status_code != httpx.codes.NOT_MODIFIED:
                status = decode(response, StatusResponse)
                etag = response.headers.get("ETag")
            if status.status.terminal:
                return status
            await asyncio.sleep(retry_after(response) or DEFAULT_POLL_S)

    async def events(self, task_id: str) -> AsyncIterator[StatusResponse]:
        """The task's status each time it changes, until it finishes (server-sent events)."""
        async with aconnect_sse(self._http, "GET", f"/v1/status/{task_id}/events", timeout=None) as source:
            if source.response.is_error:
                await source.response.aread()
                raise error_of(source.response)
            async for event in source.aiter_sse():
                if event.event == "status":
                    yield msgspec.json.decode(event.data, type=StatusResponse)

    async def results(self, task_id: str) -> ResultVersionList:
        """``GET /v1/tasks/{task_id}/results``: what each result version is."""
        return decode(await self._get(f"/v1/tasks/{task_id}/results"), ResultVersionList)

    async def result(self, task_id: str, version: int | None = None) -> ResultVersion:
        """One result version, the latest when ``version`` is None.

        Raises:
            ConflictError: if the task has no result yet.
        """
        if version is None:
            version = (await self.results(task_id)).latest
            if version is None:
                raise ConflictError(f"task {task_id} has no result yet")
        return decode(await self._get(f"/v1/tasks/{task_id}/results/{version}"), ResultVersion)

    async def transcript(self, task_id: str, fmt: str = "txt", *, version: int | None = None) -> str:
        """The transcript as ``txt``, ``srt``, ``vtt`` or ``json`` text, or a diarized task's ``rttm``."""
        response = await self._get(f"/v1/tasks/{task_id}/transcript.{fmt}", version=version)
        if response.is_error:
            raise error_of(response)
        return response.text

    async def name_speakers(self, task_id: str, names: Mapping[str, str]) -> ResultVersion:
        """``PATCH /v1/tasks/{task_id}/speakers``: names for speakers (``SPEAKER_00``: ``Alice``).

        Returns:
            The new result version, in which the names replace the labels (the latest one when
            the names change nothing).
        """
        body = msgspec.json.encode(SpeakerNames(names=dict(names)))
        response = await self._http.patch(
            f"/v1/tasks/{task_id}/speakers", content=body, headers={"Content-Type": "application/json"}
        )
        return decode(response, ResultVersion)

    async def tasks(
        self, *, limit: int = 50, cursor: str | None = None, **filters: Unpack[TaskFilters]
    ) -> TaskPage:
        """One page of your tasks, newest first; pass ``next_cursor`` as ``cursor`` for the next.

        ``filters``: ``status`` (comma-separated), ``submitted_after``, ``submitted_before``,
        ``template_id``, ``batch_id``.
        """
        response = await self._get("/v1/tasks", limit=limit, cursor=cursor, **filter_params(filters))
        return decode(response, TaskPage)

    async def search(
        self, q: str, *, limit: int = 20, cursor: str | None = None, **filters: Unpack[TaskFilters]
    ) -> SearchPage:
        """``GET /v1/search``: your tasks whose transcripts or summary match ``q``, newest first."""
        response = await self._get("/v1/search", q=q, limit=limit, cursor=cursor, **filter_params(filters))
        return decode(response, SearchPage)

    async def delete(self, task_id: str) -> None:
        """``DELETE /v1/tasks/{task_id}``: the task, its results and its audio are gone.

        Raises:
            NotFoundError: if there is no such task of yours (or it was deleted already).
        """
        response = await self._http.delete(f"/v1/tasks/{task_id}")
        if response.is_error:
            raise error_of(response)

    async def delete_batch(self, batch_id: str) -> None:
        """``DELETE /v1/batches/{batch_id}``: the batch and every task of it.

        Raises:
            NotFoundError: if there is no such batch of yours.
        """
        response = await self._http.delete(f"/v1/batches/{batch_id}")
        if response.is_error:
            raise error_of(response)

    async def batch(self, batch_id: str) -> BatchStatus:
        """``GET /v1/batches/{batch_id}``."""
        return decode(await self._get(f"/v1/batches/{batch_id}"), BatchStatus)

    async def batch_export(self, batch_id: str, fmt: str = "jsonl") -> str:
        """``GET /v1/batches/{batch_id}/export`` as ``jsonl`` or ``csv`` text."""
        response = await self._get(f"/v1/batches/{batch_id}/export", format=fmt)
        if response.is_error:
            raise error_of(response)
        return response.text
