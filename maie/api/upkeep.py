"""What every API process does in the background: keep its owner mark fresh, sweep dead uploads.

An API process marks itself alive in the store every few seconds
(:class:`~maie.api.intake.idempotency.IntakeOwner`): the pending ``Idempotency-Key`` claims and
upload folders it names count as in progress only while the mark lives. On start and then every
``MAIE_UPLOAD_SWEEP_INTERVAL_S`` it removes the upload folders and batch staging folders whose
owner is gone (:func:`~maie.api.intake.uploads.sweep_orphan_uploads`,
:func:`~maie.api.intake.uploads.sweep_orphan_batches`). A store outage skips a round; the loop
goes on.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import structlog

from maie.api.intake.idempotency import OWNER_BEAT_S, pending_ttl_s
from maie.api.intake.uploads import sweep_orphan_batches, sweep_orphan_uploads
from maie.errors import StoreUnavailableError

if TYPE_CHECKING:
    from maie.api.services import Services

__all__ = ["keep_up"]

log = structlog.get_logger(__name__)


async def keep_up(services: Services) -> None:
    """Beat and sweep until cancelled (the app's lifespan cancels it on shutdown)."""
    settings = services.settings
    owner = services.intake_owner
    audio_dir = settings.storage.data_dir / "audio"
    batches_dir = settings.storage.data_dir / "batches"
    interval = settings.storage.upload_sweep_interval_s
    next_sweep = 0.0
    while True:
        try:
            await owner.beat()
            if time.monotonic() >= next_sweep:
                grace_s = pending_ttl_s(settings)
                removed = await sweep_orphan_uploads(audio_dir, owner, grace_s=grace_s)
                removed += await sweep_orphan_batches(batches_dir, owner, grace_s=grace_s)
                next_sweep = time.monotonic() + interval
                if removed:
                    log.info("upload.sweep_finished", removed=removed)
        except StoreUnavailableError:
            log.warning("upkeep.store_unavailable")
        await anyio.sleep(min(OWNER_BEAT_S, interval))
