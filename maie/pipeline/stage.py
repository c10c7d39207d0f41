"""The stage contract: ``load()`` → ``process(input)`` → ``unload()``.

A stage's constructor takes a frozen options Struct and does no I/O; ``load()`` acquires what the
stage needs (a model, a file handle), ``process()`` does the work and returns a materialised
result, ``unload()`` releases everything and is safe to call twice. Used as a context manager, the
stage is unloaded in ``finally``, even when ``process()`` raises.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Generic, Self, TypeVar

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Stage"]

OptionsT = TypeVar("OptionsT")
InputT = TypeVar("InputT")
OutputT = TypeVar("OutputT")


class Stage(ABC, Generic[OptionsT, InputT, OutputT]):
    """Base of every pipeline stage."""

    def __init__(self, options: OptionsT) -> None:
        self.options = options

    def load(self) -> None:
        """Acquire what ``process`` needs. The default has nothing to acquire."""

    @abstractmethod
    def process(self, data: InputT) -> OutputT:
        """Run the stage on ``data`` and return a fully materialised result."""

    def unload(self) -> None:
        """Release what ``load`` acquired. Safe to call when nothing is loaded."""

    def __enter__(self) -> Self:
        self.load()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unload()
