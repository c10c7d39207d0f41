"""Settings of speaker diarization: the backend, its fallbacks and each backend's knobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec

from maie.config.fields import DIARIZATION_BACKENDS, env_names

__all__ = ["DiarizationSettings"]


class DiarizationSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("DIARIZATION_")):
    """Who-spoke-when; see docs/diarization.md for each backend."""

    #: Backend used when a request asks for diarization without naming one.
    backend: str = "embedded"
    #: Comma-separated backends tried in order when the chosen one cannot run (e.g. ``embedded``);
    #: empty means none. Every fallback is logged and recorded in the version.
    fallback: str = ""
    #: ``embedded``: seconds of audio in each speaker-embedding window.
    window_s: Annotated[float, msgspec.Meta(ge=0.5, le=3.0)] = 1.0
    #: ``embedded``: seconds between the starts of consecutive windows.
    hop_s: Annotated[float, msgspec.Meta(ge=0.1, le=1.5)] = 0.4
    #: ``embedded``: speech probability above which a 32 ms frame counts as speech (Silero VAD).
    vad_threshold: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.5
    #: ``embedded``: a pause at least this long, in milliseconds, separates speech regions.
    vad_min_silence_ms: Annotated[int, msgspec.Meta(ge=50, le=5000)] = 300
    #: ``embedded``: two speakers with 6 s of speech or more whose mean voices are at least this
    #: similar (cosine) are merged into one when the count is automatic.
    merge_similarity: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.89
    #: ``embedded``: BLAS threads of the encoder (1 avoids oversubscribing a shared CPU).
    cpu_threads: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    #: ``embedded``: the GE2E checkpoint; unset means ``pretrained.pt`` of the resemblyzer wheel.
    encoder_weights: Path | None = None
    #: ``pyannote``: a local pipeline folder (with config.yaml) or a hub id such as
    #: ``pyannote/speaker-diarization-community-1``.
    pyannote_pipeline: str = "pyannote/speaker-diarization-community-1"
    #: ``pyannote``: hub token for gated pipelines; unset for a local folder.
    pyannote_token: str | None = None
    #: ``pyannote``: ``auto``, ``cuda`` or ``cpu``.
    pyannote_device: Literal["auto", "cuda", "cpu"] = "auto"
    #: ``channels``: Silero speech probability above which a 32 ms frame of a level-normalised
    #: channel is speech.
    channels_vad_threshold: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.25
    #: ``channels``: correlation with a louder channel from which a frame is that channel's
    #: crosstalk (bleed) rather than this channel's speaker.
    channels_bleed_coherence: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5

    def fallback_chain(self) -> tuple[str, ...]:
        """The fallback backend ids, in order, without blanks or repeats."""
        return tuple(dict.fromkeys(b.strip() for b in self.fallback.split(",") if b.strip()))

    def __post_init__(self) -> None:
        known = ", ".join(DIARIZATION_BACKENDS)
        if self.backend not in DIARIZATION_BACKENDS:
            msg = f"MAIE_DIARIZATION_BACKEND={self.backend!r} is not a diarization backend; known: {known}"
            raise ValueError(msg)
        if unknown := [b for b in self.fallback_chain() if b not in DIARIZATION_BACKENDS]:
            msg = f"MAIE_DIARIZATION_FALLBACK names unknown backend(s) {', '.join(unknown)}; known: {known}"
            raise ValueError(msg)
        if self.hop_s > self.window_s:
            msg = "MAIE_DIARIZATION_HOP_S must not exceed MAIE_DIARIZATION_WINDOW_S (audio would be skipped)"
            raise ValueError(msg)
