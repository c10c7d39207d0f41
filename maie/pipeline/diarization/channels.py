"""The ``channels`` diarizer: one speaker per channel, for stereo and multichannel call recordings.

Call centres and podcast rigs record each party on its own channel, so who spoke when is which
channel has speech when. Each channel of the original upload (the preprocessed WAV is mixed down
to mono) is brought to a common level, so a quietly recorded party still counts, and goes
through the same Silero VAD as the ``embedded`` backend; frames that are a louder channel's
speech leaking in (crosstalk) are removed by correlation, not by an absolute level
(:mod:`~maie.pipeline.diarization.crosstalk`). Both parties may speak at once, so turns may
overlap. No model weights, no extra.
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
from maie.pipeline.diarization.crosstalk import FRAME_S, bleed_frames, frame_db, level_gain
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

    #: Silero on the level-normalised channel; its threshold sits below the ``embedded`` one
    #: because a channel holds one party and the bleed check removes the other.
    vad: VadParams = msgspec.field(default_factory=lambda: VadParams(threshold=0.25))
    #: Level each channel's loud frames are brought to before the VAD, in dBFS.
    level_dbfs: float = -20.0
    #: Correlation with a louder channel from which a frame is that channel's bleed.
    bleed_coherence: float = 0.5
    #: How much louder (dB) the other channel must be for a correlated frame to be its bleed.
    bleed_louder_db: float = 3.0
    #: Speech runs shorter than this after bleed removal are dropped, in seconds.
    min_turn_s: float = 0.2

    @classmethod
    def from_settings(cls, settings: Settings) -> ChannelsOptions:
        """The options of ``MAIE_DIARIZATION_*``."""
        d = settings.diarization
        return cls(
            vad=VadParams(threshold=d.channels_vad_threshold, min_silence_ms=d.vad_min_silence_ms),
            bleed_coherence=d.channels_bleed_coherence,
        )


def _runs(active: np.ndarray, bridge_s: float, least_s: float) -> list[tuple[float, float]]:
    """Spans of active frames, gaps under ``bridge_s`` closed, spans under ``least_s`` dropped."""
    spans: list[tuple[float, float]] = []
    for index in np.flatnonzero(active):
        start, end = index * FRAME_S, (index + 1) * FRAME_S
        if spans and start - spans[-1][1] < bridge_s:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return [(a, b) for a, b in spans if b - a >= least_s]


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
        turns = self._turns(channels)
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

    def _turns(self, channels: np.ndarray) -> list[SpeakerTurn]:
        """Speech of every channel, level-normalised, bleed removed; labels ``CH<index>``."""
        opts = self.options
        loudness = np.stack([frame_db(samples) for samples in channels])
        frames = loudness.shape[1]
        turns: list[SpeakerTurn] = []
        for index, samples in enumerate(channels):
            gain = level_gain(loudness[index], opts.level_dbfs)
            speech = np.zeros(frames, bool)
            for region in speech_regions(np.clip(samples * gain, -1.0, 1.0), opts.vad):
                speech[int(region.start / FRAME_S) : int(np.ceil(region.end / FRAME_S))] = True
            speech &= ~bleed_frames(channels, index, loudness, opts.bleed_coherence, opts.bleed_louder_db)
            bridge = opts.vad.min_silence_ms / 1000
            turns += [
                # Plain floats: the frame times are NumPy scalars, which the store cannot encode.
                SpeakerTurn(
                    start=round(float(a), 3),
                    end=round(float(min(b, channels.shape[1] / SAMPLE_RATE)), 3),
                    speaker=f"CH{index}",
                )
                for a, b in _runs(speech, bridge, opts.min_turn_s)
            ]
        return turns


#: Registry entry of this backend.
SPEC = DiarizerSpec(
    backend_id="channels",
    name="Channels (one speaker per channel)",
    description=(
        "For stereo and multichannel call recordings: each channel is one speaker, speech found "
        "by the Silero VAD per level-normalised channel, crosstalk removed by correlation. Needs "
        "the original multichannel upload; refuses mono."
    ),
    capabilities=("overlap", "multichannel_input"),
    hardware=("cpu",),
    factory=lambda settings: ChannelsBackend(ChannelsOptions.from_settings(settings)),
    probe=lambda _settings: DiarizerAvailability(variant="none", compute_type="native"),
)
