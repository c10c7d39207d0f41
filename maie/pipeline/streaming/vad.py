"""Online voice activity: the Silero model faster-whisper ships, run as audio arrives.

faster-whisper runs Silero over a whole recording at once (``faster_whisper.vad``): 512-sample
windows, each prefixed with the last 64 samples of the window before, and the LSTM state carried
from window to window. :class:`VadStream` does the same a few windows at a time, keeping the state
and the context between calls, so the probabilities are the ones batch VAD computes (a test
checks it). :class:`SpeechGate` turns them into speech starts and ends with faster-whisper's
rules: speech starts at a window at or above ``threshold`` and ends after ``min_silence`` of
windows below ``threshold - 0.15``.

One :class:`SileroVad` (an ONNX Runtime session) serves every stream of a process: ONNX Runtime
allows concurrent ``run`` calls on one session, and all per-stream state lives in the streams.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from maie.errors import ModelLoadError
from maie.pipeline.streaming.options import SAMPLE_RATE

__all__ = ["WINDOW", "SileroVad", "SpeechGate", "VadStream"]

#: Samples per Silero decision at 16 kHz (32 ms).
WINDOW = 512
#: Samples of the previous window each window is given as context.
_CONTEXT = 64
#: Width of Silero's LSTM state.
_STATE = 128


def _model_path() -> Path:
    """The Silero ONNX file in faster-whisper's assets (its name carries the model version)."""
    from faster_whisper.utils import get_assets_path  # noqa: PLC0415 - heavy, only when loading

    candidates = sorted(Path(get_assets_path()).glob("silero_vad*.onnx"))
    if not candidates:
        raise ModelLoadError(
            f"faster-whisper's Silero VAD model is missing from {get_assets_path()}; "
            "reinstall the environment (uv sync)"
        )
    return candidates[-1]


class SileroVad:
    """The Silero VAD model, loaded once per process and shared by every stream (thread-safe)."""

    def __init__(self, path: Path | None = None) -> None:
        import onnxruntime  # noqa: PLC0415 - heavy, only when loading

        options = onnxruntime.SessionOptions()
        # One thread each, as faster-whisper does: a 32 ms window is far too small to split, and
        # many sessions run side by side.
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.enable_cpu_mem_arena = False
        options.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(path or _model_path()), providers=["CPUExecutionProvider"], sess_options=options
        )

    def run(
        self, windows: np.ndarray, h: np.ndarray, c: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Speech probabilities of ``windows`` (n rows of 64 context + 512 samples) and the next state."""
        probs, h, c = self._session.run(None, {"input": windows, "h": h, "c": c})
        return np.asarray(probs, dtype=np.float32).reshape(-1), h, c

    def stream(self) -> VadStream:
        """A new stream with fresh state."""
        return VadStream(self)


class VadStream:
    """One session's Silero state: samples in, one speech probability per 512 samples out."""

    def __init__(self, model: SileroVad) -> None:
        self._model = model
        self._h = np.zeros((1, 1, _STATE), dtype=np.float32)
        self._c = np.zeros((1, 1, _STATE), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities of the windows ``samples`` completes (float32 in [-1, 1], 16 kHz)."""
        audio = np.concatenate((self._pending, samples)) if self._pending.size else samples
        count = audio.size // WINDOW
        self._pending = audio[count * WINDOW :].copy()
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        windows = audio[: count * WINDOW].reshape(count, WINDOW).astype(np.float32, copy=False)
        contexts = np.concatenate((self._context[None, :], windows[:-1, -_CONTEXT:]))
        self._context = windows[-1, -_CONTEXT:].copy()
        batch = np.concatenate((contexts, windows), axis=1)
        probs, self._h, self._c = self._model.run(batch, self._h, self._c)
        return probs


class SpeechGate:
    """Speech starts and ends from per-window probabilities, decided online.

    Args:
        threshold: Probability at or above which a window is speech.
        min_silence_ms: Silence (windows below ``threshold - 0.15``) that ends speech.
    """

    def __init__(self, *, threshold: float, min_silence_ms: int) -> None:
        self.threshold = threshold
        self.neg_threshold = max(threshold - 0.15, 0.01)
        self._min_silence = SAMPLE_RATE * min_silence_ms // 1000
        self.in_speech = False
        #: Sample where the current (or last) speech started.
        self.start = 0
        #: Sample where the last speech ended (the start of the silence that ended it).
        self.end = 0
        self._silence_from: int | None = None

    def update(self, prob: float, at: int) -> Literal["start", "end"] | None:
        """Take the probability of the window starting at sample ``at``; say if speech began or ended."""
        if prob >= self.threshold:
            self._silence_from = None
            if not self.in_speech:
                self.in_speech, self.start = True, at
                return "start"
            return None
        if not self.in_speech or prob >= self.neg_threshold:
            return None
        if self._silence_from is None:
            self._silence_from = at
        if at + WINDOW - self._silence_from >= self._min_silence:
            self.in_speech, self.end, self._silence_from = False, self._silence_from, None
            return "end"
        return None
