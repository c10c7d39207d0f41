"""The ASR registry: metadata, real availability checks, caching, and the factory."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from maie.config import Settings
from maie.errors import BackendUnavailableError, UnprocessableError
from maie.hardware import cuda_available
from maie.pipeline.asr import Availability, BackendRegistry, BackendSpec, WhisperBackend
from maie.pipeline.asr import registry as registry_module
from maie.pipeline.asr.registry import create, describe, ensure_available, get_spec


def settings_for(data_dir, **env) -> Settings:
    """Settings from an explicit environment (no .env, nothing from the host)."""
    values = {"MAIE_DATA_DIR": str(data_dir), "MAIE_WHISPER_DEVICE": "cpu", **env}
    return Settings.from_env(values, env_file=None)


def whisper_info(settings):
    (info,) = [m for m in describe(settings, refresh=True) if m.backend_id == "whisper"]
    return info


@pytest.fixture
def no_hub(monkeypatch):
    """Forbid the model hub, as an air-gapped host would."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def cached_tiny(tiny_whisper_dir, tmp_path):
    """A data dir whose download cache holds the tiny model under the name ``tiny``.

    Laid out the way huggingface_hub stores a snapshot, so faster-whisper finds it offline.
    """
    repo = tmp_path / "models" / "models--Systran--faster-whisper-tiny"
    revision = "0" * 40
    shutil.copytree(tiny_whisper_dir, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return tmp_path


class TestSpecs:
    """Registered backends and their metadata."""

    def test_whisper_is_registered(self):
        """whisper has its capabilities, languages and hardware."""
        spec = get_spec("whisper")

        assert {"word_timestamps", "language_detection", "vad", "long_form"} <= set(spec.capabilities)
        assert spec.languages is not None
        assert {"en", "vi"} <= set(spec.languages)
        assert set(spec.hardware) == {"cuda", "cpu"}

    def test_unknown_backend(self):
        """An unknown id is a 422 naming the known backends."""
        with pytest.raises(BackendUnavailableError, match="whisper") as caught:
            get_spec("nope")
        assert caught.value.status_code == 422
        assert caught.value.extra["known_backends"] == ["whisper", "pocketsphinx", "chunkformer"]

    def test_duplicate_registration(self):
        """Registering an id twice is a programming error."""
        registry = BackendRegistry([get_spec("whisper")])
        with pytest.raises(ValueError, match="already registered"):
            registry.register(get_spec("whisper"))

    def test_create_builds_an_unloaded_backend(self, tiny_whisper_dir, tmp_path):
        """create() returns the backend with options from settings, without loading anything."""
        settings = settings_for(
            tmp_path, MAIE_WHISPER_MODEL=str(tiny_whisper_dir), MAIE_WHISPER_BEAM_SIZE="2"
        )

        backend = create("whisper", settings)

        assert isinstance(backend, WhisperBackend)
        assert not backend.loaded
        assert backend.options.beam_size == 2
        assert backend.options.download_root == tmp_path / "models"

    def test_pipeline_stays_free_of_edge_libraries(self):
        """Importing the ASR package pulls in neither the HTTP/queue edge nor faster-whisper."""
        code = (
            "import sys, maie.pipeline.asr\n"
            "bad = {'litestar', 'dramatiq', 'redis', 'faster_whisper', 'torch'} & set(sys.modules)\n"
            "assert not bad, bad\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True)


class TestVariants:
    """MAIE_WHISPER_MODELS: several Whisper models, each checked, built and recorded by its name."""

    def test_each_variant_is_checked_and_sized(self, tiny_whisper_dir, tmp_path):
        """Every variant is listed, default first, with its own availability and size on disk."""
        models = f"fast={tiny_whisper_dir},gone={tmp_path / 'nowhere'}"
        info = whisper_info(settings_for(tmp_path, MAIE_WHISPER_MODELS=models))

        assert info.default_variant == "fast"
        assert info.variants is not None
        fast, gone = info.variants
        assert (fast.name, fast.default, fast.available, fast.model) == (
            "fast",
            True,
            True,
            tiny_whisper_dir.name,
        ), "the folder's name: the server's folders stay private"
        assert fast.size_bytes == sum(p.stat().st_size for p in tiny_whisper_dir.rglob("*") if p.is_file())
        assert (gone.name, gone.default, gone.available, gone.size_bytes) == ("gone", False, False, None)
        assert "MAIE_WHISPER_MODELS" in (gone.unavailable_reason or "")
        assert not fast.loaded, "loaded-ness is the workers' to report (GET /v1/models adds it)"

    def test_a_variant_loads_and_records_its_name(self, tiny_whisper_dir, tmp_path):
        """The variant a request names is the model built, and its name is what results record."""
        registry = registry_module.REGISTRY
        settings = settings_for(
            tmp_path,
            MAIE_WHISPER_MODELS=f"a={tiny_whisper_dir},b={tiny_whisper_dir}",
            MAIE_WHISPER_BEAM_SIZE="1",
        )
        chosen = registry.variant("whisper", settings, "b")
        assert chosen is not None
        with registry.create("whisper", chosen.settings) as backend:
            assert isinstance(backend, WhisperBackend)
            assert backend.version_info().model_variant == "b"
            assert backend.model_label == "whisper:b"
        default = registry.variant("whisper", settings, None)
        assert default is not None
        assert default.name == "a"
        assert registry.create("whisper", default.settings).cache_key() != backend.cache_key()

    def test_unknown_names_are_refused_with_the_known_ones(self, tiny_whisper_dir, tmp_path):
        settings = settings_for(tmp_path, MAIE_WHISPER_MODELS=f"a={tiny_whisper_dir},b={tiny_whisper_dir}")

        with pytest.raises(UnprocessableError, match="known models: a, b") as caught:
            registry_module.REGISTRY.variant("whisper", settings, "large")
        assert caught.value.extra == {"known_models": ["a", "b"]}

    def test_backends_without_variants_refuse_a_model(self, tmp_path):
        settings = settings_for(tmp_path)

        assert registry_module.REGISTRY.variant("pocketsphinx", settings, None) is None
        with pytest.raises(UnprocessableError, match="no model variants"):
            registry_module.REGISTRY.variant("pocketsphinx", settings, "en-us")


class TestAvailability:
    """``describe()`` reports what a real check found."""

    def test_local_model_folder_is_available(self, tiny_whisper_dir, tmp_path):
        """A CTranslate2 folder with model.bin on a usable device is available."""
        info = whisper_info(settings_for(tmp_path, MAIE_WHISPER_MODEL=str(tiny_whisper_dir)))

        assert info.available
        assert info.unavailable_reason is None
        assert (info.device, info.compute_type) == ("cpu", "int8")
        assert info.default_variant == tiny_whisper_dir.name, "named after its folder, as results record it"
        assert "word_timestamps" in info.capabilities
        weights = sum(p.stat().st_size for p in tiny_whisper_dir.rglob("*") if p.is_file())
        assert info.size_bytes == weights
        assert info.variants is not None
        assert [(v.name, v.model, v.default) for v in info.variants] == [
            (tiny_whisper_dir.name, tiny_whisper_dir.name, True)
        ]

    def test_a_model_folder_is_shown_by_its_name(self, tmp_path):
        """``default_variant`` of a backend configured with an absolute folder is the folder's name."""
        folder = tmp_path / "models" / "chunkformer-large-vie"
        settings = settings_for(tmp_path, MAIE_CHUNKFORMER_MODEL=str(folder))
        (info,) = [m for m in describe(settings, refresh=True) if m.backend_id == "chunkformer"]

        assert info.default_variant == "chunkformer-large-vie"

    def test_missing_folder(self, tmp_path):
        """A folder path that does not exist is reported, with the variable to fix."""
        info = whisper_info(settings_for(tmp_path, MAIE_WHISPER_MODEL=str(tmp_path / "nowhere")))

        assert not info.available
        assert info.unavailable_reason is not None
        assert "does not exist" in info.unavailable_reason
        assert "MAIE_WHISPER_MODEL" in info.unavailable_reason

    @pytest.mark.usefixtures("no_hub")
    def test_name_not_cached_offline(self, tmp_path):
        """A model name not in data/models with the hub forbidden says what to do."""
        info = whisper_info(settings_for(tmp_path, MAIE_WHISPER_MODEL="small"))

        assert not info.available
        reason = info.unavailable_reason or ""
        assert "'small' is not in" in reason
        assert "HF_HUB_OFFLINE" in reason
        assert "local CTranslate2 folder" in reason

    def test_name_not_cached_hub_unreachable(self, tmp_path, monkeypatch):
        """With the hub unreachable (a closed local port stands in), the name is unavailable."""
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")

        info = whisper_info(settings_for(tmp_path, MAIE_WHISPER_MODEL="small"))

        assert not info.available
        assert "cannot be reached" in (info.unavailable_reason or "")

    @pytest.mark.usefixtures("no_hub")
    def test_name_in_download_cache(self, cached_tiny):
        """A model name already in data/models is available offline, and loads by name."""
        settings = settings_for(cached_tiny, MAIE_WHISPER_MODEL="tiny", MAIE_WHISPER_BEAM_SIZE="1")

        assert whisper_info(settings).available
        with create("whisper", settings) as backend:
            assert backend.version_info().model_variant == "tiny"
            # Its path inside the cache: names model and revision, not the server's folders.
            shown = backend.version_info().model_path
            assert shown == f"models--Systran--faster-whisper-tiny/snapshots/{'0' * 40}"

    @pytest.mark.usefixtures("no_hub")
    def test_unknown_model_name(self, tmp_path):
        """A value that is neither a folder nor a known name is reported as such."""
        info = whisper_info(settings_for(tmp_path, MAIE_WHISPER_MODEL="no-such-size"))

        assert not info.available
        assert "neither a local folder nor a known model name" in (info.unavailable_reason or "")

    def test_folder_without_model_bin(self, tmp_path):
        """A folder that is not a CTranslate2 conversion is reported."""
        folder = tmp_path / "hf-checkpoint"
        folder.mkdir()

        info = whisper_info(settings_for(tmp_path, MAIE_WHISPER_MODEL=str(folder)))

        assert not info.available
        assert "model.bin" in (info.unavailable_reason or "")

    @pytest.mark.skipif(cuda_available(), reason="this host has CUDA")
    def test_forced_cuda_on_cpu_host(self, tiny_whisper_dir, tmp_path):
        """device=cuda where CUDA is not usable is unavailable, with the setting to change."""
        settings = settings_for(
            tmp_path, MAIE_WHISPER_MODEL=str(tiny_whisper_dir), MAIE_WHISPER_DEVICE="cuda"
        )

        info = whisper_info(settings)

        assert not info.available
        assert info.device == "cuda"
        assert "MAIE_WHISPER_DEVICE" in (info.unavailable_reason or "")
        with pytest.raises(BackendUnavailableError, match="not available"):
            ensure_available("whisper", settings)

    def test_ensure_available(self, tiny_whisper_dir, tmp_path):
        """ensure_available() returns the info of a usable backend."""
        settings = settings_for(tmp_path, MAIE_WHISPER_MODEL=str(tiny_whisper_dir))

        assert ensure_available("whisper", settings).available


class TestAvailabilityCache:
    """Checks are cached per settings for a while."""

    @pytest.fixture
    def counted(self):
        probes: list[object] = []

        def probe(settings):
            probes.append(settings)
            return Availability(variant="v", device="cpu", compute_type="int8")

        spec = BackendSpec(
            backend_id="fake",
            name="Fake",
            description="A test double that counts checks.",
            capabilities=(),
            languages=None,
            hardware=("cpu",),
            factory=lambda _settings: pytest.fail("not built"),
            probe=probe,
        )
        now = [0.0]
        registry = BackendRegistry([spec], ttl_s=60, clock=lambda: now[0])
        return registry, probes, now

    def test_reused_within_ttl(self, counted, tmp_path):
        """A second describe within the TTL does not check again; after it, it does."""
        registry, probes, now = counted
        settings = settings_for(tmp_path)

        registry.describe(settings)
        now[0] = 59
        registry.describe(settings)
        assert len(probes) == 1
        now[0] = 61
        registry.describe(settings)
        assert len(probes) == 2

    def test_refresh_and_other_settings_check_again(self, counted, tmp_path):
        """refresh=True and different settings bypass the cached answer."""
        registry, probes, _ = counted

        registry.describe(settings_for(tmp_path))
        registry.describe(settings_for(tmp_path), refresh=True)
        registry.describe(settings_for(tmp_path / "other"))
        assert len(probes) == 3

    def test_default_registry_ttl(self):
        """The process-wide registry caches for about a minute."""
        assert registry_module.AVAILABILITY_TTL_S == 60
