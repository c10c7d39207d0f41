"""Model residency: load → process → unload per stage, or keep models loaded between tasks.

``sequential`` loads a model for its stage and unloads it in ``finally`` (and empties the CUDA cache
where torch is present), so an ASR model and an LLM never share a GPU. ``resident`` keeps loaded
models in a per-process LRU cache, so back-to-back tasks pay no load time; when the cache holds more
than ``max_models`` the least recently used one is unloaded.

Only one model stage runs at a time in a process: a GPU is shared by everything in it.

Which models are in memory is known here only: :meth:`ModelCache.labels` names them (those that
carry a ``model_label``, such as ``whisper:large``), and listeners added with
:meth:`ModelCache.on_change` hear of every load and unload, so the worker's heartbeat can tell
Redis (and ``GET /v1/models``) without polling.
"""

from __future__ import annotations

import gc
import importlib.util
import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, runtime_checkable

import structlog

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterator

__all__ = ["Labelled", "Loadable", "ModelCache", "free_accelerator_memory"]

log = structlog.get_logger(__name__)


class Loadable(Protocol):
    """What the cache needs of a model stage."""

    def load(self) -> None:
        """Load the model."""

    def unload(self) -> None:
        """Free the model."""

    def cache_key(self) -> Hashable:
        """Identity of the loaded model: equal keys can share one loaded instance."""


@runtime_checkable
class Labelled(Protocol):
    """A model stage that says which model variant it holds, as workers report it."""

    @property
    def model_label(self) -> str:
        """E.g. ``whisper:large`` (:func:`maie.pipeline.asr.base.model_label`)."""


StageT = TypeVar("StageT", bound=Loadable)


def free_accelerator_memory() -> None:
    """Collect garbage and, where torch is installed and CUDA is up, return cached GPU memory."""
    gc.collect()
    if importlib.util.find_spec("torch") is None:
        return
    import torch  # noqa: PLC0415 - optional dependency, imported only where installed

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class ModelCache:
    """Per-process holder of model stages under one residency policy."""

    def __init__(self, mode: Literal["sequential", "resident"], *, max_models: int = 2) -> None:
        self.mode = mode
        self.max_models = max_models
        self._models: OrderedDict[Hashable, Loadable] = OrderedDict()
        #: The model a sequential stage holds while it runs.
        self._current: Loadable | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every load and unload (it must be quick and must not raise)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def labels(self) -> list[str]:
        """The labels of the models in memory now, most recently used last."""
        # Read from the heartbeat's thread without the lock (held for a whole stage): a snapshot.
        current = self._current
        held = [*tuple(self._models.values()), *([current] if current is not None else [])]
        return [model.model_label for model in held if isinstance(model, Labelled)]

    @contextmanager
    def use(self, stage: StageT) -> Iterator[StageT]:
        """Yield ``stage`` loaded (or an already-loaded equal one in resident mode)."""
        with self._lock:
            if self.mode == "sequential":
                stage.load()
                self._current = stage
                self._changed()
                try:
                    yield stage
                finally:
                    self._current = None
                    stage.unload()
                    free_accelerator_memory()
                    self._changed()
                return
            yield self._resident(stage)

    def _resident(self, stage: StageT) -> StageT:
        key = stage.cache_key()
        cached = self._models.pop(key, None)
        changed = cached is None
        if cached is None:
            log.info("model.loading", key=str(key))
            stage.load()
            cached = stage
        else:
            log.debug("model.reused", key=str(key))
        self._models[key] = cached
        while len(self._models) > self.max_models:
            old_key, old = self._models.popitem(last=False)
            log.info("model.evicted", key=str(old_key))
            old.unload()
            free_accelerator_memory()
        if changed:
            self._changed()
        # The cached instance was built from equal options (same key), so it is of stage's type.
        return cached  # type: ignore[return-value]

    def clear(self) -> None:
        """Unload every resident model."""
        with self._lock:
            while self._models:
                _, model = self._models.popitem()
                model.unload()
            free_accelerator_memory()
        self._changed()
