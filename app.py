"""Composition root: the Chalice app, one blueprint of routes per feature (jobs, credits,
notifications, payments), the worker, the sweeper, the notifier.

Chalice deploys this one module as every function (the API, the worker, the sweeper, the
notifier's three), so each handler imports what only it uses inside its body: the API's cold start
never loads the batch utility, the ffmpeg adapter, the worker or the notifier
(tests/unit/test_cold_imports.py).
"""

from __future__ import annotations

from typing import Any

from chalice import Rate
from chalice.app import CloudWatchEvent, SQSEvent

from chalicelib.handlers import credits, jobs, meta, middleware, retention
from chalicelib.handlers.http import ThreadSafeChalice
from chalicelib.notifications import routes as notification_routes
from chalicelib.outputs import routes as output_routes
from chalicelib.payments import routes as payment_routes
from chalicelib.uploads import routes as upload_routes

JOBS_QUEUE = "vidproc-jobs"  # the deployed queue's name (infra/); the code reads JOBS_QUEUE_URL
NOTIFICATIONS_QUEUE = "vidproc-notifications"  # the code reads NOTIFICATIONS_QUEUE_URL
WEBHOOK_QUEUE = "vidproc-webhooks"  # the code reads WEBHOOK_QUEUE_URL

app = ThreadSafeChalice(app_name="vidproc")
app.register_blueprint(meta.blueprint)
app.register_blueprint(credits.blueprint)
app.register_blueprint(jobs.blueprint)
app.register_blueprint(upload_routes.blueprint)
app.register_blueprint(notification_routes.blueprint)
app.register_blueprint(output_routes.blueprint)
app.register_blueprint(retention.blueprint)
app.register_blueprint(payment_routes.blueprint)
app.register_middleware(middleware.http, "http")
app.register_middleware(middleware.events, "sqs")
app.register_middleware(middleware.events, "scheduled")


# One record per invocation: a record never waits behind another's transcode until too little of
# the invocation is left (the worker also hands back a record it has no time for).
@app.on_sqs_message(queue=JOBS_QUEUE, batch_size=1)
def handle_job_messages(event: SQSEvent) -> dict[str, Any]:
    from chalicelib.handlers import worker

    return worker.handle(event.to_dict(), event.context)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def sweep_stuck_jobs(event: CloudWatchEvent) -> dict[str, int]:
    from chalicelib.handlers import sweeper

    return sweeper.handle()


@app.lambda_function(name="handle_table_changes")
def handle_table_changes(event: dict[str, Any], context: Any) -> dict[str, int]:
    # Its event sources (the jobs, attempts and workspaces streams) are in infra/chalice-merge.yaml.
    from chalicelib.notifications import handlers

    return handlers.handle_changes(event)


@app.on_sqs_message(queue=NOTIFICATIONS_QUEUE, batch_size=10)
def handle_notifications(event: SQSEvent) -> dict[str, Any]:
    from chalicelib.notifications import handlers

    return handlers.handle_messages(event.to_dict(), event.context)


# One webhook try per invocation: a slow endpoint holds one run (for at most its deadline), never
# a batch of other workspaces' tries behind it.
@app.on_sqs_message(queue=WEBHOOK_QUEUE, batch_size=1)
def handle_webhook_deliveries(event: SQSEvent) -> dict[str, Any]:
    from chalicelib.notifications import handlers

    return handlers.handle_deliveries(event.to_dict(), event.context)
