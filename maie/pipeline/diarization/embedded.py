"""The ``embedded`` diarizer: Silero VAD, GE2E speaker embeddings, agglomerative clustering.

Speech regions come from the Silero model that faster-whisper ships; each region is covered by
overlapping windows whose voices the GE2E encoder of the ``resemblyzer`` wheel embeds (run in
NumPy by :mod:`~maie.pipeline.diarization.ge2e`, so no torch); the windows are clustered with an
automatic or requested speaker count (:mod:`~maie.pipeline.diarization.clustering`) and voted
back onto a 10 ms grid, each vote weighted by how close the window is to its speaker's mean
voice (:mod:`~maie.pipeline.diarization.frames`). Needs the extra ``diarization`` (the
resemblyzer wheel, for its weights only, and scikit-learn).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import structlog

from maie.errors import ModelLoadError
from maie.pipeline.asr.checkpoint import CACHE_FILE_NAME, file_sha256
from maie.pipeline.diarization.audio import SAMPLE_RATE, read_mono_wav
from maie.pipeline.diarization.base import (
    DiarizationBackend,
    DiarizationInput,
    DiarizerAvailability,
    DiarizerSpec,
)
from maie.pipeline.diarization.clustering import ClusterParams, cluster
from maie.pipeline.diarization.frames import frame_labels, plan_windows, turns_from_frames, vote_weights
from maie.pipeline.diarization.speakers import relabel
from maie.pipeline.diarization.torch_file import CheckpointError
from maie.pipeline.diarization.vad import VadParams, speech_regions
from maie.schemas import DiarizationArtifact, DiarizationVersion

if TYPE_CHECKING:
    from collections.abc import Hashable

    from maie.config import Settings
    from maie.pipeline.diarization.ge2e import Ge2eEncoder

__all__ = [
    "INSTALL_HINT",
    "SPEC",
    "EmbeddedBackend",
    "EmbeddedOptions",
    "check_availability",
    "shipped_weights",
]

#: What to tell an operator who has not installed the extra.
INSTALL_HINT = "install the extra: uv sync --extra diarization (or pip install 'maie[diarization]')"
MODEL_NAME = "resemblyzer-ge2e"

log = structlog.get_logger(__name__)


def shipped_weights() -> Path | None:
    """``pretrained.pt`` of the installed resemblyzer wheel, found without importing the package.

    Importing resemblyzer would import torch and librosa, which MAIE does not install with it.
    """
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    return path if path.is_file() else None


class EmbeddedOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Everything that shapes the ``embedded`` output, all concrete."""

    #: The GE2E checkpoint; ``None`` means the resemblyzer wheel's.
    weights: Path | None = None
    window_s: float = 1.0
    hop_s: float = 0.4
    #: Shortest window: a region shorter than this is embedded with some context around it.
    min_window_s: float = 0.5
    #: Shorter runs of one speaker inside a region are absorbed by their neighbours.
    min_turn_s: float = 0.3
    vad: VadParams = msgspec.field(default_factory=VadParams)
    clustering: ClusterParams = msgspec.field(default_factory=ClusterParams)
    cpu_threads: int = 1
    #: Where the checkpoint-hash cache lives; ``None`` keeps it in memory.
    cache_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedOptions:
        """The options of ``MAIE_DIARIZATION_*``."""
        d = settings.diarization
        return cls(
            weights=d.encoder_weights,
            window_s=d.window_s,
            hop_s=d.hop_s,
            vad=VadParams(threshold=d.vad_threshold, min_silence_ms=d.vad_min_silence_ms),
            clustering=ClusterParams(merge_similarity=d.merge_similarity),
            cpu_threads=d.cpu_threads,
            cache_dir=settings.storage.data_dir / "cache",
        )

    def resolved_weights(self) -> Path | None:
        """The checkpoint that would be loaded, or ``None`` when none is installed."""
        return self.weights if self.weights is not None else shipped_weights()

    def problem(self) -> str | None:
        """Why the backend cannot run with these options, or ``None``."""
        if importlib.util.find_spec("sklearn") is None:
            return f"scikit-learn is not installed; {INSTALL_HINT}"
        weights = self.resolved_weights()
        if weights is None:
            return f"the resemblyzer wheel (GE2E weights) is not installed; {INSTALL_HINT}"
        if not weights.is_file():
            return f"MAIE_DIARIZATION_ENCODER_WEIGHTS={str(weights)!r}: file does not exist"
        return None


class EmbeddedBackend(DiarizationBackend[EmbeddedOptions]):
    """The embedded diarizer as a stage: ``load()`` the encoder, ``process()`` WAVs, ``unload()``."""

    backend_id = "embedded"

    def __init__(self, options: EmbeddedOptions) -> None:
        super().__init__(options)
        self._encoder: Ge2eEncoder | None = None
        self._checkpoint = ""
        self._weights: Path | None = None

    @property
    def loaded(self) -> bool:
        """Whether the encoder is in memory."""
        return self._encoder is not None

    def cache_key(self) -> Hashable:
        """The backend id and the weights (every other option only shapes ``process``)."""
        return (self.backend_id, str(self.options.resolved_weights()))

    def load(self) -> None:
        """Read the GE2E weights and hash them.

        Raises:
            ModelLoadError: when the extra is missing or the checkpoint is unreadable.
        """
        if self._encoder is not None:
            return
        if problem := self.options.problem():
            raise ModelLoadError(problem)
        # The clustering's scikit-learn is imported here, not on the first request (seconds).
        import sklearn.cluster  # noqa: F401, PLC0415

        from maie.pipeline.diarization.ge2e import Ge2eEncoder  # noqa: PLC0415 - reads 17 MB

        weights = self.options.resolved_weights()
        assert weights is not None  # noqa: S101 - problem() said it exists
        started = time.perf_counter()
        try:
            encoder = Ge2eEncoder(weights)
            cache = None if self.options.cache_dir is None else self.options.cache_dir / CACHE_FILE_NAME
            checkpoint = file_sha256(weights, cache_file=cache)
        except (OSError, CheckpointError) as exc:
            raise ModelLoadError(f"cannot load the GE2E encoder {str(weights)!r}: {exc}") from exc
        self._encoder, self._checkpoint, self._weights = encoder, checkpoint, weights
        log.info(
            "diarization.loaded",
            backend=self.backend_id,
            weights=str(weights),
            load_s=round(time.perf_counter() - started, 3),
        )

    def unload(self) -> None:
        """Drop the encoder. Safe to call when nothing is loaded."""
        if self._encoder is not None:
            self._encoder = None
            log.info("diarization.unloaded", backend=self.backend_id)

    def process(self, data: DiarizationInput) -> DiarizationArtifact:
        """Diarize ``data.wav_path``.

        Raises:
            RuntimeError: if called before ``load()``.
            PermanentError: if the WAV is missing or not 16 kHz mono 16-bit.
        """
        if self._encoder is None:
            msg = "EmbeddedBackend.process() called before load()"
            raise RuntimeError(msg)
        opts = self.options
        started = time.perf_counter()
        wav = read_mono_wav(data.wav_path)
        duration = len(wav) / SAMPLE_RATE
        regions = speech_regions(wav, opts.vad)
        windows = plan_windows(regions, opts.window_s, opts.hop_s, opts.min_window_s)
        embeddings = self._embed(wav, windows)
        grouping = cluster(embeddings, data.speakers, opts.clustering, _new_speech_s(windows))
        weights = vote_weights(embeddings, grouping.labels)
        frames = frame_labels(windows, grouping.labels, int(np.ceil(duration * 100)) + 1, regions, weights)
        turns = relabel(turns_from_frames(frames, regions, opts.min_turn_s))
        found = len({t.speaker for t in turns})
        warnings = _count_warnings(data, found, grouping.estimated)
        elapsed = time.perf_counter() - started
        log.info(
            "diarization.finished",
            backend=self.backend_id,
            duration_s=round(duration, 3),
            speakers=found,
            windows=len(windows),
            rtf=round(elapsed / duration, 4) if duration > 0 else None,
        )
        return DiarizationArtifact(
            turns=turns,
            num_speakers=found,
            duration_s=duration,
            processing_time_s=elapsed,
            version=self._version(data),
            warnings=warnings,
        )

    def _embed(self, wav: np.ndarray, windows: list[tuple[int, int]]) -> np.ndarray:
        """One embedding per window, windows of equal length batched together."""
        from threadpoolctl import threadpool_limits  # noqa: PLC0415 - scikit-learn's dependency

        from maie.pipeline.diarization.ge2e import mel_spectrogram, normalize_volume  # noqa: PLC0415

        assert self._encoder is not None  # noqa: S101 - checked by process()
        embeddings = np.zeros((len(windows), 256), np.float32)
        if not windows:
            return embeddings
        mel = mel_spectrogram(normalize_volume(wav))
        last = max(first + length for first, length in windows)
        if last > len(mel):  # a short region's context window may reach past the end
            mel = np.pad(mel, ((0, last - len(mel)), (0, 0)))
        by_length: dict[int, list[int]] = {}
        for index, (_, length) in enumerate(windows):
            by_length.setdefault(length, []).append(index)
        with threadpool_limits(limits=self.options.cpu_threads, user_api="blas"):
            for length, indices in by_length.items():
                batch = np.stack([mel[windows[i][0] : windows[i][0] + length] for i in indices])
                embeddings[indices] = self._encoder.embed(batch)
        return embeddings

    def _version(self, data: DiarizationInput) -> DiarizationVersion:
        params: dict[str, Any] = {
            **data.speakers.as_params(),
            **msgspec.to_builtins(msgspec.structs.replace(self.options, weights=None, cache_dir=None)),
        }
        params.pop("weights", None)
        params.pop("cache_dir", None)
        return DiarizationVersion(
            backend=self.backend_id,
            model=MODEL_NAME,
            model_path=str(self._weights or ""),
            checkpoint_hash=self._checkpoint,
            device="cpu",
            params=params,
        )


def _new_speech_s(windows: list[tuple[int, int]]) -> np.ndarray:
    """Seconds of speech each window covers that the windows before it did not."""
    reach, added = 0, np.zeros(len(windows))
    for index, (first, length) in enumerate(windows):
        added[index] = max(0, first + length - max(first, reach)) / 100
        reach = max(reach, first + length)
    return added


def _count_warnings(data: DiarizationInput, found: int, estimated: int) -> list[str]:
    asked = data.speakers
    warnings: list[str] = []
    if asked.num_speakers is not None and found < asked.num_speakers:
        warnings.append(
            f"num_speakers={asked.num_speakers} asked but the audio supports {found}: "
            f"{found} speaker(s) returned (the voices found suggest {estimated})"
        )
    elif asked.num_speakers is not None and estimated < asked.num_speakers:
        warnings.append(
            f"num_speakers={asked.num_speakers} asked but the audio supports {estimated}: "
            f"{asked.num_speakers} speakers returned as asked, some may be one voice split"
        )
    if asked.min_speakers is not None and found < asked.min_speakers:
        warnings.append(f"min_speakers={asked.min_speakers} asked but the audio supports {found}")
    return warnings


def check_availability(settings: Settings) -> DiarizerAvailability:
    """Whether the embedded diarizer can run: extra installed, weights readable."""
    opts = EmbeddedOptions.from_settings(settings)
    # The wheel's own weights are the model by name (their path says only where the venv is);
    # weights the operator chose are named by their path.
    variant = str(opts.weights) if opts.weights is not None else MODEL_NAME
    return DiarizerAvailability(variant=variant, reason=opts.problem())


#: Registry entry of this backend.
SPEC = DiarizerSpec(
    backend_id="embedded",
    name="Embedded (Silero VAD + GE2E + agglomerative clustering)",
    description=(
        "CPU diarizer with shipped weights: Silero speech regions, resemblyzer's GE2E voice "
        "embeddings run in NumPy, agglomerative clustering with an automatic speaker count."
    ),
    capabilities=("speaker_count", "auto_speaker_count"),
    hardware=("cpu",),
    factory=lambda settings: EmbeddedBackend(EmbeddedOptions.from_settings(settings)),
    probe=check_availability,
)
