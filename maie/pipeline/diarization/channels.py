"""The ``channels`` diarizer: one speaker per channel, for stereo and multichannel call recordings.

Call centres and podcast rigs record each party on its own channel, so who spoke when is which
channel has speech when. Each channel of the original upload (the preprocessed WAV is mixed down
to mono) goes through the same Silero VAD as the ``embedded`` backend; a region quieter than
``MAIE_DIARIZATION_CHANNELS_SILENCE_DBFS`` is the other party bleeding in and is dropped. Both
parties may speak at once, so turns may overlap. No model weights, no extra.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import structlog

from maie.errors import UnprocessableError
from maie.pipeline.diarization.audio import SAMPLE_RATE, decode_channels, read_mono_wav
from maie.pipeline.diarization.base import (
    DiarizationBackend,
    DiarizationInput,
    DiarizerAvailability,
    DiarizerSpec,
)
from maie.pipeline.diarization.speakers import label, relabel
from maie.pipeline.diarization.vad import VadParams, speech_regions
from maie.schemas import DiarizationArtifact, DiarizationVersion, SpeakerTurn

if TYPE_CHECKING:
    from collections.abc import Hashable

    from maie.config import Settings

__all__ = ["SPEC", "ChannelsBackend", "ChannelsOptions", "MonoInputError"]

log = structlog.get_logger(__name__)


class MonoInputError(UnprocessableError):
    """Raised when per-channel diarization is asked for a recording with one channel."""

    code = "mono_input"


class ChannelsOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What shapes the ``channels`` output."""

    vad: VadParams = msgspec.field(default_factory=VadParams)
    #: A speech region whose RMS is below this (dBFS) is another channel's bleed.
    silence_dbfs: float = -45.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ChannelsOptions:
        """The options of ``MAIE_DIARIZATION_*``."""
        d = settings.diarization
        return cls(
            vad=VadParams(threshold=d.vad_threshold, min_silence_ms=d.vad_min_silence_ms),
            silence_dbfs=d.channels_silence_dbfs,
        )


def _dbfs(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    return 20 * np.log10(rms) if rms > 0 else -120.0


def _key(turn: SpeakerTurn) -> tuple[float, float, str]:
    return (turn.start, turn.end, turn.speaker)


class ChannelsBackend(DiarizationBackend[ChannelsOptions]):
    """Per-channel speech detection as a stage; nothing to load but the VAD."""

    backend_id = "channels"

    def __init__(self, options: ChannelsOptions) -> None:
        super().__init__(options)
        self._loaded = False

    @property
    def loaded(self) -> bool:
        """Whether ``load()`` has run."""
        return self._loaded

    def cache_key(self) -> Hashable:
        """One shared instance is enough: it holds no model."""
        return (self.backend_id,)

    def load(self) -> None:
        """Nothing to load: the VAD model is faster-whisper's, loaded on first use."""
        self._loaded = True

    def unload(self) -> None:
        """Nothing to release."""
        self._loaded = False

    def process(self, data: DiarizationInput) -> DiarizationArtifact:
        """One speaker per channel of ``data.source_path`` (the original, multichannel file).

        Raises:
            MonoInputError: if the recording has a single channel (with what to use instead).
            UnsupportedMediaError: if the source cannot be decoded.
        """
        started = time.perf_counter()
        source = data.source_path or data.wav_path
        channels = decode_channels(source) if data.source_path is not None else read_mono_wav(source)[None, :]
        if channels.shape[0] < 2:  # noqa: PLR2004 - one channel cannot separate anyone
            raise MonoInputError(
                "diarization_backend=channels needs a recording with one speaker per channel, and this "
                "one is mono: use diarization_backend=embedded (or pyannote) for mono recordings",
                extra={"channels": int(channels.shape[0])},
            )
        turns: list[SpeakerTurn] = []
        for index, samples in enumerate(channels):
            for region in speech_regions(samples, self.options.vad):
                a, b = int(region.start * SAMPLE_RATE), int(region.end * SAMPLE_RATE)
                if _dbfs(samples[a:b]) >= self.options.silence_dbfs:
                    turns.append(
                        SpeakerTurn(
                            start=round(region.start, 3), end=round(region.end, 3), speaker=f"CH{index}"
                        )
                    )
        ordered = relabel(turns)
        names = {t.speaker for t in ordered}
        # relabel() numbers speakers by their first turn in (start, end, old label) order.
        first: dict[str, SpeakerTurn] = {}
        for turn in sorted(turns, key=_key):
            first.setdefault(turn.speaker, turn)
        channel_of = {label(n): int(t.speaker[2:]) for n, t in enumerate(sorted(first.values(), key=_key))}
        duration = channels.shape[1] / SAMPLE_RATE
        elapsed = time.perf_counter() - started
        log.info(
            "diarization.finished",
            backend=self.backend_id,
            channels=int(channels.shape[0]),
            speakers=len(names),
        )
        params: dict[str, Any] = {
            **data.speakers.as_params(),
            **msgspec.to_builtins(self.options),
            "channels": int(channels.shape[0]),
            "speaker_channels": channel_of,
        }
        warnings = []
        if data.speakers.num_speakers is not None and data.speakers.num_speakers != len(names):
            warnings.append(
                f"num_speakers={data.speakers.num_speakers} asked but the audio supports {len(names)}: "
                "the channels backend finds one speaker per channel with speech"
            )
        return DiarizationArtifact(
            turns=ordered,
            num_speakers=len(names),
            duration_s=duration,
            processing_time_s=elapsed,
            version=DiarizationVersion(backend=self.backend_id, model="none", params=params),
            warnings=warnings,
        )


#: Registry entry of this backend.
SPEC = DiarizerSpec(
    backend_id="channels",
    name="Channels (one speaker per channel)",
    description=(
        "For stereo and multichannel call recordings: each channel is one speaker, speech found "
        "by the Silero VAD per channel. Needs the original multichannel upload; refuses mono."
    ),
    capabilities=("overlap", "multichannel_input"),
    hardware=("cpu",),
    factory=lambda settings: ChannelsBackend(ChannelsOptions.from_settings(settings)),
    probe=lambda _settings: DiarizerAvailability(variant="none", compute_type="native"),
)
