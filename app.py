"""Composition root: the Chalice app, its blueprint of routes, the worker and the sweeper."""

from __future__ import annotations

from typing import Any

from chalice import Rate
from chalice.app import CloudWatchEvent, SQSEvent

from chalicelib.handlers import sweeper, worker
from chalicelib.handlers.api import api
from chalicelib.handlers.http import ThreadSafeChalice

JOBS_QUEUE = "vidproc-jobs"  # the deployed queue's name (infra/); the code reads JOBS_QUEUE_URL

app = ThreadSafeChalice(app_name="vidproc")
app.register_blueprint(api)


# One record per invocation: a record never waits behind another's transcode until too little of
# the invocation is left (the worker also hands back a record it has no time for).
@app.on_sqs_message(queue=JOBS_QUEUE, batch_size=1)
def handle_job_messages(event: SQSEvent) -> dict[str, Any]:
    return worker.handle(event.to_dict(), event.context)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def sweep_stuck_jobs(event: CloudWatchEvent) -> dict[str, int]:
    return sweeper.handle()
