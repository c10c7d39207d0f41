"""The diarization fields of a submission, checked: ``diarize``, the backend and the speaker counts.

Checked with the other fields, before any file is written: counts without ``diarize=true``,
inconsistent counts, an unknown backend or one that cannot run here (the extra is missing) are
422, each saying what to change. Whether ``channels`` can split the recording is known only once
it is probed: :func:`check_channels` runs then, for an upload (a batch skips such a member); a
recording given by URL is probed by the worker's fetch stage, whose task fails with the same
message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio.to_thread

from maie.errors import UnprocessableError
from maie.pipeline.diarization import REGISTRY, MonoInputError, SpeakerCount

if TYPE_CHECKING:
    from maie.config import Settings
    from maie.schemas import AudioInfo, SubmissionOptions, TaskRequest

__all__ = ["DiarizationRequest", "check_channels", "check_diarization"]

#: The diarizer that needs one speaker per channel.
CHANNELS = "channels"
_FIELDS = ("diarization_backend", "num_speakers", "min_speakers", "max_speakers")


@dataclass(frozen=True, slots=True)
class DiarizationRequest:
    """The diarization fields of one request, validated (all None without ``diarize``)."""

    diarize: bool | None = None
    diarization_backend: str | None = None
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None


async def check_diarization(form: SubmissionOptions, settings: Settings) -> DiarizationRequest:
    """Check the diarization fields of ``form``.

    Raises:
        UnprocessableError: a diarization field without ``diarize=true``, or counts that contradict
            each other or are outside 1-32.
        BackendUnavailableError: an unknown backend, or one that cannot run here (with the reason,
            which says how to install what is missing).
    """
    if not form.diarize:
        given = [name for name in _FIELDS if getattr(form, name) is not None]
        if given:
            raise UnprocessableError(
                f"{', '.join(given)} only apply to diarization: add diarize=true, or leave "
                f"{'it' if len(given) == 1 else 'them'} out",
                extra={"fields": given},
            )
        return DiarizationRequest()
    counts = SpeakerCount.checked(form.num_speakers, form.min_speakers, form.max_speakers)
    backend = (form.diarization_backend or "").strip() or settings.diarization.backend
    # The check reads no weights (a file lookup at most) and is cached; off the event loop anyway.
    await anyio.to_thread.run_sync(REGISTRY.ensure_available, backend, settings)
    return DiarizationRequest(
        diarize=True,
        diarization_backend=backend,
        num_speakers=counts.num_speakers,
        min_speakers=counts.min_speakers,
        max_speakers=counts.max_speakers,
    )


def check_channels(request: TaskRequest, source: AudioInfo) -> None:
    """Refuse ``diarization_backend=channels`` for a recording with one channel.

    Raises:
        MonoInputError: (422) saying which backend to use instead.
    """
    if request.diarize and request.diarization_backend == CHANNELS and source.channels < 2:  # noqa: PLR2004
        raise MonoInputError(
            "diarization_backend=channels needs a recording with one speaker per channel, and this one "
            "is mono: use diarization_backend=embedded (or pyannote) for a mono recording",
            extra={"channels": source.channels},
        )
