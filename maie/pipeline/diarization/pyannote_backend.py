"""The ``pyannote`` diarizer: a pyannote.audio 4 pipeline from a local folder or the model hub.

pyannote's pipelines (``pyannote/speaker-diarization-community-1``, ``-3.1``) are the reference
open diarizers: a neural segmentation model that handles overlapping speech, speaker embeddings
and VBx / agglomerative clustering. Their weights are gated: accept the conditions on the hub
and set ``MAIE_DIARIZATION_PYANNOTE_TOKEN``, or download once and point
``MAIE_DIARIZATION_PYANNOTE_PIPELINE`` at the folder (docs/diarization.md). The library (with
torch) is installed by the operator, not by MAIE's extras: ``pip install pyannote.audio``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from maie.errors import ModelLoadError
from maie.pipeline.asr.base import missing_library
from maie.pipeline.asr.checkpoint import files_hash
from maie.pipeline.diarization.audio import SAMPLE_RATE, read_mono_wav
from maie.pipeline.diarization.base import (
    DiarizationBackend,
    DiarizationInput,
    DiarizerAvailability,
    DiarizerSpec,
)
from maie.pipeline.diarization.speakers import relabel
from maie.schemas import DiarizationArtifact, DiarizationVersion, SpeakerTurn

if TYPE_CHECKING:
    from collections.abc import Hashable

    from maie.config import Settings

__all__ = ["INSTALL_HINT", "SPEC", "PyannoteBackend", "PyannoteOptions", "turns_of"]

INSTALL_HINT = (
    "install pyannote.audio 4 beside MAIE (pip install 'pyannote.audio>=4,<5', with CPU torch: "
    "pip install torch==2.13.0 first) and give it weights (docs/diarization.md)"
)
#: Files of a pipeline folder whose bytes decide the output, hashed into the version.
_WEIGHT_SUFFIXES = (".bin", ".ckpt", ".safetensors", ".pt", ".onnx", ".yaml", ".npz")

log = structlog.get_logger(__name__)


class PyannoteOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Where the pipeline comes from and where it runs."""

    #: A local folder with ``config.yaml`` or a hub id.
    pipeline: str
    token: str | None = None
    device: str = "auto"
    cache_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PyannoteOptions:
        """The options of ``MAIE_DIARIZATION_PYANNOTE_*``."""
        d = settings.diarization
        return cls(
            pipeline=d.pyannote_pipeline,
            token=d.pyannote_token,
            device=d.pyannote_device,
            cache_dir=settings.storage.data_dir / "cache",
        )

    def local_folder(self) -> Path | None:
        """The pipeline folder when ``pipeline`` names one on disk."""
        path = Path(self.pipeline).expanduser()
        return path if path.is_dir() else None

    def problem(self) -> str | None:
        """Why this pipeline cannot be loaded here, or ``None`` (a hub id is checked at load)."""
        if reason := missing_library("torch", "pyannote.audio", hint=INSTALL_HINT):
            return reason
        folder = self.local_folder()
        if folder is not None and not (folder / "config.yaml").is_file():
            return f"MAIE_DIARIZATION_PYANNOTE_PIPELINE={self.pipeline!r} has no config.yaml (not a pipeline)"
        if (
            folder is None
            and "/" in self.pipeline
            and self.token is None
            and not Path(self.pipeline).is_absolute()
        ):
            return (
                f"{self.pipeline!r} is a gated hub pipeline: set MAIE_DIARIZATION_PYANNOTE_TOKEN, or "
                "download it and set MAIE_DIARIZATION_PYANNOTE_PIPELINE to the folder"
            )
        if folder is None and Path(self.pipeline).is_absolute():
            return f"MAIE_DIARIZATION_PYANNOTE_PIPELINE={self.pipeline!r}: folder does not exist"
        return None


def turns_of(output: Any) -> list[SpeakerTurn]:  # noqa: ANN401 - pyannote's own types
    """Turns from a pipeline's output: 4.x's ``DiarizeOutput`` or 3.x's ``Annotation``."""
    annotation = getattr(output, "speaker_diarization", output)
    return [
        SpeakerTurn(start=round(float(seg.start), 3), end=round(float(seg.end), 3), speaker=str(speaker))
        for seg, _track, speaker in annotation.itertracks(yield_label=True)
    ]


class PyannoteBackend(DiarizationBackend[PyannoteOptions]):
    """A pyannote.audio pipeline as a stage."""

    backend_id = "pyannote"

    def __init__(self, options: PyannoteOptions) -> None:
        super().__init__(options)
        self._pipeline: Any = None
        self._device = "cpu"
        self._checkpoint = ""

    @property
    def loaded(self) -> bool:
        """Whether the pipeline is in memory."""
        return self._pipeline is not None

    def cache_key(self) -> Hashable:
        """The backend, the pipeline and the device."""
        return (self.backend_id, self.options.pipeline, self.options.device)

    def load(self) -> None:
        """Instantiate the pipeline (``Pipeline.from_pretrained``) and move it to the device.

        Raises:
            ModelLoadError: when the library, the weights or the device are missing.
        """
        if self._pipeline is not None:
            return
        if problem := self.options.problem():
            raise ModelLoadError(problem)
        import torch  # noqa: PLC0415 - optional, installed by the operator
        from pyannote.audio import Pipeline  # noqa: PLC0415

        opts, started = self.options, time.perf_counter()
        folder = opts.local_folder()
        try:
            pipeline = Pipeline.from_pretrained(str(folder or opts.pipeline), token=opts.token)
        except Exception as exc:
            raise ModelLoadError(f"cannot load the pyannote pipeline {opts.pipeline!r}: {exc}") from exc
        if pipeline is None:  # from_pretrained returns None when the gated download is refused
            raise ModelLoadError(
                f"the pyannote pipeline {opts.pipeline!r} could not be fetched: check the token"
            )
        device = "cuda" if opts.device == "auto" and torch.cuda.is_available() else opts.device
        device = "cpu" if device == "auto" else device
        pipeline.to(torch.device(device))
        if folder is not None:
            files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
            self._checkpoint = files_hash(files, cache_dir=opts.cache_dir) if files else ""
        self._pipeline, self._device = pipeline, device
        log.info(
            "diarization.loaded",
            backend=self.backend_id,
            pipeline=opts.pipeline,
            device=device,
            load_s=round(time.perf_counter() - started, 3),
        )

    def unload(self) -> None:
        """Drop the pipeline (and the CUDA cache where it ran on a GPU)."""
        if self._pipeline is None:
            return
        self._pipeline = None
        if self._device.startswith("cuda"):
            import torch  # noqa: PLC0415

            torch.cuda.empty_cache()

    def process(self, data: DiarizationInput) -> DiarizationArtifact:
        """Run the pipeline on the preprocessed WAV, with the request's speaker counts.

        Raises:
            RuntimeError: if called before ``load()``.
            PermanentError: if the WAV is missing or not 16 kHz mono 16-bit.
        """
        if self._pipeline is None:
            msg = "PyannoteBackend.process() called before load()"
            raise RuntimeError(msg)
        import torch  # noqa: PLC0415

        started = time.perf_counter()
        wav = read_mono_wav(data.wav_path)
        counts = {k: v for k, v in data.speakers.as_params().items() if v is not None}
        # An in-memory waveform: pyannote then needs no audio decoder of its own.
        output = self._pipeline(
            {"waveform": torch.from_numpy(wav)[None, :], "sample_rate": SAMPLE_RATE}, **counts
        )
        turns = relabel(turns_of(output))
        found = len({t.speaker for t in turns})
        warnings = []
        if data.speakers.num_speakers is not None and found < data.speakers.num_speakers:
            warnings.append(f"num_speakers={data.speakers.num_speakers} asked but the audio supports {found}")
        return DiarizationArtifact(
            turns=turns,
            num_speakers=found,
            duration_s=len(wav) / SAMPLE_RATE,
            processing_time_s=time.perf_counter() - started,
            version=DiarizationVersion(
                backend=self.backend_id,
                model=self.options.pipeline,
                model_path=str(self.options.local_folder() or ""),
                checkpoint_hash=self._checkpoint,
                device=self._device,
                params={**data.speakers.as_params(), "pipeline": self.options.pipeline},
            ),
            warnings=warnings,
        )


def check_availability(settings: Settings) -> DiarizerAvailability:
    """Whether pyannote can run: library importable, a pipeline folder or a token."""
    opts = PyannoteOptions.from_settings(settings)
    device = "cpu" if opts.device == "auto" else opts.device
    return DiarizerAvailability(variant=opts.pipeline, device=device, reason=opts.problem())


#: Registry entry of this backend.
SPEC = DiarizerSpec(
    backend_id="pyannote",
    name="pyannote.audio 4",
    description=(
        "pyannote's neural pipeline (segmentation with overlap, embeddings, clustering): the most "
        "accurate, needs torch and gated weights from a local folder or a hub token."
    ),
    capabilities=("speaker_count", "auto_speaker_count", "overlap"),
    hardware=("cuda", "cpu"),
    factory=lambda settings: PyannoteBackend(PyannoteOptions.from_settings(settings)),
    probe=check_availability,
)
