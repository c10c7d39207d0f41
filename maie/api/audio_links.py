"""A task's kept recording: which file plays it, and signed links for players that cannot send headers.

A browser's ``<audio>`` element fetches its source by itself, with no ``X-API-Key`` header and no
script in between, so the web app cannot point it at ``GET /v1/tasks/{id}/audio``. It asks for a
link instead (``POST /v1/tasks/{id}/audio/link``): a URL naming the task, the file and an expiry,
signed with HMAC-SHA256 under a secret derived from the tenant's API keys. The key itself never
appears in a URL; a link opens one recording until it expires (:data:`LINK_TTL_S`) and stops
working as soon as the tenant's keys change.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import mimetypes
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from litestar.exceptions import PermissionDeniedException

from maie.errors import NotFoundError
from maie.schemas.base import Frozen

if TYPE_CHECKING:
    from maie.config.service import AuthSettings
    from maie.schemas import TaskRecord

__all__ = [
    "LINK_PATH",
    "LINK_TTL_S",
    "PLAYBACK_NAME",
    "AudioLink",
    "AudioSource",
    "LinkRefusedError",
    "audio_link",
    "check_link",
    "kept_audio",
]

#: The normalised WAV the worker's preprocess stage writes beside the recording
#: (``maie.worker.stages.WAV_NAME``; the API may not import the worker).
PLAYBACK_NAME = "preprocessed.wav"
#: Seconds a signed link stays valid: long enough to listen to a long meeting in one sitting.
LINK_TTL_S = 6 * 3600
#: Where signed links point (outside ``/v1``: they carry no API key).
LINK_PATH = "/media/tasks/{task_id}/audio"
#: Container extensions of ``raw.<ext>`` whose media type ``mimetypes`` does not know or gets wrong.
_MEDIA_TYPES = {".flac": "audio/flac", ".ogg": "audio/ogg", ".wav": "audio/wav", ".mkv": "video/x-matroska"}
#: Separates the secret of audio links from any other use of the keys.
_PURPOSE = b"maie audio link v1"


class AudioSource(enum.StrEnum):
    """Which file of a task to serve."""

    #: The 16 kHz mono WAV the transcript's times refer to; every browser plays it.
    PLAYBACK = "playback"
    #: The recording as it was uploaded or fetched.
    ORIGINAL = "original"


class AudioLink(Frozen, frozen=True, kw_only=True):
    """Answer to POST /v1/tasks/{id}/audio/link."""

    #: Path and query of the signed link, on this server.
    url: str
    expires_at: datetime


class LinkRefusedError(PermissionDeniedException):
    """Raised when an audio link's signature does not match or it has expired (403)."""


def kept_audio(record: TaskRecord, source: AudioSource, data_dir: Path) -> tuple[Path, str]:
    """The file of ``record`` to serve for ``source``, with its media type.

    ``playback`` falls back to the original while the WAV is not written yet. Only files under
    ``data_dir/audio`` are served, whatever a record says.

    Raises:
        NotFoundError: when the file is not there (the server does not keep audio, or the task is
            gone).
    """
    raw = Path(record.audio_path) if record.audio_path else None
    candidates = [] if raw is None else [raw]
    if raw is not None and source is AudioSource.PLAYBACK:
        candidates.insert(0, raw.parent / PLAYBACK_NAME)
    root = (data_dir / "audio").resolve()
    for path in candidates:
        resolved = path.resolve()
        if resolved.is_relative_to(root) and resolved.is_file():
            return resolved, _media_type(resolved)
    raise NotFoundError(
        f"task {record.task_id} has no kept audio: recordings are deleted once processed unless "
        "the server sets MAIE_KEEP_AUDIO=true"
    )


def _media_type(path: Path) -> str:
    known = _MEDIA_TYPES.get(path.suffix.lower())
    return known or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _secret(auth: AuthSettings, tenant: str) -> bytes | None:
    """The tenant's signing secret, or ``None`` when it has no key left (no link may open then)."""
    keys = sorted(key for key, owner in auth.tenants_by_key().items() if owner == tenant)
    if not keys:
        return None
    return hmac.new(_PURPOSE, "\n".join(keys).encode(), hashlib.sha256).digest()


def _signature(secret: bytes, task_id: str, source: AudioSource, expires: int) -> str:
    return hmac.new(secret, f"{task_id}\n{source.value}\n{expires}".encode(), hashlib.sha256).hexdigest()


def audio_link(auth: AuthSettings, tenant: str, task_id: str, source: AudioSource, now: float) -> AudioLink:
    """A signed link to the ``source`` audio of ``tenant``'s task, valid for :data:`LINK_TTL_S`.

    Raises:
        NotFoundError: when the tenant has no API key (cannot happen for an authenticated caller
            unless the keys changed meanwhile).
    """
    secret = _secret(auth, tenant)
    if secret is None:
        raise NotFoundError(f"task {task_id} not found")
    expires = int(now) + LINK_TTL_S
    query = {"expires": str(expires), "signature": _signature(secret, task_id, source, expires)}
    if source is not AudioSource.PLAYBACK:
        query["source"] = source.value
    return AudioLink(
        url=LINK_PATH.format(task_id=task_id) + "?" + urlencode(query),
        expires_at=datetime.fromtimestamp(expires, UTC),
    )


def check_link(
    auth: AuthSettings, record: TaskRecord, source: AudioSource, *, expires: int, signature: str, now: float
) -> None:
    """Accept a link to ``record``'s audio only if its owner's keys signed it and it has not expired.

    Raises:
        LinkRefusedError: otherwise, saying which.
    """
    secret = _secret(auth, record.tenant)
    expected = _signature(secret, record.task_id, source, expires) if secret is not None else ""
    if not expected or not hmac.compare_digest(expected.encode(), signature.encode()):
        raise LinkRefusedError(detail="this audio link is not valid; ask for a new one")
    if expires < now:
        raise LinkRefusedError(
            detail="this audio link has expired; ask for a new one (POST /v1/tasks/{task_id}/audio/link)"
        )
