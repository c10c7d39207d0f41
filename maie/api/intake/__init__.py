"""Submissions: the form and its validation, stage planning, uploads, idempotency, and intake.

A route validates the form (:func:`validate_request`) and hands the upload to :func:`accept_task`
(POST /v1/process) or :func:`accept_batch` (POST /v1/batches); both claim the ``Idempotency-Key``,
store the records, queue the first messages through ``Services.enqueue`` and leave nothing behind
when anything fails.
"""

from maie.api.intake.batch import accept_batch
from maie.api.intake.form import BatchForm, ProcessForm, validate_request
from maie.api.intake.idempotency import Accepted, IdempotencyClaim
from maie.api.intake.planning import planned_stages
from maie.api.intake.task import accept_task

__all__ = [
    "Accepted",
    "BatchForm",
    "IdempotencyClaim",
    "ProcessForm",
    "accept_batch",
    "accept_task",
    "planned_stages",
    "validate_request",
]
