"""The Whisper backend, run for real: faster-whisper on a tiny random model and real speech."""

from __future__ import annotations

import hashlib
import re
import wave
from typing import TYPE_CHECKING

import numpy as np
import pytest
from faster_whisper import WhisperModel
from structlog.testing import capture_logs

from maie.errors import ModelLoadError, PermanentError
from maie.hardware import cuda_available
from maie.pipeline.asr import AsrInput, WhisperBackend
from tests.fixtures.paths import shared_audio
from tests.fixtures.whisper_model import fast_options

if TYPE_CHECKING:
    from pathlib import Path

    from maie.schemas import AsrArtifact

#: Length of the JFK clip, in seconds.
JFK_SECONDS = 11.0


@pytest.fixture
def jfk_wav() -> Path:
    return shared_audio("jfk_16k.wav")


@pytest.fixture
def padded_wav(jfk_wav, tmp_path) -> Path:
    """The JFK clip followed by 10 s of digital silence, still 16 kHz mono."""
    with wave.open(str(jfk_wav)) as source:
        assert (source.getframerate(), source.getnchannels(), source.getsampwidth()) == (16000, 1, 2)
        frames = source.readframes(source.getnframes())
    path = tmp_path / "padded.wav"
    with wave.open(str(path), "wb") as target:
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(16000)
        target.writeframes(frames + np.zeros(10 * 16000, np.int16).tobytes())
    return path


@pytest.fixture
def make_backend(tiny_whisper_dir, tmp_path):
    """Build loaded backends with fast options; unload them all at teardown."""
    made: list[WhisperBackend] = []

    def make(**overrides) -> WhisperBackend:
        backend = WhisperBackend(fast_options(tiny_whisper_dir, tmp_path, **overrides))
        backend.load()
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.unload()


def transcribe(backend: WhisperBackend, wav: Path, **request) -> AsrArtifact:
    return backend.process(AsrInput(wav_path=wav, duration_s=JFK_SECONDS, **request))


class TestTinyModelFixture:
    """The fixture model is a genuine faster-whisper model."""

    def test_loads_and_is_multilingual(self, tiny_whisper_dir):
        """CTranslate2 flags it multilingual (the real vocab has the empty token)."""
        model = WhisperModel(str(tiny_whisper_dir), device="cpu", compute_type="int8", cpu_threads=1)
        assert model.model.is_multilingual
        assert "vi" in model.supported_languages


class TestProcess:
    """``process()`` returns a complete artifact of the right shape."""

    def test_artifact_shape(self, make_backend, jfk_wav):
        """Segments are ordered, within the audio, with confidences in [0, 1]."""
        artifact = transcribe(make_backend(), jfk_wav, language="en")

        assert artifact.duration_s == pytest.approx(JFK_SECONDS, abs=0.05)
        assert artifact.language == "en"
        assert artifact.language_probability == 1
        assert artifact.vad_coverage is None
        assert artifact.processing_time_s > 0
        assert artifact.segments, "the random model still emits tokens for 11 s of speech"
        starts = [seg.start for seg in artifact.segments]
        assert starts == sorted(starts)
        assert [seg.id for seg in artifact.segments] == list(range(1, len(artifact.segments) + 1))
        for seg in artifact.segments:
            assert 0 <= seg.start <= seg.end <= artifact.duration_s
            assert seg.confidence is not None
            assert 0 <= seg.confidence <= 1
            assert seg.words is None
        assert artifact.confidence_avg is not None
        assert 0 <= artifact.confidence_avg <= 1
        assert artifact.text == artifact.text.strip()

    def test_version_records_model_and_decoding(self, make_backend, jfk_wav, tiny_whisper_dir):
        """The version names the checkpoint (sha256 of model.bin) and every decoding option passed."""
        artifact = transcribe(make_backend(), jfk_wav, language="en")
        version = artifact.version

        expected = hashlib.sha256((tiny_whisper_dir / "model.bin").read_bytes()).hexdigest()
        assert re.fullmatch(r"[0-9a-f]{64}", version.checkpoint_hash)
        assert version.checkpoint_hash == expected
        assert (version.name, version.device, version.compute_type) == ("whisper", "cpu", "int8")
        assert version.model_path == tiny_whisper_dir.name, "a name, not a path of the server"
        assert version.model_variant == tiny_whisper_dir.name
        assert version.fallback is None
        assert version.decoding_params == {
            "task": "transcribe",
            "language": "en",
            "beam_size": 1,
            "temperature": [0.0],
            "condition_on_previous_text": False,
            "word_timestamps": False,
            "vad_filter": False,
            "max_new_tokens": 20,
            "window_s": 300.0,
        }

    def test_word_timestamps_requested(self, make_backend, jfk_wav):
        """A request asking for word timestamps gets words, inside their segments' audio."""
        artifact = transcribe(make_backend(), jfk_wav, language="en", word_timestamps=True)

        assert artifact.version.decoding_params["word_timestamps"] is True
        words = [word for seg in artifact.segments for word in seg.words or []]
        assert words
        for seg in artifact.segments:
            assert seg.words is not None
        for word in words:
            assert 0 <= word.start <= word.end <= artifact.duration_s
            assert 0 <= word.probability <= 1

    def test_request_overrides_config(self, make_backend, jfk_wav):
        """Request language and word timestamps win over the configured ones."""
        backend = make_backend(language="de", word_timestamps=True)

        artifact = transcribe(backend, jfk_wav, language="vi", word_timestamps=False)

        assert artifact.language == "vi"
        assert artifact.version.decoding_params["language"] == "vi"
        assert all(seg.words is None for seg in artifact.segments)
        assert transcribe(backend, jfk_wav).language == "de"

    def test_language_detection(self, make_backend, jfk_wav):
        """Without a language, the multilingual model detects one (any code: the model is random)."""
        artifact = transcribe(make_backend(), jfk_wav)

        assert artifact.version.decoding_params["language"] is None
        assert artifact.language is not None
        assert re.fullmatch(r"[a-z]{2,3}", artifact.language)
        assert artifact.language_probability is not None
        assert 0 <= artifact.language_probability <= 1

    def test_vad_coverage(self, make_backend, padded_wav):
        """VAD off reports no coverage; VAD on reports the kept share, below 1 with 10 s of silence."""
        without = transcribe(make_backend(vad_filter=False), padded_wav, language="en")
        with_vad = transcribe(make_backend(vad_filter=True), padded_wav, language="en")

        assert without.vad_coverage is None
        assert with_vad.vad_coverage is not None
        assert 0 < with_vad.vad_coverage < 1
        assert with_vad.version.decoding_params["vad_parameters"] == {
            "threshold": 0.5,
            "min_speech_duration_ms": 250,
            "min_silence_duration_ms": 2000,
            "speech_pad_ms": 400,
        }
        assert "vad_parameters" not in without.version.decoding_params

    def test_silence_with_vad(self, make_backend, tmp_path):
        """Audio VAD finds no speech in yields an empty transcript, not an error."""
        path = tmp_path / "silence.wav"
        with wave.open(str(path), "wb") as target:
            target.setnchannels(1)
            target.setsampwidth(2)
            target.setframerate(16000)
            target.writeframes(np.zeros(3 * 16000, np.int16).tobytes())

        artifact = make_backend(vad_filter=True).process(AsrInput(wav_path=path, duration_s=3.0))

        assert (artifact.text, artifact.segments) == ("", [])
        assert artifact.vad_coverage == 0
        assert artifact.confidence_avg is None

    def test_batched_pipeline(self, make_backend, jfk_wav):
        """``batch_size`` runs faster-whisper's BatchedInferencePipeline and records the batch size."""
        artifact = transcribe(make_backend(vad_filter=True, batch_size=2), jfk_wav, language="en")

        assert artifact.version.decoding_params["batch_size"] == 2
        for seg in artifact.segments:
            assert 0 <= seg.start <= seg.end <= artifact.duration_s

    def test_logs_finished_with_rtf(self, make_backend, jfk_wav):
        """Each run logs ``asr.finished`` with its real-time factor."""
        backend = make_backend()
        with capture_logs() as logs:
            transcribe(backend, jfk_wav, language="en")

        finished = [entry for entry in logs if entry["event"] == "asr.finished"]
        assert len(finished) == 1
        assert finished[0]["rtf"] > 0
        assert finished[0]["duration_s"] == pytest.approx(JFK_SECONDS, abs=0.05)

    def test_missing_wav_is_permanent(self, make_backend, tmp_path):
        """A preprocessed WAV that is gone fails the task rather than retrying."""
        with pytest.raises(PermanentError, match="missing"):
            transcribe(make_backend(), tmp_path / "gone.wav")

    def test_version_info_matches_process(self, make_backend, jfk_wav):
        """``version_info()`` describes the loaded model with the configured decoding."""
        backend = make_backend(language="en")

        assert backend.version_info() == transcribe(backend, jfk_wav).version


class TestLifecycle:
    """load → process → unload, errors and reuse."""

    def test_missing_model_raises_model_load_error(self, tmp_path):
        """A model folder that does not exist fails with an actionable ModelLoadError."""
        backend = WhisperBackend(fast_options(tmp_path / "no-such-model", tmp_path))

        with pytest.raises(ModelLoadError, match="does not exist"):
            backend.load()
        assert not backend.loaded

    def test_folder_without_weights_raises(self, tmp_path):
        """A folder without model.bin is not a CTranslate2 model."""
        folder = tmp_path / "empty-model"
        folder.mkdir()

        with pytest.raises(ModelLoadError, match=r"model\.bin"):
            WhisperBackend(fast_options(folder, tmp_path)).load()

    def test_corrupt_weights_raise(self, tmp_path, tiny_whisper_dir):
        """Weights CTranslate2 cannot read fail as ModelLoadError, not a bare RuntimeError."""
        folder = tmp_path / "corrupt"
        folder.mkdir()
        for name in ("config.json", "tokenizer.json", "vocabulary.json", "preprocessor_config.json"):
            (folder / name).write_bytes((tiny_whisper_dir / name).read_bytes())
        (folder / "model.bin").write_bytes(b"not a model")

        with pytest.raises(ModelLoadError, match="cannot load"):
            WhisperBackend(fast_options(folder, tmp_path)).load()

    @pytest.mark.skipif(cuda_available(), reason="this host has CUDA")
    def test_forced_cuda_without_gpu_raises(self, tiny_whisper_dir, tmp_path):
        """device=cuda on a host without CUDA says what to change."""
        backend = WhisperBackend(
            fast_options(tiny_whisper_dir, tmp_path, device="cuda", compute_type="float16")
        )

        with pytest.raises(ModelLoadError, match="MAIE_WHISPER_DEVICE"):
            backend.load()

    def test_process_before_load(self, tiny_whisper_dir, tmp_path, jfk_wav):
        """Using an unloaded backend is a programming error, said plainly."""
        backend = WhisperBackend(fast_options(tiny_whisper_dir, tmp_path))

        with pytest.raises(RuntimeError, match="before load"):
            transcribe(backend, jfk_wav)
        with pytest.raises(RuntimeError, match="after load"):
            backend.version_info()

    def test_unload_twice_is_safe(self, tiny_whisper_dir, tmp_path):
        """unload() on an unloaded backend does nothing."""
        backend = WhisperBackend(fast_options(tiny_whisper_dir, tmp_path))
        backend.unload()
        backend.load()
        backend.load()  # idempotent: the model is not loaded twice
        assert backend.loaded
        backend.unload()
        backend.unload()
        assert not backend.loaded

    def test_context_manager_unloads_on_error(self, tiny_whisper_dir, tmp_path):
        """Leaving the ``with`` block through an exception still unloads the model."""
        backend = WhisperBackend(fast_options(tiny_whisper_dir, tmp_path))

        seen_loaded: list[bool] = []

        def run() -> None:
            with backend as stage:
                seen_loaded.append(stage.loaded)
                stage.process(AsrInput(wav_path=tmp_path / "gone.wav", duration_s=1.0))

        with pytest.raises(PermanentError):
            run()
        assert seen_loaded == [True]
        assert not backend.loaded

    def test_cache_key_equal_for_equal_options(self, tiny_whisper_dir, tmp_path):
        """Backends built from equal options share a key (a worker may reuse one); others do not."""
        one = WhisperBackend(fast_options(tiny_whisper_dir, tmp_path))
        two = WhisperBackend(fast_options(tiny_whisper_dir, tmp_path))
        other = WhisperBackend(fast_options(tiny_whisper_dir, tmp_path, beam_size=2))

        assert hash(one.cache_key()) == hash(two.cache_key())
        assert one.cache_key() == two.cache_key()
        assert one.cache_key() != other.cache_key()


class TestRequestOptions:
    """Custom vocabulary and beam width, per request and per config, reach faster-whisper."""

    def test_initial_prompt_and_hotwords_change_the_decoding(self, make_backend, jfk_wav):
        """Each prompt is passed to the decoder (the output changes) and recorded."""
        backend = make_backend()
        plain = transcribe(backend, jfk_wav, language="en")
        prompted = transcribe(backend, jfk_wav, language="en", initial_prompt="ComfyUI and Kubernetes")
        hot = transcribe(backend, jfk_wav, language="en", hotwords="ComfyUI Kubernetes")

        assert "initial_prompt" not in plain.version.decoding_params
        assert prompted.version.decoding_params["initial_prompt"] == "ComfyUI and Kubernetes"
        assert hot.version.decoding_params["hotwords"] == "ComfyUI Kubernetes"
        assert prompted.text != plain.text
        assert hot.text != plain.text

    def test_configured_prompt_unless_the_request_has_one(self, make_backend, jfk_wav):
        backend = make_backend(hotwords="MAIE", initial_prompt="Meeting notes.")

        configured = transcribe(backend, jfk_wav, language="en").version.decoding_params
        requested = transcribe(backend, jfk_wav, language="en", hotwords="Kubernetes").version.decoding_params

        assert (configured["hotwords"], configured["initial_prompt"]) == ("MAIE", "Meeting notes.")
        assert (requested["hotwords"], requested["initial_prompt"]) == ("Kubernetes", "Meeting notes.")

    def test_request_beam_size(self, make_backend, jfk_wav):
        backend = make_backend()

        assert (
            transcribe(backend, jfk_wav, language="en", beam_size=3).version.decoding_params["beam_size"] == 3
        )
        assert transcribe(backend, jfk_wav, language="en").version.decoding_params["beam_size"] == 1


class TestWindows:
    """Long recordings are transcribed window by window, with times on the recording's timeline."""

    @pytest.fixture
    def late_speech_wav(self, jfk_wav, tmp_path) -> Path:
        """100 s of silence, then the JFK clip: 111 s, two windows of at most 60 s (+ a 30 s tail)."""
        with wave.open(str(jfk_wav)) as source:
            frames = source.readframes(source.getnframes())
        path = tmp_path / "late.wav"
        with wave.open(str(path), "wb") as target:
            target.setnchannels(1)
            target.setsampwidth(2)
            target.setframerate(16000)
            target.writeframes(np.zeros(100 * 16000, np.int16).tobytes() + frames)
        return path

    def test_times_are_moved_by_the_window_start(self, make_backend, late_speech_wav):
        backend = make_backend(vad_filter=True, window_s=60.0, word_timestamps=True)
        with capture_logs() as logs:
            artifact = backend.process(AsrInput(wav_path=late_speech_wav, duration_s=111.0, language="en"))

        (finished,) = [e for e in logs if e["event"] == "asr.finished"]
        assert finished["windows"] == 2
        assert artifact.duration_s == pytest.approx(111.0, abs=0.01)
        assert artifact.segments, "the clip is transcribed"
        for segment in artifact.segments:
            assert segment.start >= 99, "the speech starts at 100 s, in the second window"
            assert all(word.start >= 99 for word in segment.words or [])
        assert artifact.version.decoding_params["window_s"] == 60.0
        assert [s.id for s in artifact.segments] == list(range(1, len(artifact.segments) + 1))

    def test_one_window_for_a_short_recording(self, make_backend, jfk_wav):
        with capture_logs() as logs:
            transcribe(make_backend(window_s=60.0), jfk_wav, language="en")
        (finished,) = [e for e in logs if e["event"] == "asr.finished"]
        assert finished["windows"] == 1


class TestLanguageDetection:
    """Detection looks at speech windows across the recording, not at the first 30 s."""

    @pytest.fixture(params=["silence", "jingle"])
    def silent_intro_wav(self, request, jfk_wav, tmp_path) -> Path:
        """40 s of silence (or a music-like jingle), then the JFK clip: the first window holds no speech."""
        with wave.open(str(jfk_wav)) as source:
            frames = source.readframes(source.getnframes())
        intro = np.zeros(40 * 16000, np.int16)
        if request.param == "jingle":  # a chord with vibrato and a beat
            t = np.arange(40 * 16000) / 16000
            chord = sum(
                0.08 * np.sin(2 * np.pi * f * t * (1 + 0.003 * np.sin(5 * t))) for f in (220.0, 277.2, 329.6)
            )
            intro = (chord * (0.6 + 0.4 * (np.sin(2 * np.pi * 2 * t) > 0)) * 32767).astype(np.int16)
        path = tmp_path / "intro.wav"
        with wave.open(str(path), "wb") as target:
            target.setnchannels(1)
            target.setsampwidth(2)
            target.setframerate(16000)
            target.writeframes(intro.tobytes() + frames)
        return path

    def test_silent_intro_does_not_decide_the_language(self, make_backend, jfk_wav, silent_intro_wav):
        """With VAD off for decoding, the intro still does not decide: same language as the speech alone.

        faster-whisper's own detection hears the silent first window (premise checked below), so
        this fails if the backend falls back to it.
        """
        from faster_whisper import WhisperModel, decode_audio

        backend = make_backend(vad_filter=False, language_detection_segments=3)

        alone = transcribe(backend, jfk_wav)
        padded = backend.process(AsrInput(wav_path=silent_intro_wav, duration_s=51.0))

        assert padded.language == alone.language
        assert padded.version.decoding_params["language"] is None
        assert padded.version.decoding_params["language_detection_segments"] == 3
        library = WhisperModel(str(backend.options.model), device="cpu", compute_type="int8", cpu_threads=1)
        for segments in (1, 3):
            naive, _, _ = library.detect_language(
                audio=decode_audio(str(silent_intro_wav)), language_detection_segments=segments
            )
            assert naive != alone.language, "premise: the library alone is fooled by the intro"

    def test_detection_is_logged_with_its_windows(self, make_backend, silent_intro_wav):
        backend = make_backend(vad_filter=False)
        with capture_logs() as logs:
            backend.process(AsrInput(wav_path=silent_intro_wav, duration_s=51.0))

        (entry,) = [e for e in logs if e["event"] == "asr.language_detected"]
        assert entry["windows_s"] == (0.0,)  # 11 s of speech: one window, taken after the intro
        assert 0 <= entry["probability"] <= 1


class TestDeviceFallback:
    """CUDA unusable at load time: the model moves to the CPU with an adjusted compute type."""

    def test_gpu_that_fails_at_load_falls_back_to_cpu(self, tiny_whisper_dir, tmp_path, monkeypatch, jfk_wav):
        """The probe sees a GPU (a double, as a broken driver would report), CTranslate2 cannot use it."""
        from maie.hardware import CudaProbe
        from maie.pipeline.asr import whisper

        if cuda_available():
            pytest.skip("this host has a usable GPU; the fallback needs one that fails")
        monkeypatch.setattr(whisper, "probe_cuda", lambda: CudaProbe(1))
        backend = WhisperBackend(
            fast_options(
                tiny_whisper_dir,
                tmp_path,
                device="cuda",
                compute_type="float16",
                device_auto=True,
                compute_type_auto=True,
            )
        )

        with capture_logs() as logs:
            backend.load()
        try:
            artifact = transcribe(backend, jfk_wav, language="en")
        finally:
            backend.unload()

        assert (artifact.version.device, artifact.version.compute_type) == ("cpu", "int8")
        assert artifact.version.fallback is not None
        assert artifact.version.fallback.startswith("cuda→cpu: ")
        assert [e["compute_type"] for e in logs if e["event"] == "asr.device_fallback"] == ["int8"]

    def test_explicit_gpu_compute_type_is_adjusted(self, tiny_whisper_dir, tmp_path, monkeypatch):
        """A configured float16 becomes float32 on the CPU fallback (float16 is GPU-only)."""
        from maie.hardware import CudaProbe
        from maie.pipeline.asr import whisper

        monkeypatch.setattr(whisper, "probe_cuda", lambda: CudaProbe(0, "driver too old"))
        backend = WhisperBackend(
            fast_options(tiny_whisper_dir, tmp_path, device="cuda", compute_type="float16", device_auto=True)
        )
        backend.load()
        try:
            version = backend.version_info()
        finally:
            backend.unload()

        assert (version.device, version.compute_type) == ("cpu", "float32")
        assert version.fallback == "cuda→cpu: driver too old"

    def test_forced_gpu_is_not_moved(self, tiny_whisper_dir, tmp_path, monkeypatch):
        """device=cuda set explicitly: a failing GPU is an error, never a silent CPU run."""
        from maie.hardware import CudaProbe
        from maie.pipeline.asr import whisper

        monkeypatch.setattr(whisper, "probe_cuda", lambda: CudaProbe(0, "driver too old"))
        backend = WhisperBackend(
            fast_options(tiny_whisper_dir, tmp_path, device="cuda", compute_type="float16")
        )

        with pytest.raises(ModelLoadError, match="MAIE_WHISPER_DEVICE=cuda"):
            backend.load()


class TestWordTimestamps:
    """Words always lie inside their segment and the recording."""

    def test_words_outside_their_segment_widen_it(self):
        """VAD maps segment bounds and word times separately; the segment is widened to its words."""
        from types import SimpleNamespace

        from maie.pipeline.asr.whisper import _segment

        def word(start, end):
            return SimpleNamespace(start=start, end=end, word=" w", probability=0.9)

        library_segment = SimpleNamespace(  # the shape of faster_whisper.transcribe.Segment
            start=2.0,
            end=3.0,
            text=" a b c",
            avg_logprob=-0.1,
            words=[word(1.8, 2.2), word(2.3, 2.9), word(2.9, 3.4)],
        )

        segment = _segment(1, library_segment, duration=3.3)

        assert (segment.start, segment.end) == (1.8, 3.3)
        assert segment.words is not None
        assert all(segment.start <= w.start <= w.end <= segment.end for w in segment.words)
        assert segment.words[-1].end == 3.3  # clamped to the recording

    def test_batched_pipeline_with_words(self, make_backend, jfk_wav):
        artifact = transcribe(
            make_backend(vad_filter=True, batch_size=4), jfk_wav, language="en", word_timestamps=True
        )

        words = [w for s in artifact.segments for w in s.words or []]
        assert words
        for segment in artifact.segments:
            for w in segment.words or []:
                assert segment.start <= w.start <= w.end <= segment.end <= artifact.duration_s
