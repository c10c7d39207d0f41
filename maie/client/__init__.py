"""Python client for MAIE: :class:`MaieClient` (blocking) and :class:`AsyncMaieClient` (asyncio).

Answers are the contract Structs of :mod:`maie.schemas`, errors the classes of :mod:`maie.errors`
(``NotFoundError`` for 404, ``QueueFullError`` with ``retry_after_s`` for 429, ...). Submissions
are retried with back-off when the server is busy (429) or unavailable (503), honouring its
``Retry-After``; give an ``idempotency_key`` and they are also retried after a lost connection,
without risk of a second task. Polling uses ``ETag``/``If-None-Match`` and ``Retry-After``::

    with MaieClient("http://127.0.0.1:8000", api_key) as maie:
        task = maie.submit(Path("meeting.m4a"), features=["raw_transcript"])
        status = maie.wait(task.task_id)
        srt = maie.transcript(task.task_id, "srt")

The options of a submission are :class:`SubmitOptions` (the keywords of ``submit``, or one
Struct for ``submit_with``). A receiver of MAIE webhooks checks their signature with
:func:`verify_webhook`.
"""

from maie.client._http import SubmitOptions
from maie.client.aio import AsyncMaieClient
from maie.client.sync import MaieClient
from maie.webhooks.signing import verify as verify_webhook

__all__ = ["AsyncMaieClient", "MaieClient", "SubmitOptions", "verify_webhook"]
