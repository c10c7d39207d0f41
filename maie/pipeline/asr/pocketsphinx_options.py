"""Options of the PocketSphinx backend: model files (the wheel's own by default) and segmentation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from maie.errors import ModelLoadError
from maie.pipeline.asr.base import missing_library

if TYPE_CHECKING:
    from maie.config import Settings

__all__ = ["ACOUSTIC_MODEL_FILES", "COMPUTE_TYPE", "INSTALL_HINT", "PocketsphinxOptions"]

#: Files of a PocketSphinx acoustic model that determine its output (hashed into the version).
ACOUSTIC_MODEL_FILES = ("mdef", "means", "variances", "mixture_weights", "transition_matrices", "feat.params")
#: What to tell an operator who has not installed the extra.
INSTALL_HINT = "install the extra: uv sync --extra pocketsphinx (or pip install 'maie[pocketsphinx]')"
#: The engine has no compute types; this is what /v1/models and versions show.
COMPUTE_TYPE = "native"


class PocketsphinxOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Model files and segmentation of the PocketSphinx backend, all concrete."""

    #: Acoustic model folder (``-hmm``).
    model: Path
    #: Language model file (``-lm``).
    lm: Path
    #: Pronunciation dictionary (``-dict``).
    dictionary: Path
    #: ISO 639-1 code of the model's language.
    language: str = "en"
    #: Voice activity detector aggressiveness, 0-3.
    vad_mode: int = 0
    #: Seconds each speech/non-speech decision looks at.
    vad_window_s: float = 0.3
    #: Share of the window that must agree to switch between speech and silence.
    vad_ratio: float = 0.9
    #: Where the checkpoint-hash cache lives; ``None`` keeps it in memory.
    cache_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PocketsphinxOptions:
        """Resolve the settings; unset model files become the ones shipped in the wheel.

        Raises:
            ModelLoadError: if pocketsphinx is not installed and a model file is left unset.
        """
        ps = settings.pocketsphinx
        shipped = _shipped_model_dir() if None in (ps.model, ps.lm, ps.dictionary) else None

        def pick(value: Path | None, name: str) -> Path:
            if value is not None:
                return value
            if shipped is None:
                raise ModelLoadError(missing_library("pocketsphinx", hint=INSTALL_HINT) or "no model")
            return shipped / name

        return cls(
            model=pick(ps.model, "en-us"),
            lm=pick(ps.lm, "en-us.lm.bin"),
            dictionary=pick(ps.dictionary, "cmudict-en-us.dict"),
            language=ps.language,
            vad_mode=ps.vad_mode,
            vad_window_s=ps.vad_window_s,
            vad_ratio=ps.vad_ratio,
            cache_dir=settings.storage.data_dir / "cache",
        )

    def model_files(self) -> list[Path]:
        """Every file that shapes the output, in a stable order: acoustic model, LM, dictionary."""
        acoustic = [self.model / name for name in ACOUSTIC_MODEL_FILES if (self.model / name).is_file()]
        return [*acoustic, self.lm, self.dictionary]

    def problem(self) -> str | None:
        """Why these files cannot be loaded, or ``None``."""
        if not (self.model / "mdef").is_file():
            return (
                f"MAIE_POCKETSPHINX_MODEL={str(self.model)!r} is not a PocketSphinx acoustic model (no mdef)"
            )
        if not self.lm.is_file():
            return f"MAIE_POCKETSPHINX_LM={str(self.lm)!r}: file does not exist"
        if not self.dictionary.is_file():
            return f"MAIE_POCKETSPHINX_DICTIONARY={str(self.dictionary)!r}: file does not exist"
        return None


def _shipped_model_dir() -> Path | None:
    """The ``model/en-us`` folder of the installed wheel, or ``None`` when it is not installed."""
    if missing_library("pocketsphinx", hint=INSTALL_HINT):
        return None
    from pocketsphinx import get_model_path  # noqa: PLC0415 - optional extra

    return Path(get_model_path("en-us"))
