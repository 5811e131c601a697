"""A self-hosted SQS-style message queue served over HTTP, with its state in Redis."""

__version__ = "0.1.0"
