"""OpenTelemetry tracing (the optional ``tracing`` extra: ``pip install 'broker-queue[tracing]'``).

On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the extra is installed (the standard ``OTEL_*`` variables
configure the exporter and the service name; the default service name is ``broker``): one span per HTTP
request (kind SERVER, child of an incoming ``traceparent``) and one per push delivery attempt (kind PRODUCER),
with the HTTP and messaging semantic conventions (``messaging.system``, ``messaging.operation.name`` and
``.type``, ``messaging.destination.name``, ``messaging.message.id``). A push delivery carries its span's
``traceparent`` (and ``tracestate``) header, so a receiver's spans join the trace. Off, it costs one boolean
test per request.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # the extra is not installed
    trace = None  # type: ignore[assignment]
try:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
except ImportError:
    OTLPSpanExporter = None  # type: ignore[assignment,misc]

MESSAGING_SYSTEM = "broker"

#: Route template -> (messaging.operation.name, messaging.operation.type) of the contract's message routes.
OPERATIONS: dict[str, tuple[str, str]] = {
    "/v1/queue/publish": ("publish", "send"),
    "/v1/queue/publish_batch": ("publish", "send"),
    "/v1/queue/consume": ("consume", "receive"),
    "/v1/queue/ack": ("ack", "settle"),
    "/v1/queue/ack_batch": ("ack", "settle"),
    "/v1/queue/nack": ("nack", "settle"),
    "/v1/queue/extend": ("extend", "settle"),
}


class Tracing:
    """The process's tracer, or nothing (``enabled`` False)."""

    def __init__(self, provider: Any = None):
        self.enabled = trace is not None and provider is not None
        self._tracer = provider.get_tracer("broker") if self.enabled else None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Tracing:
        """On when OTEL_EXPORTER_OTLP_ENDPOINT is set and the SDK is installed: spans are exported over OTLP/HTTP
        in batches."""
        env = os.environ if environ is None else environ
        if trace is None or OTLPSpanExporter is None or not env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return cls()
        return cls.with_exporter(OTLPSpanExporter())

    @classmethod
    def with_exporter(cls, exporter: SpanExporter, batch: bool = True) -> Tracing:
        """Spans to ``exporter`` (tests pass an in-memory one, unbatched)."""
        name = os.environ.get("OTEL_SERVICE_NAME", "broker")
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
        return cls(provider)

    def request(self, headers: Sequence[tuple[bytes, bytes]], method: str, route: str, status: int,
                started_ns: int, project: str | None, queue: str | None) -> None:
        """Record the span of an answered request (built at its end: no context switch on the hot path)."""
        if self._tracer is None:
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in (b"traceparent", b"tracestate")}
        attributes: dict[str, Any] = {"http.request.method": method, "http.route": route,
                                      "http.response.status_code": status}
        operation = OPERATIONS.get(route)
        if operation is not None:
            attributes.update({"messaging.system": MESSAGING_SYSTEM, "messaging.operation.name": operation[0],
                               "messaging.operation.type": operation[1]})
        if queue:
            attributes["messaging.destination.name"] = queue
        if project:
            attributes["broker.project"] = project
        span = self._tracer.start_span(f"{method} {route}", context=propagate.extract(carrier), kind=SpanKind.SERVER,
                                       attributes=attributes, start_time=started_ns)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    @contextmanager
    def push(self, project: str, queue: str, message_id: str, headers: dict[str, str]) -> Iterator[Any]:
        """The span of one push delivery attempt; its context goes into ``headers`` (``traceparent``). Yields the
        span (None when off) for the outcome."""
        if self._tracer is None:
            yield None
            return
        attributes = {"messaging.system": MESSAGING_SYSTEM, "messaging.operation.name": "push",
                      "messaging.operation.type": "send", "messaging.destination.name": queue,
                      "messaging.message.id": message_id, "broker.project": project, "http.request.method": "POST"}
        with self._tracer.start_as_current_span(f"send {queue}", kind=SpanKind.PRODUCER, attributes=attributes) as span:
            propagate.inject(headers)
            yield span

    @staticmethod
    def push_outcome(span: Any, status: int | None, error: str) -> None:
        if span is None:
            return
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if error:
            span.set_status(Status(StatusCode.ERROR, error[:200]))

