"""GET /metrics: Prometheus text with this process's HTTP series and the cluster-wide MAIE series.

HTTP series (``maie_http_*``) come from Litestar's Prometheus middleware and describe this API
process; route paths are grouped by template, so task ids do not multiply the series. The MAIE
series (``maie_tasks_total``, ``maie_stage_seconds``, ``maie_queue_wait_seconds``, ``maie_rtf``,
``maie_queue_depth``, ...) describe the whole deployment: workers add to them in Redis and any API
process reads them at scrape time (see :mod:`maie.metrics`), so every API replica reports the same
values. docs/operations.md lists each series and suggested alerts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from litestar import Controller, Response, get
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily

from maie.api.http_metrics import HttpMetricsMiddleware
from maie.metrics import ClusterCollector

if TYPE_CHECKING:
    from collections.abc import Iterator

    from litestar.di import NamedDependency
    from prometheus_client.metrics_core import Metric

    from maie.api.services import Services
    from maie.store.record_cache import CacheReads

__all__ = ["METRICS_PATH", "MetricsController", "http_metrics_config"]

#: Where the metrics are served.
METRICS_PATH: Final = "/metrics"


def http_metrics_config() -> PrometheusConfig:
    """Litestar's Prometheus middleware: requests by method, route template and status."""
    return PrometheusConfig(
        app_name="maie",
        prefix="maie_http",
        group_path=True,  # /v1/status/{task_id:str}, not one series per task
        exclude=[f"^{METRICS_PATH}$"],  # scrapes are not traffic
        middleware_class=HttpMetricsMiddleware,  # the same series, with less work per request
    )


class CacheReadsCollector:
    """``maie_record_cache_reads_total{outcome}``: this process's reads of the record cache."""

    def __init__(self, reads: CacheReads) -> None:
        self.reads = reads

    def collect(self) -> Iterator[Metric]:
        """One counter, labelled by outcome (hit, miss, deleted, skipped)."""
        family = CounterMetricFamily(
            "maie_record_cache_reads",
            "Reads of the finished-record cache by this API process, by outcome",
            labels=["outcome"],
        )
        for outcome, count in self.reads.counts().items():
            family.add_metric([outcome], count)
        yield family


class MetricsController(Controller):
    """Prometheus metrics."""

    path = METRICS_PATH
    tags = ("health",)

    @get(
        "/",
        summary="Prometheus metrics (text exposition format)",
        media_type=CONTENT_TYPE_LATEST,
        cache=False,
    )
    async def metrics(self, services: NamedDependency[Services]) -> Response[bytes]:
        """This process's HTTP and record-cache series, then the deployment's MAIE series from Redis."""
        cluster = CollectorRegistry(auto_describe=False)
        cluster.register(CacheReadsCollector(services.store.cache.reads))
        cluster.register(ClusterCollector(await services.metrics.snapshot()))
        body = generate_latest(REGISTRY) + generate_latest(cluster)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
