"""Prometheus series of MAIE: cluster-wide task series kept in Redis, and how to read them."""

from maie.metrics.api import ApiMetrics
from maie.metrics.collector import ClusterCollector, ClusterSnapshot, read_cluster
from maie.metrics.recorder import AsyncMetricsRecorder, MetricsRecorder
from maie.metrics.series import (
    HISTOGRAMS,
    QUEUE_WAIT_SECONDS,
    RTF,
    STAGE_SECONDS,
    STREAM_FINAL_SECONDS,
    STREAM_PARTIAL_SECONDS,
    HistogramSeries,
    StreamOutcome,
    TaskOutcome,
)

__all__ = [
    "HISTOGRAMS",
    "QUEUE_WAIT_SECONDS",
    "RTF",
    "STAGE_SECONDS",
    "STREAM_FINAL_SECONDS",
    "STREAM_PARTIAL_SECONDS",
    "ApiMetrics",
    "AsyncMetricsRecorder",
    "ClusterCollector",
    "ClusterSnapshot",
    "HistogramSeries",
    "MetricsRecorder",
    "StreamOutcome",
    "TaskOutcome",
    "read_cluster",
]
