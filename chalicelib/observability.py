"""Powertools Logger, Metrics and Tracer, built (and Powertools imported) on first use, never
at import time: the API's cold import loads none of Powertools' modules.

Service name, metrics namespace and the tracer switch come from Powertools' own variables
(POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_TRACE_DISABLED).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "vidproc"
NAMESPACE = "VideoProcessing"


_built: dict[str, Any] = {}
_building = threading.Lock()


def _once(name: str, build: Callable[[], Any]) -> Any:
    """Build it once per process, whichever thread asks first. Concurrent first requests (chalice
    local serves each on a thread) must not build two Loggers for one service: the second finds
    the first's handler half set up and has no formatter of its own."""
    try:
        return _built[name]
    except KeyError:
        pass
    with _building:
        if name not in _built:
            _built[name] = build()
        return _built[name]


def logger() -> Logger:
    def build() -> Logger:
        from aws_lambda_powertools import Logger

        return Logger(service=SERVICE, use_rfc3339=True)

    return cast("Logger", _once("logger", build))


def metrics() -> Metrics:
    def build() -> Metrics:
        from aws_lambda_powertools import Metrics

        return Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE, service=SERVICE)

    return cast("Metrics", _once("metrics", build))


def flush_metrics() -> None:
    """Flush what the Metrics object buffered, if anything built it (most requests do not)."""
    if "metrics" in _built and metrics().metric_set:
        metrics().flush_metrics()


# Only botocore (boto3 and pynamodb go through it) is traced: its X-Ray patch records the service,
# operation and table or queue, never a body. http.client's patch would record every URL called,
# and a webhook URL may carry its receiver's token.
TRACED_MODULES = ("botocore",)


def tracer() -> Tracer:
    def build() -> Tracer:
        from aws_lambda_powertools import Tracer

        return Tracer(service=SERVICE, patch_modules=TRACED_MODULES)

    return cast("Tracer", _once("tracer", build))


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """Emit one EMF metric now, with its own dimensions (e.g. JobsFailed by errorCode)."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    unit = MetricUnit.Seconds if name.endswith("Seconds") else MetricUnit.Count
    with single_metric(name=name, unit=unit, value=value, namespace=metrics().namespace) as metric:
        metric.add_dimension("service", SERVICE)
        for key, val in dimensions.items():
            metric.add_dimension(key, val)


@contextlib.contextmanager
def segment(name: str) -> Iterator[None]:
    """An X-Ray subsegment when tracing is on; nothing otherwise."""
    t = tracer()
    if t.disabled:
        yield
        return
    with t.provider.in_subsegment(f"## {name}"):
        yield
