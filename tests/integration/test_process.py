"""Upload → queue → preprocess → ASR → stored result, over HTTP with a real worker process."""

from __future__ import annotations

import wave
from typing import TYPE_CHECKING

import av
import pytest

from tests.fixtures.paths import shared_audio
from tests.fixtures.polling import wait_for
from tests.fixtures.services import HEADERS_A

if TYPE_CHECKING:
    from pathlib import Path


def _resample_wav(source: Path, target: Path, rate: int) -> Path:
    """Write ``source`` as 16-bit mono WAV at ``rate`` (a telephone-rate input for the test)."""
    with av.open(str(source)) as inp, wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        for frame in inp.decode(audio=0):
            for chunk in resampler.resample(frame):
                out.writeframes(chunk.to_ndarray().tobytes())
        for chunk in resampler.resample(None):
            out.writeframes(chunk.to_ndarray().tobytes())
    return target


@pytest.fixture(scope="module")
def clip_8k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _resample_wav(shared_audio("jfk_16k.wav"), tmp_path_factory.mktemp("clips") / "jfk_8k.wav", 8000)


class TestRawTranscript:
    """features=raw_transcript reaches COMPLETE with segments, versions and metrics."""

    @pytest.mark.parametrize(
        ("clip", "duration"),
        [
            ("jfk.flac", 11.0),  # FLAC, 44.1 kHz stereo, 24-bit
            ("jfk_16k.wav", 11.0),  # WAV, 16 kHz mono
            ("8k", 11.0),  # WAV, 8 kHz mono, derived from jfk_16k.wav
            ("lhotse/common_voice_en_651325.mp3", 2.4),  # MP3
            ("stereo_diarization.wav", 5.0),  # WAV, 16 kHz stereo
        ],
    )
    def test_formats_complete(self, api, worker, clip_8k, clip, duration):
        """Each container and rate completes, and the measured duration matches the source."""
        path = clip_8k if clip == "8k" else shared_audio(clip)
        accepted = api.submit(path)
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert body["status"] == "PENDING"
        assert accepted.headers["Location"] == body["status_url"] == f"/v1/status/{body['task_id']}"

        status = api.wait(body["task_id"])
        assert status["status"] == "COMPLETE", status
        assert status["result_version"] == 1
        assert [s["name"] for s in status["stages"]] == ["preprocess", "transcribe"]
        assert all(s["status"] == "done" and s["attempts"] == 1 for s in status["stages"])

        results = status["results"]
        assert isinstance(results["raw_transcript"], str)
        segments = results["segments"]
        assert segments, "a transcript of speech has segments"
        for seg in segments:
            assert 0 <= seg["start"] <= seg["end"] <= duration + 0.5
            assert 0 <= seg["confidence"] <= 1
        assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)

        metrics = status["metrics"]
        assert metrics["input_duration_seconds"] == pytest.approx(duration, abs=0.15)
        assert metrics["processing_time_seconds"] > 0
        assert metrics["rtf"] == pytest.approx(
            metrics["processing_time_seconds"] / metrics["input_duration_seconds"], rel=0.01
        )
        assert 0 < metrics["vad_coverage"] <= 1

        asr = status["versions"]["asr_backend"]
        assert asr["name"] == "whisper"
        assert len(asr["checkpoint_hash"]) == 64
        assert asr["device"] == "cpu"
        assert asr["compute_type"] == "int8"
        assert asr["decoding_params"]["beam_size"] == 1

    def test_language_and_word_timestamps_reach_the_model(self, api, worker):
        """Per-request language and word_timestamps change the decoding."""
        accepted = api.submit(shared_audio("jfk_16k.wav"), language="en", word_timestamps="true")
        assert accepted.status_code == 202, accepted.text
        status = api.wait(accepted.json()["task_id"])
        assert status["status"] == "COMPLETE", status
        assert status["results"]["language"] == "en"
        params = status["versions"]["asr_backend"]["decoding_params"]
        assert params["language"] == "en"
        assert params["word_timestamps"] is True
        words = [w for s in status["results"]["segments"] for w in s.get("words") or []]
        assert words
        assert all(w["start"] <= w["end"] for w in words)

    def test_audio_removed_after_completion(self, api, worker, service_env):
        """Uploads are deleted once the task completes (MAIE_KEEP_AUDIO=false)."""
        from pathlib import Path

        accepted = api.submit(shared_audio("jfk_16k.wav"))
        task_id = accepted.json()["task_id"]
        assert api.wait(task_id)["status"] == "COMPLETE"
        # The worker removes the folder just after it stores the finished record: a poll may see
        # COMPLETE a moment before the folder is gone.
        folder = Path(service_env["MAIE_DATA_DIR"]) / "audio" / task_id
        gone = f"{folder} is still there after the task completed"
        wait_for(lambda: not folder.exists(), timeout_s=30, failure=gone)


class TestPolling:
    """Status polling is cheap: ETag, 304 and Retry-After."""

    def test_etag_and_not_modified(self, api, worker):
        accepted = api.submit(shared_audio("jfk_16k.wav"))
        task_id = accepted.json()["task_id"]
        api.wait(task_id)
        first = api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A)
        assert first.status_code == 200
        assert "Retry-After" not in first.headers, "a finished task needs no more polling"
        again = api.client.get(
            f"/v1/status/{task_id}", headers={**HEADERS_A, "If-None-Match": first.headers["ETag"]}
        )
        assert again.status_code == 304
        assert again.content == b""
        stale = api.client.get(f"/v1/status/{task_id}", headers={**HEADERS_A, "If-None-Match": '"stale"'})
        assert stale.status_code == 200

    def test_retry_after_while_running(self, api, worker):
        accepted = api.submit(shared_audio("mfa/acoustic_corpus.wav"))
        task_id = accepted.json()["task_id"]
        first = api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A)
        if first.json()["status"] not in {"COMPLETE", "FAILED"}:
            assert int(first.headers["Retry-After"]) >= 1
        api.wait(task_id)


class TestDiscovery:
    """Health, readiness, models, templates and the OpenAPI schema."""

    def test_health_reports_worker_and_queue(self, api, worker):
        api.wait(api.submit(shared_audio("jfk_16k.wav")).json()["task_id"])  # the worker is up by now
        body = api.client.get("/health").json()
        assert body["redis_connected"] is True
        assert body["worker_active"] is True
        assert body["status"] == "ok"
        assert isinstance(body["queue_depth"], int)
        assert api.client.get("/ready").status_code == 200

    def test_models_tell_the_truth(self, api):
        models = api.client.get("/v1/models", headers=HEADERS_A).json()["models"]
        whisper = next(m for m in models if m["backend_id"] == "whisper")
        assert whisper["available"] is True
        assert whisper["device"] == "cpu"
        assert "word_timestamps" in whisper["capabilities"]

    def test_templates_listed_with_schema(self, api):
        templates = api.client.get("/v1/templates", headers=HEADERS_A).json()["templates"]
        assert templates
        one = api.client.get(templates[0]["schema_url"], headers=HEADERS_A).json()
        assert one["template_id"] == templates[0]["template_id"]
        assert one["schema"]["type"] == "object"
        assert api.client.get("/v1/templates/nope", headers=HEADERS_A).status_code == 404

    def test_openapi_is_public_and_describes_the_contract(self, api):
        schema = api.client.get("/schema/openapi.json").json()
        assert "/v1/process" in schema["paths"]
        assert "/v1/status/{task_id}" in schema["paths"]
        assert schema["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
