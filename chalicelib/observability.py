"""Powertools Logger, Metrics and Tracer, built on first use (never at import time).

Service name, metrics namespace and the tracer switch come from Powertools' own variables
(POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_TRACE_DISABLED).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import cache

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = "vidproc"
NAMESPACE = "VideoProcessing"


@cache
def logger() -> Logger:
    return Logger(service=SERVICE, use_rfc3339=True)


@cache
def metrics() -> Metrics:
    return Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE, service=SERVICE)


# Only botocore (boto3 and pynamodb go through it) is traced: its X-Ray patch records the service,
# operation and table or queue, never a body. http.client's patch would record every URL called,
# and a webhook URL may carry its receiver's token.
TRACED_MODULES = ("botocore",)


@cache
def tracer() -> Tracer:
    return Tracer(service=SERVICE, patch_modules=TRACED_MODULES)


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """Emit one EMF metric now, with its own dimensions (e.g. JobsFailed by errorCode)."""
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
