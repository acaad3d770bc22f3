"""Notifications: emails and webhooks about a workspace's jobs and credits, in one package.

Events come from the tables' change stream (never from the code paths that change a job), go
through the notifications queue, and fan out to the emails members asked for and one webhook
delivery per subscribed endpoint.

- `domain.py`: the nouns (event types, preferences, endpoints, webhook deliveries), no I/O;
- `ports.py`: what the use cases need from outside (store, mailer, sender, queue, resolver)
  and `NotifyServices`, the context they run with;
- the use cases: `events.py` (a committed change → its event), `fanout.py` (an event → emails
  and deliveries), `webhooks.py` (endpoints, and each delivery's tries), `preferences.py` (who
  gets which email, unsubscribe tokens), `emails.py` (their words), `endpoint_urls.py` (SSRF);
- the entrypoints: `routes.py` + `schemas.py` (HTTP), `handlers.py` (the stream and queue
  Lambdas, imported only when they run);
- `adapters/`: the ports on DynamoDB, SQS, SES, HTTP and DNS, and the stream records' reader.

Importing this package imports nothing: the API's cold start loads only what its routes use.
"""
