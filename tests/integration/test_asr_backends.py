"""ASR backends over HTTP with real workers: discovery, per-request options, fallbacks."""

from __future__ import annotations

import shutil

import pytest

from tests.fixtures.paths import shared_audio
from tests.fixtures.postgres import fresh_database
from tests.fixtures.services import HEADERS_A

pytest.importorskip("pocketsphinx", reason="the pocketsphinx extra is not installed (uv sync installs it)")


def models(api) -> dict[str, dict]:
    response = api.client.get("/v1/models", headers=HEADERS_A)
    assert response.status_code == 200
    return {m["backend_id"]: m for m in response.json()["models"]}


class TestModelsTellTheTruth:
    """Every backend is listed with what a real check found on this host."""

    def test_every_backend_with_a_checked_answer(self, api):
        found = models(api)

        assert set(found) == {"whisper", "pocketsphinx", "chunkformer"}
        assert found["whisper"]["available"] is True  # the tiny model folder is configured
        pocketsphinx = found["pocketsphinx"]
        assert pocketsphinx["available"] is True
        assert (pocketsphinx["device"], pocketsphinx["languages"]) == ("cpu", ["en"])
        assert "word_timestamps" in pocketsphinx["capabilities"]
        assert "custom_vocabulary" not in pocketsphinx["capabilities"]
        chunkformer = found["chunkformer"]
        # Either the extra is missing, or (HF_HUB_OFFLINE, nothing downloaded) its model is.
        assert chunkformer["available"] is False
        assert (
            "extra" in chunkformer["unavailable_reason"]
            or "MAIE_CHUNKFORMER_MODEL" in (chunkformer["unavailable_reason"])
        )
        assert chunkformer["device"] in {"cpu", "cuda"}

    def test_unavailable_backend_is_refused_with_the_reason(self, api):
        reason = models(api)["chunkformer"]["unavailable_reason"]

        response = api.submit(shared_audio("jfk_16k.wav"), asr_backend="chunkformer")

        assert response.status_code == 422
        assert reason in response.json()["detail"]


class TestRequestOptions:
    """hotwords, initial_prompt and beam_size: validated at submit, used by the worker."""

    def test_whisper_options_reach_the_decoder(self, api, worker):
        accepted = api.submit(
            shared_audio("jfk_16k.wav"),
            language="en",
            hotwords="Kennedy, inaugural",
            initial_prompt="Inaugural address, 1961.",
            beam_size="2",
        )
        assert accepted.status_code == 202, accepted.text

        status = api.wait(accepted.json()["task_id"])

        assert status["status"] == "COMPLETE", status
        params = status["versions"]["asr_backend"]["decoding_params"]
        assert params["hotwords"] == "Kennedy, inaugural"
        assert params["initial_prompt"] == "Inaugural address, 1961."
        assert params["beam_size"] == 2

    @pytest.mark.parametrize(
        ("fields", "status_code", "message"),
        [
            ({"beam_size": "0"}, 400, "beam_size must be between 1 and 20"),
            ({"beam_size": "21"}, 400, "beam_size must be between 1 and 20"),
            ({"beam_size": "wide"}, 400, "beam_size"),
            ({"hotwords": "x" * 1001}, 400, "at most 1000"),
            ({"initial_prompt": "  "}, 400, "initial_prompt is empty"),
            ({"asr_backend": "pocketsphinx", "hotwords": "MAIE"}, 422, "does not support hotwords"),
            ({"asr_backend": "pocketsphinx", "beam_size": "3"}, 422, "does not support beam_size"),
            ({"asr_backend": "pocketsphinx", "language": "de"}, 422, "does not transcribe language 'de'"),
            ({"language": "zz"}, 422, "does not transcribe language 'zz'"),
            ({"language": "english"}, 400, "or 'auto' to detect it"),
        ],
    )
    def test_refused_at_submit(self, api, fields, status_code, message):
        response = api.submit(shared_audio("jfk_16k.wav"), **fields)

        assert response.status_code == status_code, response.text
        assert message in response.text

    def test_language_auto_is_detection(self, api, worker):
        """``language=auto`` asks for detection, as leaving it out does (it was refused with 400)."""
        accepted = api.submit(shared_audio("jfk_16k.wav"), language="Auto")
        assert accepted.status_code == 202, accepted.text
        status = api.wait(accepted.json()["task_id"])
        unnamed = api.wait(api.submit(shared_audio("jfk_16k.wav")).json()["task_id"])

        assert status["status"] == unnamed["status"] == "COMPLETE", status
        assert status["versions"]["asr_backend"]["decoding_params"]["language"] is None, "none was forced"
        assert status["results"]["language"], "a language was detected"
        assert status["results"]["language"] == unnamed["results"]["language"], "as with no language"

    def test_pocketsphinx_word_timestamps(self, api, worker):
        accepted = api.submit(shared_audio("jfk_16k.wav"), asr_backend="pocketsphinx", word_timestamps="true")
        status = api.wait(accepted.json()["task_id"])

        assert status["status"] == "COMPLETE", status
        words = [w for s in status["results"]["segments"] for w in s["words"]]
        assert words
        assert all(0 <= w["start"] <= w["end"] <= 11.0 for w in words)


@pytest.fixture
def broken_whisper_env(service_env, tiny_whisper_dir, tmp_path):
    """A private Redis and a Whisper folder whose weights CTranslate2 cannot read.

    The folder passes the availability check (model.bin is there), so submissions are accepted
    and the failure happens where it does in production: when the worker loads the model.
    """
    from maie.up.redis import EmbeddedRedis

    broken = tmp_path / "broken-whisper"
    shutil.copytree(tiny_whisper_dir, broken)
    (broken / "model.bin").write_bytes(b"truncated download")
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    env = {
        **service_env,
        "MAIE_REDIS_URL": server.url,
        "MAIE_DATABASE_URL": fresh_database(service_env["MAIE_DATABASE_URL"]),
        "MAIE_DATA_DIR": str(tmp_path / "data"),
        "MAIE_WHISPER_MODEL": str(broken),
        "MAIE_ASR_FALLBACK": "chunkformer,pocketsphinx",
    }
    yield env
    server.stop()


class TestFallbackChain:
    """The preferred backend fails to load: the configured chain takes over, and says so."""

    def test_broken_whisper_falls_back_to_pocketsphinx(self, broken_whisper_env, start_process):
        api = start_process("api", broken_whisper_env)
        worker = start_process("worker", broken_whisper_env)

        accepted = api.submit(shared_audio("jfk.flac"))
        assert accepted.status_code == 202, accepted.text
        status = api.wait(accepted.json()["task_id"])

        assert status["status"] == "COMPLETE", status
        assert status["asr_backend"] == "whisper"  # what was asked
        asr = status["versions"]["asr_backend"]
        assert asr["name"] == "pocketsphinx"  # what ran
        fallback = asr["fallback"]
        assert fallback.startswith("whisper→chunkformer→pocketsphinx: ")
        assert "whisper: cannot load Whisper model" in fallback
        assert "chunkformer: " in fallback  # unavailable here, skipped with its reason
        assert "country" in status["results"]["raw_transcript"]
        assert '"event": "asr.fallback"' in worker.log()
        api.stop()
        worker.stop()


class TestBatchUploads:
    """POST /v1/batches takes the same ASR options, for every recording of the batch."""

    def test_options_apply_to_every_task_of_a_batch(self, api, worker):
        clip = shared_audio("jfk_16k.wav").read_bytes()
        response = api.client.post(
            "/v1/batches",
            headers=HEADERS_A,
            files=[("file", ("a.wav", clip)), ("file", ("b.wav", clip))],
            data={"features": "raw_transcript", "hotwords": "Kennedy", "beam_size": "2", "language": "en"},
        )
        assert response.status_code == 202, response.text

        statuses = [api.wait(task_id) for task_id in response.json()["task_ids"]]

        for status in statuses:
            assert status["status"] == "COMPLETE", status
            params = status["versions"]["asr_backend"]["decoding_params"]
            assert (params["hotwords"], params["beam_size"]) == ("Kennedy", 2)

    def test_refused_for_the_whole_batch(self, api):
        clip = shared_audio("jfk_16k.wav").read_bytes()
        response = api.client.post(
            "/v1/batches",
            headers=HEADERS_A,
            files=[("file", ("a.wav", clip))],
            data={"features": "raw_transcript", "asr_backend": "pocketsphinx", "hotwords": "Kennedy"},
        )

        assert response.status_code == 422
        assert "does not support hotwords" in response.text
