"""Where Whisper weights come from: a local CTranslate2 folder, the download cache, or the model hub.

``MAIE_WHISPER_MODEL`` is either a folder or a name (``small``, ``large-v3-turbo``, or a hub repo
id such as ``org/model``). Names are downloaded by faster-whisper into ``MAIE_DATA_DIR/models``;
this module answers "is it there?", "could it be fetched?" and "where is it?" with messages that
tell the operator what to do. faster-whisper is imported inside functions only.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

__all__ = [
    "DEFAULT_HUB_ENDPOINT",
    "HUB_TIMEOUT_S",
    "hub_offline",
    "hub_problem",
    "local_model_dir",
    "locate_model",
    "model_problem",
    "model_size",
]

#: Model hub probed when ``HF_ENDPOINT`` is unset.
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
#: Seconds the availability check waits for the hub: long enough for a healthy link, short
#: enough that ``/v1/models`` stays responsive on an air-gapped host.
HUB_TIMEOUT_S = 2.0
#: Values huggingface_hub treats as true for ``HF_HUB_OFFLINE``.
_TRUE = {"1", "true", "yes", "on"}


def local_model_dir(model: str) -> Path | None:
    """Return ``model`` as a folder path when it names one, else ``None`` (it is a name).

    A value is a path when it exists as a folder, is absolute, starts with ``.`` or ``~``, or has
    more than one ``/`` (hub repo ids have exactly one, ``org/model``).
    """
    path = Path(model).expanduser()
    if path.is_dir() or path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1:
        return path
    return None


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids the hub, read now (huggingface_hub reads it at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def hub_problem(timeout_s: float = HUB_TIMEOUT_S) -> str | None:
    """Why the model hub cannot be used now, or ``None`` when it answers.

    Any HTTP answer counts as reachable (even an error status): the question is whether a
    download could start, not whether the landing page is healthy.

    Args:
        timeout_s: Seconds to wait for the hub.

    Returns:
        ``None`` when reachable, else a short reason.
    """
    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_HUB_ENDPOINT).rstrip("/")
    if not endpoint.startswith(("https://", "http://")):
        return f"HF_ENDPOINT={endpoint!r} is not an http(s) URL"
    request = urllib.request.Request(endpoint, method="HEAD")  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):  # noqa: S310 - scheme checked above
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as exc:
        return f"{endpoint} cannot be reached ({getattr(exc, 'reason', exc)})"


def model_problem(model: str, download_root: Path, *, env_var: str = "MAIE_WHISPER_MODEL") -> str | None:
    """Why ``model`` cannot be loaded here, or ``None`` when it can (present, or downloadable).

    Args:
        model: A folder or a model name.
        download_root: The download cache, ``MAIE_DATA_DIR/models``.
        env_var: The setting to name in the advice.

    Returns:
        ``None`` when the model can be loaded, else a reason that says what to do.
    """
    folder = local_model_dir(model)
    if folder is not None:
        return _folder_problem(folder, env_var)
    from faster_whisper.utils import download_model  # noqa: PLC0415 - heavy import, only when asked

    try:
        download_model(model, cache_dir=str(download_root), local_files_only=True)
    except ValueError as exc:
        return f"{env_var}={model!r} is neither a local folder nor a known model name ({exc})"
    except OSError:
        pass
    else:
        return None
    reason = hub_problem()
    if reason is None:
        return None
    return (
        f"model {model!r} is not in {download_root} and the model hub cannot be used ({reason}); "
        f"set {env_var} to a local CTranslate2 folder or fetch the weights first"
    )


def locate_model(model: str, download_root: Path, *, env_var: str = "MAIE_WHISPER_MODEL") -> Path:
    """The folder holding ``model``, downloading it into ``download_root`` if needed and allowed.

    Args:
        model: A folder or a model name.
        download_root: The download cache, ``MAIE_DATA_DIR/models``.
        env_var: The setting to name in errors.

    Returns:
        A folder with ``model.bin``.

    Raises:
        FileNotFoundError: with an actionable message, when the model is absent and cannot be
            fetched (the caller turns it into ``ModelLoadError``).
    """
    folder = local_model_dir(model)
    if folder is not None:
        if problem := _folder_problem(folder, env_var):
            raise FileNotFoundError(problem)
        return folder
    from faster_whisper.utils import download_model  # noqa: PLC0415 - heavy import, only when asked

    try:
        return Path(download_model(model, cache_dir=str(download_root), local_files_only=hub_offline()))
    except ValueError as exc:
        msg = f"{env_var}={model!r} is neither a local folder nor a known model name ({exc})"
        raise FileNotFoundError(msg) from exc
    except OSError as exc:
        msg = (
            f"model {model!r} is not in {download_root} and could not be downloaded ({exc}); "
            f"set {env_var} to a local CTranslate2 folder or fetch the weights first"
        )
        raise FileNotFoundError(msg) from exc


def model_size(model: str, download_root: Path) -> int | None:
    """Bytes of ``model``'s files on disk, or ``None`` when it is not on disk (never downloads).

    Args:
        model: A folder or a model name.
        download_root: The download cache, ``MAIE_DATA_DIR/models``.
    """
    folder = local_model_dir(model)
    if folder is None:
        from faster_whisper.utils import download_model  # noqa: PLC0415 - heavy import, only when asked

        try:
            folder = Path(download_model(model, cache_dir=str(download_root), local_files_only=True))
        except (ValueError, OSError):
            return None
    if not folder.is_dir():
        return None
    # is_file() and stat() follow links, so a hub cache's links into its blob store count their blobs.
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _folder_problem(folder: Path, env_var: str) -> str | None:
    if not folder.is_dir():
        return f"{env_var}={str(folder)!r}: folder does not exist"
    if not (folder / "model.bin").is_file():
        return (
            f"{env_var}={str(folder)!r} has no model.bin; "
            "it must be a CTranslate2 conversion (ct2-transformers-converter)"
        )
    return None
