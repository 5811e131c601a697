"""The SQS-compatible edge: Amazon SQS's JSON and query protocols on the native queues (docs/sqs.md)."""
