"""The error tree: one definition of what is permanent, which everything else follows."""

from __future__ import annotations

import pytest

from maie import errors
from maie.errors import PERMANENT_ERRORS, MaieError, PermanentError, TransientError, is_permanent


def _tree(cls: type[MaieError]) -> list[type[MaieError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _tree(child))]


#: Every error class MAIE defines (subclasses from anywhere in the package included).
TREE = [cls for cls in _tree(MaieError) if cls.__module__.startswith("maie.")]


def _instance(cls: type[MaieError]) -> MaieError:
    if cls in {errors.QueueFullError, errors.RateLimitedError}:
        return cls("x", retry_after_s=1)
    if cls in {errors.FetchHttpError, errors.FetchHttpUnavailableError}:
        return cls("x", http_status=503)
    return cls("x")


class TestPermanence:
    @pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
    def test_retryable_is_the_opposite_of_permanent(self, cls):
        """No class can say it is retryable while ``throws=`` fails it at once, or the reverse."""
        exc = _instance(cls)
        assert exc.retryable is not is_permanent(exc)
        assert is_permanent(exc) is isinstance(exc, PERMANENT_ERRORS)

    @pytest.mark.parametrize("cls", TREE[1:], ids=lambda c: c.__name__)
    def test_every_concrete_error_chose_a_side(self, cls):
        """Each error the service raises is permanent or transient, never only a bare MaieError."""
        assert issubclass(cls, PermanentError | TransientError)

    def test_memory_error_is_permanent_and_runtime_error_is_not(self):
        assert is_permanent(MemoryError())
        assert not is_permanent(RuntimeError("x"))
