"""What every ASR backend is: a stage from a normalised WAV to an :class:`~maie.schemas.AsrArtifact`.

A backend module (``whisper.py``, later ``chunkformer.py``) defines one :class:`AsrBackend`
subclass, its frozen options, and a :class:`BackendSpec` that the registry lists. Backend modules
import their heavy library (faster-whisper, torch, ...) inside ``load()``, never at module level,
so the API can describe backends without paying for them.
"""

from __future__ import annotations

import fnmatch
import importlib
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import msgspec

from maie.pipeline.stage import Stage
from maie.schemas import AsrArtifact, AsrVersion

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Sequence

    from maie.config import Settings

__all__ = [
    "AsrBackend",
    "AsrInput",
    "Availability",
    "BackendSpec",
    "Variant",
    "missing_library",
    "model_label",
]

OptionsT = TypeVar("OptionsT")


class AsrInput(msgspec.Struct, frozen=True, kw_only=True):
    """What the transcribe stage gets: the preprocessed audio and the request's overrides."""

    #: The 16 kHz mono WAV written by the preprocess stage.
    wav_path: Path
    #: ISO 639-1 code forced by the request; ``None`` falls back to config, then detection.
    language: str | None = None
    #: Word timestamps asked by the request; ``None`` falls back to config.
    word_timestamps: bool | None = None
    #: Duration measured by preprocessing, in seconds (used when the backend reports none).
    duration_s: float
    #: Words to favour, asked by the request; ``None`` falls back to config. Backends without the
    #: ``custom_vocabulary`` capability ignore it.
    hotwords: str | None = None
    #: Text priming the decoder, asked by the request; ``None`` falls back to config.
    initial_prompt: str | None = None
    #: Beam width asked by the request; ``None`` falls back to config.
    beam_size: int | None = None
    #: ``translate`` for a transcript in English (backends with the ``translate`` capability);
    #: ``None`` transcribes.
    task: str | None = None


class AsrBackend(Stage[OptionsT, AsrInput, AsrArtifact]):
    """An ASR stage. Subclasses set :attr:`backend_id` and implement the abstract methods."""

    #: Registry id of the backend, e.g. ``"whisper"``.
    backend_id: ClassVar[str]

    @abstractmethod
    def version_info(self) -> AsrVersion:
        """What the loaded model is: variant, path, checkpoint hash, device, default decoding.

        Raises:
            RuntimeError: if called before ``load()``; the checkpoint is only known once loaded.
        """

    @abstractmethod
    def cache_key(self) -> Hashable:
        """Identify the model this backend loads, so a worker can keep one resident and reuse it.

        Two backends with equal keys load the same weights the same way (path, device, compute
        type); decoding options that only affect ``process()`` are not part of the key.
        """

    @property
    @abstractmethod
    def loaded(self) -> bool:
        """Whether ``load()`` has run and ``unload()`` has not."""

    def process_batch(self, items: Sequence[AsrInput]) -> list[AsrArtifact | Exception]:
        """Transcribe several recordings with the loaded model, results in input order.

        The default decodes them one after another (the model is loaded once for all of them);
        backends that decode several files in one pass override it. A recording that fails gives
        its exception in its place, so one bad file never fails the others.
        """
        results: list[AsrArtifact | Exception] = []
        for item in items:
            try:
                results.append(self.process(item))
            except Exception as exc:  # noqa: BLE001 - handed back per item, raised by the caller
                results.append(exc)
        return results


class Availability(msgspec.Struct, frozen=True, kw_only=True):
    """What a backend's availability check found for the current settings."""

    #: The model the backend would load (a name or a path).
    variant: str
    #: The concrete device it would run on.
    device: str
    #: The concrete compute type it would use.
    compute_type: str
    #: Why it cannot run here; ``None`` when it can. Written for the operator: says what to do.
    reason: str | None = None
    #: Languages of the configured model when they depend on settings; ``None`` keeps the spec's.
    languages: tuple[str, ...] | None = None
    #: Bytes of the model's weights on disk; ``None`` when they are not on disk (yet).
    size_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Variant:
    """One model variant of a backend, which a request names with ``model=<name>``."""

    name: str
    #: The folder or model name it loads.
    model: str
    #: The settings that make the backend load this variant (its factory and probe take them);
    #: left out of the repr, which would otherwise carry every secret setting into a log line.
    settings: Settings = field(repr=False)


def model_label(backend_id: str, variant: str) -> str:
    """How a loaded model variant is named where workers report it: ``<backend>:<variant>``."""
    return f"{backend_id}:{variant}"


@dataclass(frozen=True, kw_only=True, slots=True)
class BackendSpec:
    """A registered backend: metadata for ``/v1/models`` plus how to build and check it."""

    #: Id used in requests and config (``MAIE_ASR_BACKEND``).
    backend_id: str
    #: Human-readable name.
    name: str
    #: One sentence for ``/v1/models``.
    description: str
    #: Among ``word_timestamps``, ``language_detection``, ``punctuation``, ``long_form``, ``vad``,
    #: ``streaming``, ``custom_vocabulary`` (hotwords / initial prompt), ``beam_size`` (per request),
    #: ``batch_decode`` (several recordings in one pass), ``translate`` (speech into English text).
    capabilities: tuple[str, ...]
    #: ISO 639-1 codes it transcribes; ``None`` when not restricted.
    languages: tuple[str, ...] | None
    #: Devices it runs on, e.g. ``("cuda", "cpu")``.
    hardware: tuple[str, ...]
    #: Build an (unloaded) backend from settings; must do no I/O.
    factory: Callable[[Settings], AsrBackend[Any]]
    #: Check whether the backend can run with these settings; may touch disk and network briefly.
    probe: Callable[[Settings], Availability]
    #: Model variants (case-insensitive glob patterns on the name or folder) that write punctuation
    #: and casing themselves; transcript enhancement is skipped for them.
    punctuated_variants: tuple[str, ...] = ()
    #: The configured model variants, default first (no I/O); ``None`` for a backend with one model.
    variants: Callable[[Settings], tuple[Variant, ...]] | None = None

    def has_native_punctuation(self, *names: str) -> bool:
        """Whether a model known by any of ``names`` (variant, path) punctuates its own output."""
        return any(
            fnmatch.fnmatchcase(name.lower(), pattern.lower())
            for name in names
            for pattern in self.punctuated_variants
        )


def missing_library(*modules: str, hint: str) -> str | None:
    """Import ``modules`` and say what is wrong if one fails.

    Importing (rather than ``find_spec``) is deliberate: a wheel whose native library cannot load
    is found but not usable.

    Args:
        modules: Module names to import.
        hint: What the operator should do, appended to the reason.

    Returns:
        ``None`` when every module imports, else a reason naming the first that does not.
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            return f"{name} cannot be imported ({exc}); {hint}"
    return None
