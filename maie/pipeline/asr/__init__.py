"""ASR backends and their registry.

Typical use from a worker::

    from maie.pipeline.asr import AsrInput, create

    with create(settings.asr.backend, settings) as backend:
        artifact = backend.process(AsrInput(wav_path=wav, language=None, duration_s=12.3))

Backends import their libraries in ``load()``, so importing this package stays cheap.
"""

from __future__ import annotations

from maie.pipeline.asr.base import AsrBackend, AsrInput, Availability, BackendSpec
from maie.pipeline.asr.registry import (
    REGISTRY,
    BackendRegistry,
    create,
    describe,
    ensure_available,
    get_spec,
)
from maie.pipeline.asr.whisper import WhisperBackend
from maie.pipeline.asr.whisper_options import WhisperOptions

__all__ = [
    "REGISTRY",
    "AsrBackend",
    "AsrInput",
    "Availability",
    "BackendRegistry",
    "BackendSpec",
    "WhisperBackend",
    "WhisperOptions",
    "create",
    "describe",
    "ensure_available",
    "get_spec",
]
