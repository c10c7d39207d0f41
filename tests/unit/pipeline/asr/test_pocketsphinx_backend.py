"""The PocketSphinx backend, run for real on real speech with the model shipped in its wheel."""

from __future__ import annotations

import hashlib
import wave

import numpy as np
import pytest

from maie.config import Settings
from maie.errors import ModelLoadError, PermanentError
from maie.pipeline.asr import AsrInput
from maie.pipeline.asr.pocketsphinx import (
    PocketsphinxBackend,
    PocketsphinxOptions,
    check_availability,
)
from tests.fixtures.paths import shared_audio
from tests.fixtures.wer import wer_points

pytest.importorskip("pocketsphinx", reason="the pocketsphinx extra is not installed (uv sync installs it)")

JFK_SECONDS = 11.0


def settings_for(tmp_path, **env) -> Settings:
    return Settings.from_env({"MAIE_DATA_DIR": str(tmp_path), **env}, env_file=None)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    loaded = PocketsphinxBackend(
        PocketsphinxOptions.from_settings(settings_for(tmp_path_factory.mktemp("d")))
    )
    loaded.load()
    yield loaded
    loaded.unload()


@pytest.fixture(scope="module")
def jfk(backend):
    """JFK (16 kHz mono) transcribed once with word timestamps."""
    return backend.process(
        AsrInput(wav_path=shared_audio("jfk_16k.wav"), duration_s=JFK_SECONDS, word_timestamps=True)
    )


class TestProcess:
    """Real recognition of real speech."""

    def test_recognises_the_speech(self, jfk):
        """Not gibberish: most words of the reference come out (PocketSphinx is no Whisper)."""
        reference = shared_audio("jfk_16k.txt").read_text(encoding="utf-8")
        assert wer_points(reference, jfk.text) < 50
        assert "country" in jfk.text.split()

    def test_segments_are_utterances_in_order(self, jfk):
        """One segment per spoken utterance, in time order, inside the audio, with confidences."""
        assert jfk.segments
        assert [s.id for s in jfk.segments] == list(range(1, len(jfk.segments) + 1))
        for earlier, later in zip(jfk.segments, jfk.segments[1:], strict=False):
            assert earlier.end <= later.start
        for segment in jfk.segments:
            assert 0 <= segment.start < segment.end <= jfk.duration_s
            assert segment.confidence is not None
            assert 0 <= segment.confidence <= 1
        assert jfk.text == " ".join(s.text for s in jfk.segments)
        assert jfk.language == "en"
        assert jfk.duration_s == pytest.approx(JFK_SECONDS, abs=0.05)
        assert jfk.vad_coverage is not None
        assert 0.5 < jfk.vad_coverage <= 1

    def test_words_have_times_inside_their_segment(self, jfk):
        """Word timestamps: real words only (no <s>, <sil>, [NOISE], no "(2)" variants), in order."""
        for segment in jfk.segments:
            assert segment.words
            assert " ".join(w.word for w in segment.words) == segment.text
            for word in segment.words:
                assert segment.start <= word.start <= word.end <= segment.end + 0.011
                assert 0 <= word.probability <= 1
                assert not word.word.startswith(("<", "[", "+"))
                assert "(" not in word.word
            starts = [w.start for w in segment.words]
            assert starts == sorted(starts)

    def test_words_only_when_asked(self, backend):
        artifact = backend.process(AsrInput(wav_path=shared_audio("jfk_16k.wav"), duration_s=JFK_SECONDS))
        assert all(segment.words is None for segment in artifact.segments)
        assert artifact.version.decoding_params["word_timestamps"] is False

    def test_version_hashes_every_model_file(self, jfk, backend):
        """The checkpoint hash covers acoustic model, language model and dictionary."""
        files = backend.options.model_files()
        assert backend.options.lm in files
        assert backend.options.dictionary in files
        assert any(f.name == "means" for f in files)
        lines = "".join(f"{f.name} {hashlib.sha256(f.read_bytes()).hexdigest()}\n" for f in files)
        version = jfk.version
        assert version.checkpoint_hash == hashlib.sha256(lines.encode()).hexdigest()
        assert (version.name, version.device, version.model_variant) == ("pocketsphinx", "cpu", "en-us")
        assert version.decoding_params["vad_mode"] == 0
        # Names only: the server's folders are not shown to clients.
        assert version.model_path == "en-us"
        assert version.decoding_params["lm"] == backend.options.lm.name
        assert version.decoding_params["dictionary"] == backend.options.dictionary.name

    def test_a_transcript_does_not_depend_on_earlier_recordings(self, backend, tmp_path):
        """The same recording twice, with others in between, gives the same transcript.

        Narrowband speech (JFK through 8 kHz) is the case where the decoder's leftover feature
        state changed the words before it was reset per recording.
        """
        from tests.fixtures.wer import run_ffmpeg

        narrow = tmp_path / "jfk_8k_16k.wav"
        run_ffmpeg(
            "-i", str(shared_audio("jfk_16k.wav")), "-af", "aresample=8000,aresample=16000", str(narrow)
        )
        first = backend.process(AsrInput(wav_path=narrow, duration_s=JFK_SECONDS)).text
        backend.process(AsrInput(wav_path=shared_audio("jfk_16k.wav"), duration_s=JFK_SECONDS))
        assert backend.process(AsrInput(wav_path=narrow, duration_s=JFK_SECONDS)).text == first

    def test_silence_gives_an_empty_transcript(self, backend, tmp_path):
        path = tmp_path / "silence.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(np.zeros(3 * 16000, np.int16).tobytes())

        artifact = backend.process(AsrInput(wav_path=path, duration_s=3.0))

        assert (artifact.text, artifact.segments, artifact.confidence_avg) == ("", [], None)

    def test_missing_wav_is_permanent(self, backend, tmp_path):
        with pytest.raises(PermanentError, match="missing"):
            backend.process(AsrInput(wav_path=tmp_path / "gone.wav", duration_s=1.0))

    def test_wrong_wav_shape_is_permanent(self, backend):
        """Anything but MAIE's 16 kHz mono 16-bit WAV is refused, not misread."""
        with pytest.raises(PermanentError, match="16 kHz mono"):
            backend.process(AsrInput(wav_path=shared_audio("stereo_diarization.wav"), duration_s=5.0))


class TestAvailabilityAndLoading:
    """Real checks of model files; load errors say what to fix."""

    def test_shipped_model_is_available(self, tmp_path):
        availability = check_availability(settings_for(tmp_path))

        assert availability.reason is None
        assert (availability.device, availability.variant, availability.languages) == (
            "cpu",
            "en-us",
            ("en",),
        )

    def test_missing_language_model_file(self, tmp_path):
        settings = settings_for(tmp_path, MAIE_POCKETSPHINX_LM=str(tmp_path / "nope.lm.bin"))

        reason = check_availability(settings).reason or ""

        assert "MAIE_POCKETSPHINX_LM" in reason
        assert "does not exist" in reason
        with pytest.raises(ModelLoadError, match="MAIE_POCKETSPHINX_LM"):
            PocketsphinxBackend(PocketsphinxOptions.from_settings(settings)).load()

    def test_folder_that_is_not_an_acoustic_model(self, tmp_path):
        settings = settings_for(tmp_path, MAIE_POCKETSPHINX_MODEL=str(tmp_path))

        assert "no mdef" in (check_availability(settings).reason or "")

    def test_unreadable_model_is_a_load_error(self, tmp_path):
        """A language model PocketSphinx cannot parse fails as ModelLoadError, not a crash."""
        broken = tmp_path / "broken.lm.bin"
        broken.write_bytes(b"\xff\xfe not a language model \x00")
        backend = PocketsphinxBackend(
            PocketsphinxOptions.from_settings(settings_for(tmp_path, MAIE_POCKETSPHINX_LM=str(broken)))
        )

        with pytest.raises(ModelLoadError, match="cannot load the PocketSphinx model"):
            backend.load()
        assert not backend.loaded

    def test_process_before_load(self, tmp_path):
        backend = PocketsphinxBackend(PocketsphinxOptions.from_settings(settings_for(tmp_path)))
        with pytest.raises(RuntimeError, match="before load"):
            backend.process(AsrInput(wav_path=shared_audio("jfk_16k.wav"), duration_s=JFK_SECONDS))
