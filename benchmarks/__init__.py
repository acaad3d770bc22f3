"""Benchmarks of the service on the real local stack (`python -m benchmarks`, `make bench`).

The stack is the test suite's own (tests.support.stack): DynamoDB Local, a moto server for
S3/SQS/Cognito, `chalice local` for the API, worker threads that run the real handler and ffmpeg.
Numbers are measured and printed, never asserted; only correctness invariants (credits, ledger,
exactly-one winners) make a run fail. See benchmarks/README.md.
"""
