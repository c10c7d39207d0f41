"""Native punctuation is a fact about the model variant, recorded with every transcript."""

from __future__ import annotations

from maie.pipeline.asr import WhisperBackend
from maie.pipeline.asr.whisper import SPEC
from tests.fixtures.whisper_model import fast_options


class TestNativePunctuation:
    def test_variants(self):
        assert SPEC.has_native_punctuation("erax-ai/EraX-WoW-Turbo-V1.1-CT2")
        assert SPEC.has_native_punctuation("/models/erax-wow-turbo")
        assert not SPEC.has_native_punctuation("large-v3-turbo", "small")
        assert "punctuation" not in SPEC.capabilities

    def test_recorded_on_the_version(self, tiny_whisper_dir, tmp_path):
        renamed = tmp_path / "erax-wow-turbo-tiny"
        renamed.symlink_to(tiny_whisper_dir, target_is_directory=True)
        for folder, expected in ((tiny_whisper_dir, False), (renamed, True)):
            backend = WhisperBackend(fast_options(folder, tmp_path))
            backend.load()
            try:
                assert backend.version_info().native_punctuation is expected
            finally:
                backend.unload()
