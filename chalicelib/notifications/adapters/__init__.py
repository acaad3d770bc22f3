"""The notification ports on real services: `dynamodb.py` (NotificationStore; the tables'
models stay in chalicelib.adapters.dynamodb.models), `queue.py` (SQS), `ses.py` (Mailer),
`webhook_http.py` (WebhookSender), `resolver.py` (DNS), and `stream_records.py` (DynamoDB
stream records to TableChanges)."""
