"""The models behind every live session of a process, loaded once and shared.

Sharing, and why it is safe:

- **Whisper**: one ``faster_whisper.WhisperModel`` (the batch backend's, built by the registry
  from ``MAIE_WHISPER_*``) serves every session. ``transcribe`` may be called from several
  threads at once: CTranslate2 queues the calls and releases the GIL while it computes.
- **Silero VAD**: one ONNX Runtime session; ``run`` is safe to call concurrently and every
  stream keeps its own LSTM state.
- **PocketSphinx**: a ``Decoder`` holds the state of the utterance it decodes, and its binding
  keeps the GIL while it decodes, so each session runs in a child process of a
  :class:`~maie.pipeline.streaming.process.ProcessPool` with a decoder of its own (the children
  and their decoders are kept for the next sessions).

Loading happens on the first session of a backend (or in :meth:`StreamingEngine.preload`) and
blocks for as long as the model takes to load: call it off the event loop.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import structlog

from maie.config.streaming import STREAMING_BACKEND_IDS
from maie.errors import BackendUnavailableError
from maie.pipeline.asr.registry import REGISTRY
from maie.pipeline.asr.whisper import WhisperBackend
from maie.pipeline.streaming.frames import frame_decoder
from maie.pipeline.streaming.options import StreamOptions
from maie.pipeline.streaming.process import ProcessPool, ProcessRecognizer
from maie.pipeline.streaming.recording import WavRecording
from maie.pipeline.streaming.session import StreamSession
from maie.pipeline.streaming.vad import SileroVad
from maie.pipeline.streaming.whisper import WhisperRecognizer

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from maie.config import Settings
    from maie.pipeline.asr.base import AsrBackend
    from maie.pipeline.streaming.options import StreamRequest
    from maie.pipeline.streaming.recognizer import Recognizer

__all__ = ["STREAMING_BACKENDS", "StreamingEngine"]

#: Backends that can transcribe live (those with the ``streaming`` capability).
STREAMING_BACKENDS = STREAMING_BACKEND_IDS

log = structlog.get_logger(__name__)


class StreamingEngine:
    """Opens live sessions on models loaded once per process. Thread-safe.

    Args:
        settings: The service settings (``MAIE_STREAM_*`` and the backends' own).
        factory: Builds the unloaded Whisper backend; the registry's by default, so live sessions
            run the same model with the same options as batch transcription. PocketSphinx's
            child processes build theirs from ``settings`` the way the registry does.
        options: Session limits and cadence; ``None`` takes them from ``settings``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        factory: Callable[[str], AsrBackend[Any]] | None = None,
        options: StreamOptions | None = None,
    ) -> None:
        self.options = options or StreamOptions.from_settings(settings)
        self._settings = settings
        self._factory = factory or (lambda backend_id: REGISTRY.create(backend_id, settings))
        self._lock = threading.Lock()
        self._whisper: WhisperBackend | None = None
        self._vad: SileroVad | None = None
        self._pocketsphinx: ProcessPool | None = None

    def open(self, request: StreamRequest, recording: Path) -> StreamSession:
        """Start a session; its audio is written to ``recording`` (a 16 kHz mono WAV) as it arrives.

        Raises:
            BackendUnavailableError: if the backend cannot stream.
            ModelLoadError: if its model cannot be loaded.
        """
        recognizer = self._recognizer(request)
        try:
            decoder = frame_decoder(request.encoding, request.sample_rate)
            wav = WavRecording(recording)
        except BaseException:
            recognizer.close()
            raise
        log.info(
            "stream.opened",
            backend=request.backend,
            encoding=str(request.encoding),
            sample_rate=request.sample_rate,
            language=request.language,
        )
        return StreamSession(
            request=request, options=self.options, decoder=decoder, recognizer=recognizer, recording=wav
        )

    def preload(self, *backends: str) -> None:
        """Load the models of ``backends`` now (for PocketSphinx: start one child and load its decoder)."""
        for backend in backends:
            if backend == "whisper":
                self._whisper_backend()
            elif backend == "pocketsphinx":
                self._pocketsphinx_pool().warm()
            else:
                raise _cannot_stream(backend)

    def close(self) -> None:
        """Unload every model (sessions still open keep what they hold until they close)."""
        with self._lock:
            whisper, self._whisper = self._whisper, None
            pool, self._pocketsphinx = self._pocketsphinx, None
            self._vad = None
        if whisper is not None:
            whisper.unload()
        if pool is not None:
            pool.close()

    def _recognizer(self, request: StreamRequest) -> Recognizer:
        if request.backend == "whisper":
            whisper = self._whisper_backend()
            with self._lock:
                vad = self._vad
            if vad is None:
                msg = "the streaming engine was closed"
                raise RuntimeError(msg)
            return WhisperRecognizer(whisper.model, whisper.options, request, self.options, vad)
        if request.backend == "pocketsphinx":
            return ProcessRecognizer(self._pocketsphinx_pool(), request, self.options)
        raise _cannot_stream(request.backend)

    def _whisper_backend(self) -> WhisperBackend:
        with self._lock:
            if self._whisper is None:
                backend = self._factory("whisper")
                if not isinstance(backend, WhisperBackend):
                    msg = f"the whisper factory built a {type(backend).__name__}"
                    raise TypeError(msg)
                backend.load()
                self._vad = self._vad or SileroVad()
                self._whisper = backend
            return self._whisper

    def _pocketsphinx_pool(self) -> ProcessPool:
        with self._lock:
            if self._pocketsphinx is None:
                self._pocketsphinx = ProcessPool(self._settings)
            return self._pocketsphinx


def _cannot_stream(backend: str) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"ASR backend {backend!r} cannot transcribe live; "
        f"streaming backends: {', '.join(STREAMING_BACKENDS)}",
        extra={"backend_id": backend, "streaming_backends": list(STREAMING_BACKENDS)},
    )
