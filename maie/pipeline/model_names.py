"""What clients see of a model's location: a name or a relative path, never this machine's folders.

Results (``versions.asr_backend.model_path``, ``decoding_params.lm`` and ``dictionary``) and
``GET /v1/models`` (``default_variant``, a variant's ``model``) name the model files a task used.
An absolute path there tells every client how the server's disk is laid out; the full path is
logged when the model loads (``asr.loaded``), which is where an operator looks. A client gets:

- a model name or a relative path unchanged (``small``, ``Systran/faster-whisper-small``);
- a Hugging Face cache folder as its path inside the cache
  (``models--Systran--faster-whisper-small/snapshots/<revision>``): names the model and revision;
- any other absolute path as its last component (the folder or file name).
"""

from __future__ import annotations

from pathlib import PurePath, PurePosixPath, PureWindowsPath
from typing import Final

__all__ = ["public_location"]

#: How a Hugging Face hub cache names a model's folder (``models--<org>--<name>``).
_HUB_FOLDER_PREFIX: Final = "models--"


def _as_path(location: str) -> PurePath | None:
    """``location`` as an absolute path (POSIX, Windows or ``~``-rooted), or None if it is not one."""
    for flavour in (PurePosixPath, PureWindowsPath):
        path = flavour(location)
        if path.is_absolute():
            return path
    if location.startswith("~"):
        return PurePosixPath(location)
    return None


def public_location(location: str | PurePath) -> str:
    """The part of a model's location that a client may see.

    Args:
        location: A model name, a relative path, or an absolute path on this machine.

    Returns:
        ``location`` itself unless it is absolute; else its path inside a Hugging Face cache, or
        its last component.
    """
    text = str(location)
    path = _as_path(text)
    if path is None:
        return text
    parts = path.parts
    for index, part in enumerate(parts):
        if part.startswith(_HUB_FOLDER_PREFIX):
            return "/".join(parts[index:])
    return path.name or text
