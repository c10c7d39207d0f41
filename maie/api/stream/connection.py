"""One ``/v1/stream`` connection: from the ``start`` message to the stored task.

Two coroutines share the socket. The receiver takes messages as they come: audio frames are
pushed into the session on the event loop (decoding and resampling a 20 ms frame costs tens of
microseconds) and wake the pump; ``stop`` ends the intake. The pump transcribes what is queued in
a thread (:meth:`~maie.pipeline.streaming.StreamSession.poll`) and sends the events, one poll at a
time, so a slow decode batches the frames that arrived meanwhile. However the session ends (``stop``,
an error, a dropped connection), what was received is stored as an ordinary task through the
intake of ``/v1/process``, and the client, if still there, learns its id (``end``).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.to_thread
import msgspec
import structlog
from litestar.exceptions import WebSocketDisconnect

from maie.api.admission import QueueSlots
from maie.api.guards import presented_key, tenant_for_key
from maie.api.intake import IdempotencyClaim, accept_task, validate_request
from maie.api.intake.uploads import remove_task_dir
from maie.api.request_id import REQUEST_ID_HEADER, accept_request_id
from maie.api.stream.protocol import (
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    EndMessage,
    ErrorMessage,
    ReadyMessage,
    StartMessage,
    close_code,
    parse_message,
)
from maie.errors import (
    BackendUnavailableError,
    MaieError,
    StreamIdleError,
    StreamProtocolError,
    UnauthorizedError,
    UnprocessableError,
)
from maie.metrics import STREAM_FINAL_SECONDS, STREAM_PARTIAL_SECONDS, StreamOutcome
from maie.pipeline.asr.registry import REGISTRY
from maie.pipeline.streaming import STREAMING_BACKENDS, PartialEvent, StreamRequest
from maie.schemas import Feature, SubmissionOptions

if TYPE_CHECKING:
    from pathlib import Path

    from litestar import WebSocket

    from maie.api.services import Services
    from maie.api.stream.leases import SessionLease
    from maie.api.stream.service import StreamService
    from maie.pipeline.streaming import StreamEvent, StreamSession
    from maie.schemas import TaskRequest

__all__ = ["LiveConnection"]

log = structlog.get_logger(__name__)

#: What a connection whose socket went away raises (uvicorn: ClientDisconnected, an OSError; Litestar:
#: WebSocketDisconnect once it saw the disconnect; RuntimeError for a send after the close).
_GONE: Final = (OSError, RuntimeError, WebSocketDisconnect)
#: Name of the live recording in its task folder until intake keeps it as ``raw.wav``.
RECORDING_NAME: Final = "live.part.wav"
#: Arrival times kept for latency figures; older audio is not waited on any more.
_ARRIVALS_KEPT: Final = 8192


class _Ended(Exception):  # noqa: N818 - control flow, not an error
    """The client went away."""


@dataclass(slots=True, kw_only=True)
class _Session:
    """What a running session holds."""

    task_id: str
    tenant: str
    request: TaskRequest
    lease: SessionLease
    slots: QueueSlots
    folder: Path
    live: StreamSession


class LiveConnection:
    """Serves one WebSocket connection of ``/v1/stream``."""

    def __init__(self, socket: WebSocket[Any, Any, Any], services: Services, stream: StreamService) -> None:
        self.socket = socket
        self.services = services
        self.stream = stream
        self.settings = services.settings.stream
        self._send_lock = asyncio.Lock()
        self._connected = True
        self._wake = asyncio.Event()
        self._intake_done = False
        self._received: list[float] = []  # seconds of audio received after each frame ...
        self._arrived: list[float] = []  # ... and when that frame arrived (monotonic)
        self._backend = "unknown"

    async def run(self) -> None:
        """Serve the connection until it closes; never raises."""
        request_id = accept_request_id(self.socket.headers.get(REQUEST_ID_HEADER))
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.socket.accept()
            try:
                session = await self._open()
            except _Ended:
                return
            except MaieError as exc:
                await self._fail(exc)
                return
            except Exception as exc:
                log.exception("stream.open_failed")
                await self._fail(MaieError(f"the session could not start: {type(exc).__name__}"))
                return
            structlog.contextvars.bind_contextvars(task_id=session.task_id)
            try:
                await self._serve(session)
            except Exception:
                log.exception("stream.store_failed")
                await self._close(CLOSE_INTERNAL)
            finally:
                await session.lease.release()
                await session.slots.free()

    # --- opening ---------------------------------------------------------------------------------

    async def _open(self) -> _Session:
        """Authenticate, check the limits and the request, hold a queue slot, open the session.

        Raises:
            MaieError: why the session cannot start (sent to the client as ``error``).
            _Ended: the client left first.
        """
        services = self.services
        header_key = presented_key(self.socket.headers)
        start = await self._first_message()
        key = header_key or start.api_key
        if not key:
            raise UnauthorizedError(
                "missing API key: send the X-API-Key header, Authorization: Bearer, "
                "or api_key in the start message"
            )
        tenant = tenant_for_key(services.api_keys, key)
        await services.rate_limiter.hit(key, "requests")
        await services.rate_limiter.hit(key, "submissions")
        lease = await self.stream.leases.take(key)
        try:
            request = await self._validated(start)
            self._backend = request.asr_backend
            slots = QueueSlots(
                services, hold_s=self.settings.max_session_s + self.settings.idle_timeout_s + 60
            )
            try:
                await slots.hold(1)
                session = await self._start_session(start, request, tenant, lease, slots)
            except BaseException:
                await slots.free()
                raise
        except BaseException:
            await lease.release()
            raise
        return session

    async def _first_message(self) -> StartMessage:
        message = await self._receive()
        if "text" not in message or message["text"] is None:
            raise StreamProtocolError(
                'the first message must be {"type": "start", ...} as text, before any audio'
            )
        parsed = parse_message(message["text"])
        if not isinstance(parsed, StartMessage):
            raise StreamProtocolError('the first message must be {"type": "start", ...}')
        return parsed

    async def _validated(self, start: StartMessage) -> TaskRequest:
        """The stored task's request, checked like a submission, and what live sessions can do."""
        services = self.services
        backend = start.asr_backend or services.settings.asr.backend
        if backend not in STREAMING_BACKENDS:
            raise BackendUnavailableError(
                f"asr_backend {backend!r} cannot transcribe live; "
                f"streaming backends: {', '.join(STREAMING_BACKENDS)}",
                extra={"streaming_backends": list(STREAMING_BACKENDS)},
            )
        if start.task not in {None, "transcribe"}:
            raise UnprocessableError(
                "live sessions transcribe; submit the recording with task=translate instead"
            )
        fields = {name: getattr(start, name) for name in SubmissionOptions.__struct_fields__}
        fields["asr_backend"] = backend
        fields["features"] = start.features or [Feature.RAW_TRANSCRIPT.value]
        request = await validate_request(SubmissionOptions(**fields), services, filename=None)
        if start.model is not None:
            default = await anyio.to_thread.run_sync(REGISTRY.variant, backend, services.settings, None)
            if default is not None and request.model != default.name:
                raise UnprocessableError(
                    f"live sessions use the default model {default.name!r} of {backend!r}; leave model out"
                )
        return request

    async def _start_session(
        self, start: StartMessage, request: TaskRequest, tenant: str, lease: SessionLease, slots: QueueSlots
    ) -> _Session:
        task_id = str(uuid.uuid4())
        folder = self.services.settings.storage.data_dir / "audio" / task_id
        live_request = StreamRequest(
            backend=request.asr_backend,
            encoding=start.encoding,
            sample_rate=start.sample_rate,
            language=request.language,
            word_timestamps=bool(request.word_timestamps),
            hotwords=request.hotwords,
            initial_prompt=request.initial_prompt,
        )
        await anyio.Path(folder).mkdir(parents=True)
        try:
            live = await anyio.to_thread.run_sync(
                self.stream.engine.open, live_request, folder / RECORDING_NAME, limiter=self.stream.threads
            )
        except BaseException:
            remove_task_dir(folder)
            raise
        await self.services.metrics.recorder.stream_session(request.asr_backend, StreamOutcome.STARTED)
        log.info("stream.started", backend=request.asr_backend, encoding=str(start.encoding), tenant=tenant)
        await self._send(ReadyMessage(task_id=task_id, backend=request.asr_backend, language=live.language))
        return _Session(
            task_id=task_id,
            tenant=tenant,
            request=request,
            lease=lease,
            slots=slots,
            folder=folder,
            live=live,
        )

    # --- streaming -------------------------------------------------------------------------------

    async def _serve(self, session: _Session) -> None:
        """Stream until stop, an error or a dropped connection; then store the task and say so."""
        pump = asyncio.get_running_loop().create_task(self._pump(session.live), name="maie-stream-pump")
        receiver = asyncio.get_running_loop().create_task(
            self._intake(session.live), name="maie-stream-intake"
        )
        error: MaieError | None = None
        try:
            await asyncio.wait({pump, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if pump.done() and not receiver.done():  # transcription failed: stop taking audio
                receiver.cancel()
            stopped = await _outcome(receiver)
            error = await _outcome(pump) or (stopped if isinstance(stopped, MaieError) else None)
            if error is None and stopped is True:
                await self._send_events(await self._blocking(session.live.finish))
        except MaieError as exc:
            error = exc
        except Exception:
            log.exception("stream.failed")
            error = MaieError("the live session failed on the server; its audio is stored")
        finally:
            self._intake_done = True
            self._wake.set()
            for task in (pump, receiver):
                task.cancel()
            await asyncio.gather(pump, receiver, return_exceptions=True)
            await self._blocking(session.live.close)
        if error is not None:
            await self._say_error(error)
        await self._store(session, error)

    async def _intake(self, live: StreamSession) -> bool | MaieError:
        """Take messages until ``stop`` (True), a problem (the error), or the client leaves (False)."""
        try:
            while True:
                message = await self._receive()
                frame = message.get("bytes")
                if frame is not None:
                    live.push(frame)
                    self._received.append(live.received_s)
                    self._arrived.append(time.monotonic())
                    if len(self._received) > _ARRIVALS_KEPT:
                        del self._received[: _ARRIVALS_KEPT // 2], self._arrived[: _ARRIVALS_KEPT // 2]
                    self._wake.set()
                    continue
                parsed = parse_message(message.get("text") or "")
                if isinstance(parsed, StartMessage):
                    raise StreamProtocolError("the session is started already; send audio, then stop")
                return True
        except _Ended:
            return False
        except MaieError as exc:
            return exc
        finally:
            self._intake_done = True
            self._wake.set()

    async def _pump(self, live: StreamSession) -> MaieError | None:
        """Transcribe what arrived, one poll at a time, and send the events, until the intake ends.

        Returns:
            None, or why transcription stopped (a recognizer process died).
        """
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._intake_done:
                    return None
                await self._send_events(await self._blocking(live.poll))
        except MaieError as exc:
            return exc

    async def _blocking(self, call: Any) -> Any:  # noqa: ANN401 - the session's open, poll, finish, close
        return await anyio.to_thread.run_sync(call, limiter=self.stream.threads)

    async def _send_events(self, events: list[StreamEvent]) -> None:
        for event in events:
            await self._send(event)
            heard = event.end if isinstance(event, PartialEvent) else event.segment.end
            series = STREAM_PARTIAL_SECONDS if isinstance(event, PartialEvent) else STREAM_FINAL_SECONDS
            latency = self._latency(heard)
            if latency is not None:
                await self.services.metrics.recorder.observe(series, latency, self._backend)

    def _latency(self, heard_s: float) -> float | None:
        """Seconds since the frame that brought the audio up to ``heard_s`` arrived."""
        index = bisect.bisect_left(self._received, heard_s - 1e-6)
        if not self._arrived:
            return None
        return time.monotonic() - self._arrived[min(index, len(self._arrived) - 1)]

    # --- ending ----------------------------------------------------------------------------------

    async def _store(self, session: _Session, error: MaieError | None) -> None:
        """Store what was received as a task, tell the client (if there), and close."""
        live = session.live
        services = self.services
        duration_s = live.received_s
        claim = IdempotencyClaim(services.store, session.tenant, None, kind="task", request=session.request)
        try:
            accepted = await accept_task(
                services,
                tenant=session.tenant,
                upload=session.folder / RECORDING_NAME,
                request=session.request,
                request_id=None,
                idempotency=claim,
                slots=session.slots,
                task_id=session.task_id,
            )
        except MaieError as exc:
            # Too short to be a task (a session stopped at once), or the store is away.
            await services.metrics.recorder.stream_session(
                self._backend, StreamOutcome.NOT_STORED, audio_s=duration_s
            )
            log.info("stream.not_stored", reason=exc.code, duration_s=round(duration_s, 2))
            if error is None:
                await self._say_error(exc)
            await self._close(close_code(error or exc))
            return
        await services.metrics.recorder.stream_session(
            self._backend, StreamOutcome.STORED, audio_s=duration_s
        )
        log.info(
            "stream.stored",
            duration_s=round(duration_s, 2),
            finals=len(live.finals),
            ended=error.code if error else ("stop" if self._connected else "dropped"),
        )
        body = accepted.body
        await self._send(EndMessage(task_id=body.task_id, status_url=body.status_url, duration_s=duration_s))
        await self._close(close_code(error) if error else CLOSE_NORMAL)

    async def _fail(self, error: MaieError) -> None:
        log.info("stream.refused", reason=error.code, detail=error.detail)
        await self._say_error(error)
        await self._close(close_code(error))

    async def _say_error(self, error: MaieError) -> None:
        await self._send(ErrorMessage(code=error.code, detail=error.detail))

    # --- the socket ------------------------------------------------------------------------------

    async def _receive(self) -> dict[str, Any]:
        """The next message (``bytes`` or ``text``).

        Raises:
            StreamIdleError: nothing came for MAIE_STREAM_IDLE_TIMEOUT_S.
            _Ended: the client closed the connection.
        """
        if not self._connected:
            raise _Ended
        try:
            received = await asyncio.wait_for(_receive(self.socket), self.settings.idle_timeout_s)
        except TimeoutError:
            raise StreamIdleError(
                f"nothing arrived for {self.settings.idle_timeout_s:g} s (MAIE_STREAM_IDLE_TIMEOUT_S); "
                "send audio (or silence) continuously, then stop"
            ) from None
        except _GONE:
            self._connected = False
            raise _Ended from None
        if received["type"] == "websocket.disconnect":
            self._connected = False
            raise _Ended
        return received

    async def _send(self, message: msgspec.Struct) -> None:
        """Send one message; a client that is gone is noted, not raised."""
        if not self._connected:
            return
        data = msgspec.json.encode(message).decode()
        async with self._send_lock:
            try:
                await self.socket.send_data(data)
            except _GONE:
                self._connected = False

    async def _close(self, code: int) -> None:
        if not self._connected:
            return
        self._connected = False
        with contextlib.suppress(*_GONE):
            await self.socket.close(code=code)


async def _outcome(task: asyncio.Task[Any]) -> Any:  # noqa: ANN401 - what the task returned
    """What a finished (or cancelled) task returned; None if it was cancelled."""
    try:
        return await task
    except asyncio.CancelledError:
        return None


async def _receive(socket: WebSocket[Any, Any, Any]) -> dict[str, Any]:
    """The socket's next ASGI event, as a plain mapping."""
    return dict(await socket.receive())
