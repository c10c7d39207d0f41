"""Whisper options: ``auto`` made concrete from settings, and the keyword arguments they produce."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from maie.config import WhisperSettings
from maie.hardware import CudaProbe
from maie.pipeline.asr.whisper_options import WhisperOptions

NO_GPU = CudaProbe(0, "no CUDA device")
ONE_GPU = CudaProbe(1)


class TestFromSettings:
    """Resolution of device, compute type, model and paths."""

    def test_cpu_host_resolves_and_logs(self):
        """auto on a host without CUDA becomes cpu/int8 with the CPU default model, and says so."""
        with capture_logs() as logs:
            options = WhisperOptions.from_settings(WhisperSettings(), Path("/data"), cuda=NO_GPU)

        assert (options.device, options.compute_type, options.model) == ("cpu", "int8", "small")
        assert options.device_fallback == "cuda→cpu: no CUDA device"
        assert options.download_root == Path("/data/models")
        assert options.cache_dir == Path("/data/cache")
        assert {
            "event": "asr.device_resolved",
            "device": "cpu",
            "compute_type": "int8",
            "reason": "cuda→cpu: no CUDA device",
            "log_level": "info",
        } in logs

    def test_gpu_host(self):
        """auto with a GPU becomes cuda/float16 with large-v3-turbo and no fallback."""
        options = WhisperOptions.from_settings(WhisperSettings(), Path("data"), cuda=ONE_GPU)

        assert (options.device, options.compute_type, options.model) == ("cuda", "float16", "large-v3-turbo")
        assert options.device_fallback is None

    def test_explicit_values_are_kept(self):
        """Configured model, device, compute type and decoding carry over unchanged."""
        settings = WhisperSettings(
            model="/models/erax-wow-turbo",
            device="cpu",
            compute_type="float32",
            beam_size=3,
            temperature="0.0,0.5",
            language="vi",
            vad_filter=False,
            max_new_tokens=64,
            cpu_threads=4,
        )

        options = WhisperOptions.from_settings(settings, Path("data"), cuda=ONE_GPU)

        assert (options.device, options.compute_type) == ("cpu", "float32")
        assert options.model == "/models/erax-wow-turbo"
        assert options.variant == "erax-wow-turbo"
        assert options.temperatures == (0.0, 0.5)
        assert (options.beam_size, options.language, options.max_new_tokens) == (3, "vi", 64)
        assert options.cpu_threads == 4

    def test_batching_needs_vad(self):
        """Batched inference without VAD is refused at construction."""
        with pytest.raises(ValueError, match="vad_filter"):
            WhisperOptions(model="small", device="cpu", compute_type="int8", vad_filter=False, batch_size=4)


class TestTranscribeKwargs:
    """What is passed to faster-whisper (and recorded as decoding params)."""

    def test_vad_parameters_only_with_vad(self):
        """VAD parameters are passed only when VAD is on."""
        on = WhisperOptions(model="small", device="cpu", compute_type="int8", vad_threshold=0.4)
        off = WhisperOptions(model="small", device="cpu", compute_type="int8", vad_filter=False)

        assert (
            on.transcribe_kwargs(language=None, word_timestamps=False)["vad_parameters"]["threshold"] == 0.4
        )
        assert "vad_parameters" not in off.transcribe_kwargs(language=None, word_timestamps=False)

    def test_values_are_json_ready(self):
        """Temperatures are a list, so the recorded params equal what was passed after a round trip."""
        options = WhisperOptions(model="small", device="cpu", compute_type="int8")

        kwargs = options.transcribe_kwargs(language="en", word_timestamps=True)

        assert kwargs["temperature"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
        assert (kwargs["language"], kwargs["word_timestamps"]) == ("en", True)
