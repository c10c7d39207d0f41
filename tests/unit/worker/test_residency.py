"""Model residency: sequential unloads after each use, resident keeps an LRU of loaded models."""

from __future__ import annotations

import pytest

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
