"""Settings from the environment and .env, with errors that name the variable."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from maie.config import Settings, known_variables
from maie.errors import ConfigError


class TestFromEnv:
    """Building Settings."""

    def test_defaults_follow_the_design_table(self):
        """With nothing set, the defaults of DESIGN §6 hold."""
        s = Settings.from_env({}, env_file=None)
        assert (s.server.host, s.server.port) == ("127.0.0.1", 8000)
        assert s.server.max_file_size_mb == 500
        assert s.server.max_queue_depth == 50
        assert s.redis.url is None
        assert s.redis.results_db == 1
        assert s.storage.data_dir == Path("data")
        assert (s.audio.min_duration_s, s.audio.max_duration_s) == (1.0, 14400.0)
        assert s.storage.result_ttl_s == 86400
        assert s.storage.keep_audio is False
        assert s.worker.model_residency is None  # resolved by the worker: sequential on GPU, resident on CPU
        assert s.asr.backend == "whisper"
        assert s.whisper.model is None
        assert (s.whisper.device, s.whisper.compute_type, s.whisper.beam_size) == ("auto", "auto", 5)
        assert s.llm.backend == "none"
        assert s.auth.webhook_secret is None

    def test_values_are_converted(self):
        s = Settings.from_env(
            {
                "MAIE_PORT": "9000",
                "MAIE_KEEP_AUDIO": "yes",
                "MAIE_DATA_DIR": "/srv/maie",
                "MAIE_MAX_FILE_SIZE_MB": "0.5",
                "MAIE_WHISPER_TEMPERATURE": "0, 0.4",
            },
            env_file=None,
        )
        assert s.server.port == 9000
        assert s.storage.keep_audio is True
        assert s.storage.data_dir == Path("/srv/maie")
        assert s.server.max_file_size_mb == 0.5
        assert s.whisper.temperatures() == (0.0, 0.4)

    def test_empty_values_count_as_unset(self):
        assert Settings.from_env({"MAIE_PORT": "", "MAIE_REDIS_URL": "  "}, env_file=None).server.port == 8000

    def test_env_file_under_environment(self, tmp_path):
        """The .env file fills in; the real environment wins."""
        env_file = tmp_path / ".env"
        env_file.write_text("MAIE_PORT=7000\nMAIE_HOST=0.0.0.0\n")
        s = Settings.from_env({"MAIE_PORT": "7100"}, env_file=env_file)
        assert s.server.port == 7100
        assert s.server.host == "0.0.0.0"  # noqa: S104 - the value under test

    @pytest.mark.parametrize(
        ("env", "message"),
        [
            ({"MAIE_PORT": "eighty"}, "MAIE_PORT='eighty': expected `int`"),
            ({"MAIE_PORT": "0"}, "MAIE_PORT='0': expected `int` >= 1"),
            ({"MAIE_MODEL_RESIDENCY": "always"}, "MAIE_MODEL_RESIDENCY='always': invalid enum value"),
            ({"MAIE_KEEP_AUDIO": "maybe"}, "MAIE_KEEP_AUDIO='maybe': expected `bool`"),
            ({"MAIE_MIN_DURATION_S": "5", "MAIE_MAX_DURATION_S": "2"}, "MAIE_MIN_DURATION_S must be smaller"),
            ({"MAIE_API_KEYS": "good,bad:"}, "MAIE_API_KEYS entries are 'key' or 'key:tenant'"),
            ({"MAIE_WHISPER_TEMPERATURE": "hot"}, "MAIE_WHISPER_TEMPERATURE must be comma-separated numbers"),
        ],
    )
    def test_invalid_values_name_the_variable(self, env, message):
        with pytest.raises(ConfigError, match="invalid configuration") as err:
            Settings.from_env(env, env_file=None)
        assert message in err.value.detail

    def test_every_problem_is_reported_at_once(self):
        with pytest.raises(ConfigError) as err:
            Settings.from_env({"MAIE_PORT": "x", "MAIE_WHISPER_BEAM_SIZE": "0"}, env_file=None)
        assert "MAIE_PORT" in err.value.detail
        assert "MAIE_WHISPER_BEAM_SIZE" in err.value.detail

    def test_unknown_variables_are_reported(self):
        s = Settings.from_env({"MAIE_WHISPER_MODLE": "small", "OTHER": "x"}, env_file=None)
        assert s.unknown_variables == ("MAIE_WHISPER_MODLE",)


class TestKeys:
    """API keys and tenants."""

    def test_tenants(self):
        s = Settings.from_env({"MAIE_API_KEYS": "a:acme, b ,c:globex"}, env_file=None)
        assert s.auth.tenants_by_key() == {"a": "acme", "b": "default", "c": "globex"}

    def test_secrets_are_redacted(self):
        s = Settings.from_env({"MAIE_API_KEYS": "topsecret", "MAIE_WEBHOOK_SECRET": "hush"}, env_file=None)
        text = str(s.redacted())
        assert "topsecret" not in text
        assert "hush" not in text


def test_env_example_is_current():
    """.env.example is what scripts/gen_env_example.py writes from the settings: every variable, no other."""
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("gen_env_example", root / "scripts" / "gen_env_example.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    example = (root / ".env.example").read_text()
    assert example == module.render(), "run: uv run python scripts/gen_env_example.py"
    listed = {
        line.lstrip("# ").split("=", 1)[0] for line in example.splitlines() if line.startswith("# MAIE_")
    }
    assert listed == known_variables()


class TestOperationsSettings:
    """Rate limits, decode limits and the worker's metrics endpoint."""

    @pytest.mark.parametrize(
        "value", ["120/minute", "20/second;1200/minute", "5 per hour", "off", "OFF", "0"]
    )
    def test_rate_limits_accepted(self, value):
        s = Settings.from_env({"MAIE_RATE_LIMIT": value, "MAIE_RATE_LIMIT_SUBMIT": value}, env_file=None)
        assert s.rate_limit.rate_limit == value

    @pytest.mark.parametrize("value", ["lots", "120", "120/fortnight", "-1/minute"])
    def test_bad_rate_limit_names_the_variable(self, value):
        with pytest.raises(ConfigError, match="MAIE_RATE_LIMIT_SUBMIT"):
            Settings.from_env({"MAIE_RATE_LIMIT_SUBMIT": value}, env_file=None)

    def test_decode_memory_limit(self):
        assert (
            Settings.from_env(
                {"MAIE_DECODE_MEMORY_LIMIT_MB": "0"}, env_file=None
            ).audio.decode_memory_limit_mb
            == 0
        )
        with pytest.raises(ConfigError, match="MAIE_DECODE_MEMORY_LIMIT_MB"):
            Settings.from_env({"MAIE_DECODE_MEMORY_LIMIT_MB": "32"}, env_file=None)

    def test_worker_metrics_port(self):
        assert Settings.from_env({}, env_file=None).worker.worker_metrics_port == 0
        with pytest.raises(ConfigError, match="MAIE_WORKER_METRICS_PORT"):
            Settings.from_env({"MAIE_WORKER_METRICS_PORT": "70000"}, env_file=None)


class TestAsrSettings:
    """Backends, fallback chain and batching are checked at start."""

    def test_fallback_chain_parsed_in_order_without_repeats(self):
        s = Settings.from_env({"MAIE_ASR_FALLBACK": " pocketsphinx, whisper,,pocketsphinx "}, env_file=None)
        assert s.asr.fallback_chain() == ("pocketsphinx", "whisper")
        assert Settings.from_env({}, env_file=None).asr.fallback_chain() == ()

    @pytest.mark.parametrize(
        ("env", "message"),
        [
            ({"MAIE_ASR_BACKEND": "whisperx"}, "MAIE_ASR_BACKEND='whisperx' is not an ASR backend"),
            ({"MAIE_ASR_FALLBACK": "pocketsphinx,vosk"}, "MAIE_ASR_FALLBACK names unknown backend(s) vosk"),
            ({"MAIE_ASR_BATCH_MAX_TASKS": "0"}, "MAIE_ASR_BATCH_MAX_TASKS"),
            (
                {"MAIE_WHISPER_BATCH_SIZE": "8", "MAIE_WHISPER_VAD_FILTER": "false"},
                "MAIE_WHISPER_BATCH_SIZE splits audio with VAD",
            ),
            ({"MAIE_WHISPER_LANGUAGE_DETECTION_SEGMENTS": "0"}, "MAIE_WHISPER_LANGUAGE_DETECTION_SEGMENTS"),
            ({"MAIE_WHISPER_HOTWORDS": "x" * 1001}, "MAIE_WHISPER_HOTWORDS"),
            ({"MAIE_POCKETSPHINX_VAD_MODE": "4"}, "MAIE_POCKETSPHINX_VAD_MODE"),
            ({"MAIE_CHUNKFORMER_DEVICE": "tpu"}, "MAIE_CHUNKFORMER_DEVICE"),
            ({"MAIE_CHUNKFORMER_LANGUAGE": "Vietnamese"}, "MAIE_CHUNKFORMER_LANGUAGE"),
            (
                {"MAIE_WHISPER_MODELS": "fast=small,slow"},
                "MAIE_WHISPER_MODELS must be name=folder-or-model-name",
            ),
            (
                {"MAIE_WHISPER_MODELS": "fast=small,fast=medium"},
                "MAIE_WHISPER_MODELS names fast more than once",
            ),
            ({"MAIE_WHISPER_MODELS": "a b=small"}, "MAIE_WHISPER_MODELS must be name="),
            (
                {"MAIE_WHISPER_MODELS": "fast=small", "MAIE_WHISPER_MODEL": "medium"},
                "set MAIE_WHISPER_MODELS or MAIE_WHISPER_MODEL, not both",
            ),
            ({"MAIE_FETCH_MAX_REDIRECTS": "31"}, "MAIE_FETCH_MAX_REDIRECTS"),
            ({"MAIE_FETCH_TOTAL_TIMEOUT_S": "0"}, "MAIE_FETCH_TOTAL_TIMEOUT_S"),
        ],
    )
    def test_invalid_values_fail_at_start(self, env, message):
        with pytest.raises(ConfigError, match=re.escape(message)):
            Settings.from_env(env, env_file=None)

    def test_whisper_variants_in_order_and_any_one_first(self):
        """MAIE_WHISPER_MODELS: name=model pairs, the first the default; each can be put first."""
        models = " fast = small , large=/models/large-v3 ,x.y_z-1=org/repo"
        whisper = Settings.from_env({"MAIE_WHISPER_MODELS": models}, env_file=None).whisper
        pairs = (("fast", "small"), ("large", "/models/large-v3"), ("x.y_z-1", "org/repo"))
        assert whisper.model_variants() == pairs
        assert whisper.with_default_variant("large").model_variants() == (pairs[1], pairs[0], pairs[2])
        with pytest.raises(KeyError):
            whisper.with_default_variant("medium")
        assert Settings.from_env({}, env_file=None).whisper.model_variants() == ()

    def test_known_backends_are_the_registered_ones(self):
        """The names the settings accept are exactly the registry's backends."""
        from maie.config import ASR_BACKENDS
        from maie.pipeline.asr.registry import REGISTRY

        assert list(ASR_BACKENDS) == REGISTRY.ids()
