"""Observability: Prometheus metrics, request logs and tracing."""
