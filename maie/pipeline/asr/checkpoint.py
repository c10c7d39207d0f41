"""SHA-256 of model weights, so every result can say exactly which checkpoint produced it.

Hashing a 1.6 GB ``model.bin`` takes seconds, so hashes are cached twice: in this process, and on
disk in ``MAIE_DATA_DIR/cache/checkpoint-hashes.json`` so restarted workers and other workers on the
same volume skip the work. A cached hash is trusted only while the file's resolved path, size and
``mtime_ns`` are unchanged; replacing the weights changes at least the mtime, so they are hashed
again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

import structlog

__all__ = [
    "CACHE_FILE_NAME",
    "WEIGHT_FILE_NAMES",
    "checkpoint_hash",
    "clear_memory_cache",
    "file_sha256",
    "files_hash",
    "weight_files",
]

#: Name of the on-disk cache, kept under ``MAIE_DATA_DIR/cache``.
CACHE_FILE_NAME = "checkpoint-hashes.json"
#: Files that hold weights in a model folder (CTranslate2 writes one ``model.bin``).
WEIGHT_FILE_NAMES = ("model.bin",)
#: Bytes read per chunk while hashing; large enough to keep syscalls cheap, small enough for RAM.
_CHUNK_BYTES = 8 * 1024 * 1024
#: What a SHA-256 read back from the disk cache must look like to be trusted.
_HEX64 = re.compile(r"[0-9a-f]{64}")

log = structlog.get_logger(__name__)

#: (resolved path, size, mtime_ns) → hex digest, for this process.
_memo: dict[tuple[str, int, int], str] = {}
#: Guards ``_memo`` and the read-modify-write of the disk cache between worker threads.
_lock = threading.Lock()


def weight_files(model_dir: Path) -> list[Path]:
    """The weight files of a model folder, in a stable order.

    Args:
        model_dir: A model folder, e.g. a CTranslate2 conversion.

    Returns:
        The existing files among :data:`WEIGHT_FILE_NAMES`.

    Raises:
        FileNotFoundError: if the folder holds none of them.
    """
    files = [model_dir / name for name in WEIGHT_FILE_NAMES if (model_dir / name).is_file()]
    if not files:
        msg = f"{model_dir} holds no weight file ({', '.join(WEIGHT_FILE_NAMES)})"
        raise FileNotFoundError(msg)
    return files


def checkpoint_hash(model_dir: Path, *, cache_dir: Path | None = None) -> str:
    r"""SHA-256 identifying the weights in ``model_dir``.

    With a single weight file (the CTranslate2 case) this is that file's plain SHA-256, so it can be
    checked with ``sha256sum model.bin``. With several, it is the SHA-256 of their
    ``"<name> <sha256>\\n"`` lines in order.

    Args:
        model_dir: The model folder.
        cache_dir: Folder of the on-disk cache (``MAIE_DATA_DIR/cache``); ``None`` keeps the cache
            in memory only.

    Returns:
        64 lowercase hex characters.

    Raises:
        FileNotFoundError: if the folder holds no weight file.
    """
    return files_hash(weight_files(model_dir), cache_dir=cache_dir)


def files_hash(files: list[Path], *, cache_dir: Path | None = None) -> str:
    r"""SHA-256 identifying a set of model files, for models spread over several files.

    One file gives its plain SHA-256; several give the SHA-256 of their ``"<name> <sha256>\n"``
    lines in the order given, so the same files in the same order always hash the same.

    Args:
        files: The files, in a stable order.
        cache_dir: Folder of the on-disk cache (``MAIE_DATA_DIR/cache``); ``None`` keeps the cache
            in memory only.

    Returns:
        64 lowercase hex characters.

    Raises:
        FileNotFoundError: if a file is missing.
        ValueError: if ``files`` is empty.
    """
    if not files:
        msg = "files_hash() needs at least one file"
        raise ValueError(msg)
    cache_file = None if cache_dir is None else cache_dir / CACHE_FILE_NAME
    digests = [(path.name, file_sha256(path, cache_file=cache_file)) for path in files]
    if len(digests) == 1:
        return digests[0][1]
    lines = "".join(f"{name} {digest}\n" for name, digest in digests)
    return hashlib.sha256(lines.encode()).hexdigest()


def file_sha256(path: Path, *, cache_file: Path | None = None) -> str:
    """SHA-256 of one file, from the caches when its path, size and mtime are unchanged.

    Args:
        path: The file.
        cache_file: The JSON cache on disk, or ``None`` for the in-process cache only.

    Returns:
        64 lowercase hex characters.
    """
    resolved = path.resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key in _memo:
            return _memo[key]
        if cache_file is not None:
            cached = _read_cache(cache_file).get(key[0], {})
            digest = cached.get("sha256")
            fresh = cached.get("size") == key[1] and cached.get("mtime_ns") == key[2]
            if fresh and isinstance(digest, str) and _HEX64.fullmatch(digest):
                _memo[key] = digest
                return digest
    # Hash outside the lock: other threads asking about other files need not wait seconds.
    digest = _hash_file(resolved)
    with _lock:
        _memo[key] = digest
        if cache_file is not None:
            _write_entry(cache_file, key, digest)
    log.info("asr.checkpoint_hashed", path=key[0], size=key[1], sha256=digest)
    return digest


def clear_memory_cache() -> None:
    """Forget the in-process hashes (the disk cache is kept). For tests and long-lived tools."""
    with _lock:
        _memo.clear()


def _hash_file(path: Path) -> str:
    """Stream ``path`` through SHA-256 in chunks, never holding the file in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _read_cache(cache_file: Path) -> dict[str, dict[str, Any]]:
    """The disk cache, or an empty one when it is missing or unreadable.

    A corrupt cache only costs a re-hash, so it is logged and ignored rather than failing a task.
    """
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("asr.checkpoint_cache_unreadable", path=str(cache_file), error=str(exc))
        return {}
    if not isinstance(data, dict):
        log.warning("asr.checkpoint_cache_unreadable", path=str(cache_file), error="not a JSON object")
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _write_entry(cache_file: Path, key: tuple[str, int, int], digest: str) -> None:
    """Add one entry to the disk cache atomically (temp file + rename).

    Readers never see a half-written file; two writers racing can lose one entry, which only
    costs a re-hash later. One entry per path, so replaced weights do not pile up.
    """
    entries = _read_cache(cache_file)
    entries[key[0]] = {"size": key[1], "mtime_ns": key[2], "sha256": digest}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=cache_file.parent, prefix=f".{cache_file.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entries, handle, indent=1, sort_keys=True)
            Path(tmp_name).replace(cache_file)
        except BaseException:
            with contextlib.suppress(OSError):
                Path(tmp_name).unlink()
            raise
    except OSError as exc:
        # A read-only data volume must not fail transcription; the hash is still memoised.
        log.warning("asr.checkpoint_cache_unwritable", path=str(cache_file), error=str(exc))
