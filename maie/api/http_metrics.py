"""The HTTP series of ``/metrics`` (``maie_http_*``), counted with less work per request.

Litestar's :class:`~litestar.plugins.prometheus.PrometheusMiddleware` makes the series; this
subclass keeps its metrics, names, labels and exclusions and changes only the per-request work.
The stock ``__call__`` builds a ``Request`` and its ``URL`` (only to read the method and a path
that ``group_path`` then replaces by the route template), four label dicts, and looks each series
child up by label values, under the metric's lock, four times per request. Status polling sends
requests by the thousand, and those steps were a tenth of the API's time per poll. Here the method
and the route template come straight from the ASGI scope and the labelled children are looked up
once per (method, route, status) and kept.

Only what MAIE configures is supported: ``group_path=True``, no extra ``labels``, no
``exemplars``, no ``excluded_http_methods`` (:func:`maie.api.routes.metrics.http_metrics_config`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

from litestar.enums import ScopeType
from litestar.plugins.prometheus import PrometheusMiddleware
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

if TYPE_CHECKING:
    from litestar.plugins.prometheus import PrometheusConfig
    from litestar.types import ASGIApp, Message, Receive, Scope, Send
    from prometheus_client.metrics import Counter, Gauge, Histogram

__all__ = ["HttpMetricsMiddleware"]


class _Done(NamedTuple):
    """The children a finished request of one (method, route, status) adds to."""

    requests: Counter
    duration: Histogram
    errors: Counter | None


class HttpMetricsMiddleware(PrometheusMiddleware):
    """Litestar's Prometheus middleware with the label look-ups done once per route and status."""

    def __init__(self, app: ASGIApp, config: PrometheusConfig) -> None:
        super().__init__(app, config)
        if not config.group_path or config.labels or config.exemplars or config.excluded_http_methods:
            msg = "HttpMetricsMiddleware needs group_path=True and no labels, exemplars or excluded methods"
            raise ValueError(msg)
        self._in_progress: dict[tuple[str, str], Gauge] = {}
        self._done: dict[tuple[str, str, int], _Done] = {}

    def _labels(self, method: str, path: str, status: int) -> dict[str, Any]:
        # The stock middleware's labels, in its order (the order of the series' label names).
        return {"method": method, "path": path, "status_code": status, "app_name": self._config.app_name}

    def _progress_gauge(self, method: str, path: str) -> Gauge:
        gauge = self._in_progress.get((method, path))
        if gauge is None:
            # As the stock middleware does: in-progress requests are labelled with status 200.
            labels = self._labels(method, path, 200)
            gauge = self.requests_in_progress(labels).labels(*labels.values())
            self._in_progress[(method, path)] = gauge
        return gauge

    def _done_children(self, method: str, path: str, status: int) -> _Done:
        done = self._done.get((method, path, status))
        if done is None:
            labels = self._labels(method, path, status)
            values = [*labels.values()]
            errors = None
            if status >= HTTP_500_INTERNAL_SERVER_ERROR:
                errors = self.requests_error_count(labels).labels(*values)
            done = _Done(
                self.request_count(labels).labels(*values), self.request_time(labels).labels(*values), errors
            )
            self._done[(method, path, status)] = done
        return done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the request in progress, then by its status, with its duration until the body."""
        method = scope["method"] if scope["type"] == ScopeType.HTTP else str(scope["type"])
        path = scope["path_template"]
        started = time.perf_counter()
        span = [200, 0.0]  # status, seconds until the (last) body message

        async def send_noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                span[0] = message["status"]
            elif message["type"] == "http.response.body":
                span[1] = time.perf_counter() - started
            await send(message)

        gauge = self._progress_gauge(method, path)
        gauge.inc()
        try:
            await self.app(scope, receive, send_noting)
        finally:
            gauge.dec()
            done = self._done_children(method, path, int(span[0]))
            if done.errors is not None:
                done.errors.inc()
            done.requests.inc()
            done.duration.observe(span[1])
