"""Model residency: sequential unloads after each use, resident keeps an LRU of loaded models."""

from __future__ import annotations

import pytest

from maie.config import Settings
from maie.pipeline.asr.registry import REGISTRY
from maie.worker.residency import ModelCache


class FakeModel:
    """Test double of a model stage: records load/unload calls instead of holding weights."""

    def __init__(self, key: str, log: list[str]) -> None:
        self.key = key
        self.log = log
        self.loaded = False

    def load(self) -> None:
        self.loaded = True
        self.log.append(f"load {self.key}")

    def unload(self) -> None:
        self.loaded = False
        self.log.append(f"unload {self.key}")

    def cache_key(self) -> str:
        return self.key


class TestSequential:
    def test_unloads_after_each_use_even_on_error(self):
        log: list[str] = []
        cache = ModelCache("sequential")
        with cache.use(FakeModel("a", log)) as model:
            assert model.loaded
        with pytest.raises(RuntimeError), cache.use(FakeModel("a", log)):
            raise RuntimeError("stage failed")
        assert log == ["load a", "unload a", "load a", "unload a"]


class TestResident:
    def test_reuses_loaded_model(self):
        log: list[str] = []
        cache = ModelCache("resident")
        first = FakeModel("a", log)
        with cache.use(first) as model:
            assert model is first
        with cache.use(FakeModel("a", log)) as model:
            assert model is first, "an equal model is reused, not loaded again"
        assert log == ["load a"]

    def test_evicts_least_recently_used(self):
        log: list[str] = []
        cache = ModelCache("resident", max_models=2)
        for key in ["a", "b", "a", "c"]:
            with cache.use(FakeModel(key, log)):
                pass
        assert log == ["load a", "load b", "load c", "unload b"]
        cache.clear()
        assert sorted(log[-2:]) == ["unload a", "unload c"]


class TestVariants:
    """Model variants of one backend are models of their own: held side by side within the limit."""

    def test_several_whisper_variants_stay_loaded_within_the_limit(self, tiny_whisper_dir, tmp_path):
        models = ",".join(f"{name}={tiny_whisper_dir}" for name in ("a", "b", "c"))
        env = {"MAIE_DATA_DIR": str(tmp_path), "MAIE_WHISPER_DEVICE": "cpu", "MAIE_WHISPER_MODELS": models}
        settings = Settings.from_env(env, env_file=None)
        cache = ModelCache("resident", max_models=2)
        changes: list[list[str]] = []
        cache.on_change(lambda: changes.append(cache.labels()))

        def use(name: str) -> object:
            variant = REGISTRY.variant("whisper", settings, name)
            assert variant is not None
            with cache.use(REGISTRY.create("whisper", variant.settings)) as backend:
                assert backend.loaded
                return backend

        first_a, first_b = use("a"), use("b")
        assert cache.labels() == ["whisper:a", "whisper:b"], "two variants held side by side"
        assert use("a") is first_a, "a variant in memory is reused"
        use("c")
        assert cache.labels() == ["whisper:a", "whisper:c"], "the least recently used variant went"
        assert not first_b.loaded  # type: ignore[attr-defined]
        assert changes == [["whisper:a"], ["whisper:a", "whisper:b"], ["whisper:a", "whisper:c"]]
        cache.clear()
        assert cache.labels() == []
        assert changes[-1] == []

    def test_sequential_mode_reports_the_model_only_while_it_runs(self, tiny_whisper_dir, tmp_path):
        env = {
            "MAIE_DATA_DIR": str(tmp_path),
            "MAIE_WHISPER_DEVICE": "cpu",
            "MAIE_WHISPER_MODEL": str(tiny_whisper_dir),
        }
        settings = Settings.from_env(env, env_file=None)
        cache = ModelCache("sequential")
        changes: list[list[str]] = []
        cache.on_change(lambda: changes.append(cache.labels()))

        with cache.use(REGISTRY.create("whisper", settings)):
            assert cache.labels() == [f"whisper:{tiny_whisper_dir.name}"]
        assert cache.labels() == []
        assert changes == [[f"whisper:{tiny_whisper_dir.name}"], []]
