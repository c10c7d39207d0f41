"""The MAIE series: names, help texts, labels and buckets, and where they live in Redis.

The API and the workers are separate processes, often on separate hosts, so the task series are
kept as cluster-wide aggregates in the results database (``maie:metrics:*``, no expiry): workers add
to them as stages finish, and every API process reads them when ``/metrics`` is scraped. Each
histogram is one Redis hash whose fields are ``<label value>|<bucket index>``, ``<label>|sum`` and
``<label>|count``; the bucket counts are stored per bucket and made cumulative when read.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from maie.store.keys import histogram_key

__all__ = [
    "HISTOGRAMS",
    "QUEUE_WAIT_SECONDS",
    "RTF",
    "STAGE_SECONDS",
    "STREAM_FINAL_SECONDS",
    "STREAM_PARTIAL_SECONDS",
    "HistogramSeries",
    "StreamOutcome",
    "TaskOutcome",
]


class TaskOutcome:
    """Values of the ``status`` label of ``maie_tasks_total``."""

    #: The API accepted the upload and queued the task.
    ACCEPTED: Final = "accepted"
    #: The task finished with a result.
    COMPLETE: Final = "complete"
    #: The task failed (its ``error_code`` is counted in ``maie_task_failures_total``).
    FAILED: Final = "failed"


class StreamOutcome:
    """Values of the ``outcome`` label of ``maie_stream_sessions_total``."""

    #: A session began (its audio started to arrive).
    STARTED: Final = "started"
    #: It ended with its recording stored as a task (after ``stop``, an error, or a dropped connection).
    STORED: Final = "stored"
    #: It ended without a task: nothing, or too little, was received, or storing it failed.
    NOT_STORED: Final = "not_stored"


class HistogramSeries(NamedTuple):
    """One cluster-wide histogram."""

    #: Prometheus name (without ``_bucket``/``_sum``/``_count``).
    name: str
    #: Help text.
    documentation: str
    #: Name of its one label, or None for an unlabelled histogram.
    label: str | None
    #: Upper bounds of the buckets, ascending; ``+Inf`` is implied.
    buckets: tuple[float, ...]

    @property
    def key(self) -> str:
        """The Redis hash that holds it."""
        return histogram_key(self.name)

    def bucket_index(self, value: float) -> int:
        """Index of the first bucket whose bound is at least ``value`` (``len(buckets)`` for +Inf)."""
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                return index
        return len(self.buckets)


#: Seconds each successful stage run took, by stage.
STAGE_SECONDS: Final = HistogramSeries(
    "maie_stage_seconds",
    "Seconds a successful run of a pipeline stage took, by stage.",
    "stage",
    (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
#: Seconds a message waited in its queue before a worker started it, by queue.
QUEUE_WAIT_SECONDS: Final = HistogramSeries(
    "maie_queue_wait_seconds",
    "Seconds a stage message waited in its queue before a worker started it (first attempts only), by queue.",
    "queue",
    (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
#: Real-time factor of completed tasks.
RTF: Final = HistogramSeries(
    "maie_rtf",
    "Real-time factor of completed tasks: seconds of processing per second of audio.",
    None,
    (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5, 10),
)
_LIVE_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
#: Live sessions: seconds from the arrival of the audio a partial result reaches to its sending.
STREAM_PARTIAL_SECONDS: Final = HistogramSeries(
    "maie_stream_partial_latency_seconds",
    "Live sessions: seconds from the arrival of the audio that a partial result ends with to its sending, "
    "by backend.",
    "backend",
    _LIVE_BUCKETS,
)
#: Live sessions: seconds from the arrival of a final segment's last audio to its sending.
STREAM_FINAL_SECONDS: Final = HistogramSeries(
    "maie_stream_final_latency_seconds",
    "Live sessions: seconds from the arrival of a final segment's last audio to its sending, by backend.",
    "backend",
    _LIVE_BUCKETS,
)
#: Every cluster-wide histogram, in the order /metrics lists them.
HISTOGRAMS: Final = (STAGE_SECONDS, QUEUE_WAIT_SECONDS, RTF, STREAM_PARTIAL_SECONDS, STREAM_FINAL_SECONDS)
