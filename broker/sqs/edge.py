"""The SQS edge as an ASGI handler, served by ``broker.http.app.BrokerApp`` before Starlette (like the lean path of
the message POSTs): ``POST /`` and ``POST /{account}/{queue}`` (a queue URL; the account is the project), in the
JSON protocol (``X-Amz-Target``) or the query protocol (``Action=``, in the body or, for a presigned URL, the
query string of a ``GET`` or ``POST``).

A request is admitted like every other (store check, rate limit), authenticated by its SigV4 signature
(``broker.sqs.sigv4``) with the credential of its access key (``broker.store.sqskeys``), and its action run
(``broker.sqs.actions``); any failure is answered as SQS answers it (``broker.sqs.errors``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope, Send

from broker import errors
from broker.http.context import Context
from broker.http.edge import contract_error, receive_limited, take_request_id
from broker.http.observe import finished, started
from broker.sqs import actions, protocol, sigv4
from broker.sqs import errors as sqs_errors
from broker.store.sqs import SqsStore
from broker.store.sqskeys import SqsKeyRing

#: A request body of the SQS edge: a batch holds at most 256 KiB of messages, more once encoded.
MAX_BODY_BYTES = 1024 * 1024
_QUEUE_PATH = re.compile(r"^/([A-Za-z0-9_-]{1,64})/([A-Za-z0-9_.-]{1,80})/?\Z")
ROUTE = "/{account}/{queue} (SQS)"


def is_sqs(scope: Scope) -> bool:
    """Whether the SQS edge serves this request: to ``/`` or to a queue URL (a path of two segments that is no
    native route), and SQS's by its look: an ``X-Amz-Target`` header, an ``AWS4-HMAC-SHA256`` authorization, or
    ``Action=`` / ``X-Amz-`` in the query string (a presigned URL). Anything else is the native API's (a
    request to ``/`` with a bearer key gets the contract's 404)."""
    if scope["type"] != "http" or scope["method"] not in ("POST", "GET"):
        return False
    path: str = scope["path"]
    if path != "/" and (path.startswith("/v1/") or not _QUEUE_PATH.match(path)):
        return False
    query: bytes = scope.get("query_string", b"")
    if b"Action=" in query or b"X-Amz-" in query:
        return True
    if scope["method"] != "POST":
        return False
    for name, value in scope["headers"]:
        if name == b"x-amz-target" or (name == b"authorization" and value.startswith(b"AWS4-")):
            return True
    return False


@dataclass
class SqsEdge:
    """What the SQS edge keeps per process, beside the shared :class:`Context`."""

    ctx: Context
    store: SqsStore
    keys: SqsKeyRing
    cache: actions.QueueCache

    @classmethod
    def build(cls, ctx: Context, keys: SqsKeyRing) -> SqsEdge:
        store = SqsStore(ctx.store)
        return cls(ctx, store, keys, actions.QueueCache(store))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = started()
        headers: dict[str, str] = {}
        incoming_id = None
        repeated = False
        for name, value in scope["headers"]:
            key = name.decode("latin-1")
            if key == "authorization" and key in headers:
                repeated = True
            if key == "x-request-id":
                incoming_id = value
            headers[key] = value.decode("latin-1")
        rid = take_request_id(scope, incoming_id)
        is_json = "x-amz-target" in headers
        action = ""
        project: str | None = None
        extra: dict[str, str] = {}
        try:
            if repeated:
                raise sqs_errors.incomplete_signature("More than one Authorization header.")
            body = await self.ctx.body_deadline.within(
                receive_limited(receive, headers.get("content-length"), MAX_BODY_BYTES))
            if self.ctx.guard is not None:
                self.ctx.guard.admit()
            if is_json:
                target = headers["x-amz-target"]
                action = target[len(protocol.TARGET_PREFIX):] if target.startswith(protocol.TARGET_PREFIX) else ""
                params = protocol.parse_json(body)
            else:
                form = body if scope["method"] == "POST" and body else scope.get("query_string", b"")
                if scope["method"] == "POST" and body and scope.get("query_string"):
                    form = scope["query_string"] + b"&" + body
                action, params = protocol.parse_query(form)
            claim = sigv4.parse(scope.get("query_string", b""), headers, body, time.time())
            credential = await self.keys.credential(claim.access_key_id)
            if credential is None:
                raise sqs_errors.unknown_key()
            sigv4.verify(claim, credential.secret, scope["method"], scope.get("raw_path", b"/").decode("latin-1")
                         .split("?", 1)[0], headers)
            project = credential.project
            scope["state"]["project"] = project
            if self.ctx.limiter is not None and not self.ctx.limiter.admit_now(project):
                await self.ctx.limiter.admit(project)
            path_queue = None
            if scope["path"] != "/":
                match = _QUEUE_PATH.match(scope["path"])
                if match is None or match.group(1) != project:
                    raise sqs_errors.queue_does_not_exist()
                path_queue = match.group(2)
            handler = actions.ACTIONS.get(action)
            if handler is None:
                if action in actions.UNSUPPORTED:
                    raise sqs_errors.unsupported_operation(action)
                raise sqs_errors.invalid_action(action)
            host = headers.get("host", "localhost")
            env = actions.Env(self.ctx, self.store, self.cache, project, claim.access_key_id,
                              f"{scope.get('scheme', 'http')}://{host}", self.ctx.settings.sqs_region, path_queue)
            result = await handler(env, params)
            status = 200
            if is_json:
                content, content_type = protocol.json_body(result), protocol.JSON_CONTENT_TYPE
            else:
                content, content_type = protocol.xml_body(action, result, rid), protocol.XML_CONTENT_TYPE
        except Exception as exc:
            error = _sqs_error(exc, rid)
            status = error.status
            extra = dict(error.headers)
            if is_json:
                content, query_error = protocol.json_error(error)
                extra.update(query_error)
                content_type = protocol.JSON_CONTENT_TYPE
            else:
                content, content_type = protocol.xml_error(error, rid), protocol.XML_CONTENT_TYPE
        response_headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(content)).encode()),
            (b"x-amzn-requestid", rid.encode()),
            (b"x-request-id", rid.encode()),
            *((k.lower().encode(), v.encode()) for k, v in extra.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": content})
        finished(scope, rid, ROUTE if scope["path"] != "/" else "/ (SQS)", status, start, project, self.ctx.tracing)


def _sqs_error(exc: Exception, rid: str) -> sqs_errors.SqsError:
    if isinstance(exc, sqs_errors.SqsError):
        return exc
    mapped: Any = exc if isinstance(exc, errors.BrokerError) else contract_error(exc, rid)
    return sqs_errors.from_broker(mapped)
