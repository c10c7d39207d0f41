"""Import torchaudio under a CPU-only torch even when its wheel is a CUDA build.

ChunkFormer imports torchaudio, but only uses its pure-PyTorch parts (Kaldi-compatible filterbank
features). On the Python package index the Linux torchaudio wheels are CUDA builds: their compiled
extension links ``libtorch_cuda.so``, which a CPU build of torch (``torch==2.13.0+cpu``) does not
have, so a plain ``import torchaudio`` fails with ``OSError``.

torchaudio already knows how to run without its extension: when the library file is absent,
``torchaudio._extension.utils._load_lib`` returns ``False`` and the package falls back to pure
Python. :func:`import_torchaudio` makes the "present but cannot load under this torch" case take
that same documented path, and only that case: while torchaudio is being imported it wraps
``_load_lib`` so that an ``OSError`` from a CPU-only torch means "extension unavailable" instead
of a crash. Nothing on disk changes, a torchaudio whose extension loads (a CPU build from the
PyTorch index, or CUDA torch with CUDA torchaudio) is imported untouched, and the skip is logged.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import ModuleType

__all__ = ["import_torchaudio"]

#: The torchaudio module whose ``_load_lib`` decides whether the compiled extension is used.
_LOADER_MODULE = "torchaudio._extension.utils"

log = structlog.get_logger(__name__)


class _TolerantLoader(importlib.abc.Loader):
    """Runs the real loader of ``torchaudio._extension.utils``, then makes ``_load_lib`` tolerant."""

    def __init__(self, real: importlib.abc.Loader) -> None:
        self._real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._real.exec_module(module)
        original: Callable[[str], bool] = getattr(module, "_load_lib")  # noqa: B009 - set at runtime

        def load_lib(lib: str) -> bool:
            try:
                return original(lib)
            except OSError as exc:
                log.warning("torchaudio.extension_skipped", library=lib, reason=str(exc))
                return False

        setattr(module, "_load_lib", load_lib)  # noqa: B010 - the function torchaudio calls next


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``torchaudio._extension.utils`` normally and swaps in :class:`_TolerantLoader`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _LOADER_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _TolerantLoader(spec.loader)
        return spec


def import_torchaudio() -> Any:  # noqa: ANN401 - torchaudio is untyped
    """Import and return torchaudio, tolerating a CUDA-only extension under a CPU build of torch.

    Under a CUDA build of torch nothing is changed: a torchaudio that does not match it should fail
    loudly, as torchaudio intends.

    Raises:
        ImportError: if torch or torchaudio is not installed.
        OSError: if torchaudio's extension fails under a CUDA build of torch.
    """
    if "torchaudio" in sys.modules:
        return sys.modules["torchaudio"]
    import torch  # noqa: PLC0415 - optional extra

    if torch.version.cuda is not None:
        return importlib.import_module("torchaudio")
    finder = _Finder()
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module("torchaudio")
    except BaseException:
        # Leave no half-imported package behind: a later attempt must start from scratch.
        for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
            del sys.modules[name]
        raise
    finally:
        sys.meta_path.remove(finder)
