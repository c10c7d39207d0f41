"""Where an LLM's files are: a folder, MAIE's model folder, or the Hugging Face cache.

``MAIE_LLM_ENHANCEMENT_MODEL`` / ``MAIE_LLM_SUMMARY_MODEL`` name a folder or a hub repo id
(``org/name``). ``scripts/download_models.sh`` puts repo ``org/name`` in
``MAIE_DATA_DIR/models/org/name``; vLLM itself downloads missing repos into the Hugging Face cache
layout under ``MAIE_DATA_DIR/models/hub``. These functions find the folder (for the weights' sha256
and ``generation_config.json``) without ever downloading.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from maie.pipeline.asr.checkpoint import file_sha256
from maie.pipeline.asr.model_files import local_model_dir

__all__ = ["HUB_CACHE", "LLM_WEIGHT_PATTERNS", "find_model_dir", "hub_cache_dir", "weights_sha256"]

#: Sub-folder of ``MAIE_DATA_DIR/models`` where vLLM downloads repos (Hugging Face cache layout).
HUB_CACHE = "hub"
#: Weight files of an LLM checkpoint, by preference: the first pattern that matches wins.
LLM_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.gguf", "*.pt")


def hub_cache_dir(data_dir: Path) -> Path:
    """Where vLLM downloads hub repos for MAIE."""
    return data_dir / "models" / HUB_CACHE


def find_model_dir(model: str, data_dir: Path) -> Path | None:
    """The folder holding ``model`` on this host, or ``None`` when it is not here (yet).

    Looks at ``model`` as a folder, then ``MAIE_DATA_DIR/models/<model>``, then the hub cache.
    """
    folder = local_model_dir(model)
    if folder is not None:
        return folder if folder.is_dir() else None
    fetched = data_dir / "models" / model
    if (fetched / "config.json").is_file():
        return fetched
    from huggingface_hub import snapshot_download  # noqa: PLC0415 - heavy import, only when asked

    try:
        snapshot = snapshot_download(model, cache_dir=hub_cache_dir(data_dir), local_files_only=True)
    except (OSError, ValueError):
        # Not in the cache (huggingface_hub raises LocalEntryNotFoundError, an OSError), or not a
        # valid repo id (a ValueError subclass).
        return None
    path = Path(str(snapshot))
    return path if path.is_dir() else None


def weights_sha256(model_dir: Path, *, cache_dir: Path | None) -> str | None:
    r"""SHA-256 identifying the weights in ``model_dir``, or ``None`` when it holds none.

    One file: its plain sha256 (checkable with ``sha256sum``). Several (sharded safetensors): the
    sha256 of their ``"<name> <sha256>\\n"`` lines in name order, as for ASR checkpoints. File
    hashes are cached by path, size and mtime in ``cache_dir``.
    """
    for pattern in LLM_WEIGHT_PATTERNS:
        files = sorted(p for p in model_dir.glob(pattern) if p.is_file())
        if files:
            break
    else:
        return None
    cache_file = None if cache_dir is None else cache_dir / "checkpoint-hashes.json"
    digests = [(path.name, file_sha256(path, cache_file=cache_file)) for path in files]
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256("".join(f"{name} {digest}\n" for name, digest in digests).encode()).hexdigest()
