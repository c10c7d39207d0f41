"""The ChunkFormer backend: availability checks always; the real library on a tiny model with the extra."""

from __future__ import annotations

import hashlib
import sys
import wave

import msgspec
import numpy as np
import pytest
from structlog.testing import capture_logs

from maie.config import Settings
from maie.errors import PermanentError
from maie.pipeline.asr import AsrInput
from maie.pipeline.asr.chunkformer import ChunkformerBackend, check_availability, parse_clock
from maie.pipeline.asr.chunkformer_options import ChunkformerOptions, TorchStack, folder_problem, torch_stack
from tests.fixtures.paths import shared_audio

JFK_SECONDS = 11.0
VI_SECONDS = 7.1
#: What the availability check would hear from a host with the extra and no GPU (a test double).
CPU_STACK = TorchStack(cuda_reason="torch 2.13.0+cpu is a CPU-only build")


def settings_for(tmp_path, **env) -> Settings:
    return Settings.from_env({"MAIE_DATA_DIR": str(tmp_path), **env}, env_file=None)


class TestOptions:
    """Settings resolved into options; no torch needed."""

    def test_auto_without_cuda_falls_back_and_says_why(self, tmp_path):
        options = ChunkformerOptions.from_settings(settings_for(tmp_path), stack=CPU_STACK)

        assert (options.device, options.device_auto) == ("cpu", True)
        assert options.device_fallback == "cuda→cpu: torch 2.13.0+cpu is a CPU-only build"
        assert options.download_root == tmp_path / "models"

    def test_auto_with_cuda(self, tmp_path):
        options = ChunkformerOptions.from_settings(settings_for(tmp_path), stack=TorchStack(cuda_devices=1))

        assert (options.device, options.device_fallback) == ("cuda", None)

    def test_configured_values_carry_over(self, tmp_path):
        settings = settings_for(
            tmp_path,
            MAIE_CHUNKFORMER_DEVICE="cpu",
            MAIE_CHUNKFORMER_CHUNK_SIZE="32",
            MAIE_CHUNKFORMER_LEFT_CONTEXT_SIZE="64",
            MAIE_CHUNKFORMER_RIGHT_CONTEXT_SIZE="16",
            MAIE_CHUNKFORMER_TOTAL_BATCH_DURATION_S="600",
        )

        options = ChunkformerOptions.from_settings(settings, stack=CPU_STACK)

        assert (options.device, options.device_auto, options.device_fallback) == ("cpu", False, None)
        assert options.decode_kwargs() == {
            "chunk_size": 32,
            "left_context_size": 64,
            "right_context_size": 16,
            "total_batch_duration": 600,
        }

    def test_clock_format(self):
        assert parse_clock("00:00:10:800") == pytest.approx(10.8)
        assert parse_clock("01:02:03:004") == pytest.approx(3723.004)
        with pytest.raises(ValueError, match="invalid literal"):
            parse_clock("10.8")


class TestModelFolder:
    """What a loadable model folder needs, said per missing file."""

    def test_missing_folder(self, tmp_path):
        assert "does not exist" in (folder_problem(tmp_path / "nope") or "")

    def test_missing_pieces(self, tmp_path):
        assert "config.yaml" in (folder_problem(tmp_path) or "")
        (tmp_path / "config.yaml").write_text("model: asr_model\n")
        assert "pytorch_model.bin" in (folder_problem(tmp_path) or "")
        (tmp_path / "pytorch_model.bin").write_bytes(b"0")
        assert "vocab.txt" in (folder_problem(tmp_path) or "")
        (tmp_path / "vocab.txt").write_text("<blank> 0\n")
        assert folder_problem(tmp_path) is None


class TestAvailability:
    """``/v1/models`` tells the truth about this host."""

    @pytest.mark.skipif(torch_stack().problem is None, reason="the chunkformer extra is installed here")
    def test_without_the_extra(self, tmp_path):
        availability = check_availability(settings_for(tmp_path))

        assert availability.reason is not None
        assert "chunkformer" in availability.reason
        assert "extra" in availability.reason

    def test_default_model_offline(self, tmp_path, monkeypatch):
        """The hub model, not downloaded and the hub forbidden: unavailable, with what to do."""
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        availability = check_availability(settings_for(tmp_path))

        assert availability.reason is not None
        if torch_stack().problem is None:  # with the extra, the model is what is missing
            assert "khanhld/chunkformer-ctc-large-vie" in availability.reason
            assert "MAIE_CHUNKFORMER_MODEL" in availability.reason
        assert availability.languages == ("vi",)

    @pytest.mark.chunkformer
    def test_tiny_model_is_available_on_cpu(self, tiny_chunkformer_dir, tmp_path):
        availability = check_availability(
            settings_for(tmp_path, MAIE_CHUNKFORMER_MODEL=str(tiny_chunkformer_dir))
        )

        assert availability.reason is None
        assert availability.device == "cpu"


@pytest.fixture(scope="module")
def make_backend(tiny_chunkformer_dir, tmp_path_factory):
    """Loaded backends on the tiny model; unloaded at teardown."""
    made: list[ChunkformerBackend] = []
    data = tmp_path_factory.mktemp("data")

    def make(**env) -> ChunkformerBackend:
        settings = settings_for(data, MAIE_CHUNKFORMER_MODEL=str(tiny_chunkformer_dir), **env)
        backend = ChunkformerBackend(ChunkformerOptions.from_settings(settings))
        backend.load()
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.unload()


def jfk(**request) -> AsrInput:
    return AsrInput(wav_path=shared_audio("jfk_16k.wav"), duration_s=JFK_SECONDS, **request)


def vietnamese() -> AsrInput:
    return AsrInput(wav_path=shared_audio("vi/common_voice_vi_23397238.wav"), duration_s=VI_SECONDS)


@pytest.mark.chunkformer
class TestRealLibrary:
    """The chunkformer library for real (torch on CPU), on the tiny random model."""

    def test_torchaudio_imports_under_cpu_torch(self):
        """The CUDA-built torchaudio wheel imports under CPU torch, in its pure-Python mode."""
        torch = pytest.importorskip("torch")
        torchaudio = sys.modules.get("torchaudio") or pytest.importorskip("torchaudio")
        fbank = torchaudio.compliance.kaldi.fbank(torch.zeros(1, 16000), num_mel_bins=80)
        assert fbank.shape == (98, 80)
        if torch.version.cuda is None:
            assert torchaudio._extension._IS_TORCHAUDIO_EXT_AVAILABLE is False

    def test_endless_decode_gives_timed_segments(self, make_backend, tiny_chunkformer_dir):
        backend = make_backend()

        artifact = backend.process(jfk())

        assert artifact.segments, "the random model still emits tokens for 11 s of speech"
        for segment in artifact.segments:
            assert 0 <= segment.start <= segment.end <= JFK_SECONDS
            assert segment.text
        assert artifact.text == " ".join(s.text for s in artifact.segments)
        assert artifact.language == "vi"
        version = artifact.version
        assert version.decoding_params["method"] == "endless_decode"
        assert version.decoding_params["return_timestamps"] is True
        assert version.decoding_params["chunk_size"] == 64
        assert (version.device, version.compute_type) == ("cpu", "float32")
        assert version.fallback is not None
        assert version.fallback.startswith("cuda→cpu")
        expected = hashlib.sha256(
            "".join(
                f"{name} {hashlib.sha256((tiny_chunkformer_dir / name).read_bytes()).hexdigest()}\n"
                for name in ("pytorch_model.bin", "config.yaml", "vocab.txt")
            ).encode()
        ).hexdigest()
        assert version.checkpoint_hash == expected

    def test_batch_without_timestamps_uses_batch_decode(self, make_backend):
        """Timestamps off: one batch_decode pass; each recording one segment; same text as alone."""
        backend = make_backend(MAIE_CHUNKFORMER_RETURN_TIMESTAMPS="false")

        with capture_logs() as logs:
            results = backend.process_batch([jfk(), vietnamese()])

        assert [e["recordings"] for e in logs if e["event"] == "asr.batch_decoded"] == [2]
        first, second = results
        assert not isinstance(first, Exception)
        assert not isinstance(second, Exception)
        assert first.version.decoding_params["method"] == "batch_decode"
        assert [(s.start, s.end) for s in first.segments] == [(0.0, JFK_SECONDS)]
        assert first.text == backend.process(jfk()).text
        assert second.segments[0].end == VI_SECONDS

    def test_batch_keeps_one_bad_recording_apart(self, make_backend, tmp_path):
        """A missing WAV in a batch gives its error in place; the others are decoded."""
        backend = make_backend(MAIE_CHUNKFORMER_RETURN_TIMESTAMPS="false")
        gone = AsrInput(wav_path=tmp_path / "gone.wav", duration_s=1.0)

        results = backend.process_batch([jfk(), gone, vietnamese()])

        assert isinstance(results[1], PermanentError)
        assert not isinstance(results[0], Exception)
        assert not isinstance(results[2], Exception)
        assert results[2].version.decoding_params["method"] == "batch_decode"

    def test_batch_with_timestamps_decodes_one_by_one(self, make_backend):
        """Timestamps on: batch_decode gives no times, so each recording gets endless_decode."""
        backend = make_backend()

        results = backend.process_batch([jfk(), vietnamese()])

        assert all(not isinstance(r, Exception) for r in results)
        assert all(
            r.version.decoding_params["method"] == "endless_decode"
            for r in results
            if not isinstance(r, Exception)
        )

    def test_round_trips_through_the_store_encoding(self, make_backend):
        artifact = make_backend().process(vietnamese())
        assert msgspec.json.decode(msgspec.json.encode(artifact), type=type(artifact)) == artifact


class FakeChunkFormer:
    """Test double of ``ChunkFormerModel``: records the length of each file it decodes.

    Each file gets one segment from 1.0 s to 2.5 s of that file, so the window offsets show.
    """

    def __init__(self) -> None:
        self.files: list[tuple[str, float]] = []

    def endless_decode(self, path: str, **_: object) -> list[dict[str, str]]:
        with wave.open(path) as wav:
            self.files.append((path, wav.getnframes() / wav.getframerate()))
        return [{"decode": f"window {len(self.files)}", "start": "00:00:01:000", "end": "00:00:02:500"}]


class TestWindows:
    """Long recordings reach endless_decode window by window (the model is a test double)."""

    def _backend(self, tmp_path, **options) -> tuple[ChunkformerBackend, FakeChunkFormer]:
        backend = ChunkformerBackend(ChunkformerOptions(model="tiny", window_s=60.0, **options))
        fake = FakeChunkFormer()
        backend._model, backend._model_dir, backend._checkpoint = fake, tmp_path, "0" * 64
        return backend, fake

    def _wav(self, path, seconds: int):
        rng = np.random.default_rng(0)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes((rng.standard_normal(seconds * 16000) * 3000).astype("<i2").tobytes())
        return path

    def test_long_recording_in_windows_with_moved_times(self, tmp_path):
        backend, fake = self._backend(tmp_path)
        wav = self._wav(tmp_path / "long.wav", 200)

        artifact = backend.process(AsrInput(wav_path=wav, duration_s=200.0))

        lengths = [seconds for _, seconds in fake.files]
        assert len(lengths) >= 3, "200 s in windows of at most 60 s (cut at a quiet moment), plus a tail"
        assert all(seconds <= 90 for seconds in lengths)
        assert sum(lengths) == pytest.approx(200.0)
        window_starts = np.cumsum([0.0, *lengths[:-1]])
        assert [s.start for s in artifact.segments] == pytest.approx(list(window_starts + 1.0))
        assert [s.id for s in artifact.segments] == list(range(1, len(lengths) + 1))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["long.wav"], "window files are removed"

    def test_short_recording_is_decoded_from_its_own_file(self, tmp_path):
        backend, fake = self._backend(tmp_path)
        wav = self._wav(tmp_path / "short.wav", 20)

        backend.process(AsrInput(wav_path=wav, duration_s=20.0))

        assert fake.files == [(str(wav), 20.0)]

    def test_without_timestamps_the_windows_texts_are_joined(self, tmp_path):
        backend, fake = self._backend(tmp_path, return_timestamps=False)
        decode = fake.endless_decode

        def text_only(path: str, **kwargs: object) -> str:
            decode(path, **kwargs)
            return f"text of {path[-4:]}"

        fake.endless_decode = text_only  # type: ignore[method-assign]
        wav = self._wav(tmp_path / "long.wav", 200)

        artifact = backend.process(AsrInput(wav_path=wav, duration_s=200.0))

        assert [(s.start, s.end) for s in artifact.segments] == [(0.0, 200.0)]
        assert artifact.text == " ".join(["text of .wav"] * len(fake.files))
