"""Helpers of the fuzz tests: a raw ASGI driver (every byte of the request under the test's control:
invalid UTF-8, lying Content-Length, chunked bodies) and the checks every answer must pass. (The snapshot of
what a project owns in Redis, to prove that a refused request changed nothing, is ``support.project_snapshot``.)"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    app: App, method: str, raw_path: bytes, *, query: bytes = b"", headers: Iterable[tuple[bytes, bytes]] = (),
    chunks: Iterable[bytes] = (), state: dict[str, Any] | None = None,
) -> Answer:
    """One request through ``app``, exactly as given (``chunks`` is the body as the server receives it)."""
    from urllib.parse import unquote_to_bytes

    path = unquote_to_bytes(raw_path).decode("utf-8", errors="replace")
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": raw_path, "query_string": query,
        "root_path": "", "headers": list(headers), "client": ("127.0.0.1", 40000), "server": ("test", 80),
        "state": dict(state or {}),
    }
    pieces = iter(chunks)  # read lazily, as a server would: a body the app does not read is never produced
    done = object()
    ahead: list[Any] = []  # the next piece, once looked at
    finished = False

    async def receive() -> dict[str, Any]:
        nonlocal finished
        if finished:
            return {"type": "http.disconnect"}
        piece = ahead.pop() if ahead else next(pieces, done)
        following = next(pieces, done)
        if following is not done:
            ahead.append(following)
        else:
            finished = True
        return {"type": "http.request", "body": b"" if piece is done else piece, "more_body": not finished}

    status = 0
    response_headers: dict[str, str] = {}
    body = bytearray()

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message.get("headers", []):
                response_headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, send)
    return Answer(status, response_headers, bytes(body))


def contract_problems(answer: Answer) -> list[str]:
    """What is wrong with an answer: a 5xx, or an error that is not in the contract's shape."""
    problems = []
    if answer.status >= 500 or answer.status < 200:
        problems.append(f"status {answer.status}")
    if not answer.headers.get("x-request-id"):
        problems.append("no X-Request-Id")
    if answer.status >= 400:
        if not answer.headers.get("content-type", "").startswith("application/json"):
            problems.append(f"content-type {answer.headers.get('content-type')}")
        try:
            body = answer.json()
        except ValueError:
            return [*problems, f"error body is not JSON: {answer.body[:200]!r}"]
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict) or set(body) != {"error"}:
            return [*problems, f"not the error shape: {body!r:.200}"]
        if not {"code", "message", "request_id"} <= set(error) <= {"code", "message", "request_id", "field"}:
            problems.append(f"error fields {sorted(error)}")
        if not isinstance(error.get("code"), str) or not CODE_RE.match(error["code"]):
            problems.append(f"code {error.get('code')!r}")
        if not isinstance(error.get("message"), str) or not error["message"]:
            problems.append("empty message")
        if error.get("request_id") != answer.headers.get("x-request-id"):
            problems.append("request_id differs from X-Request-Id")
        if "field" in error and not isinstance(error["field"], str):
            problems.append(f"field {error['field']!r}")
        if "Traceback" in answer.body.decode("utf-8", "replace"):
            problems.append("a traceback leaked")
        if answer.status == 429 and "retry-after" not in answer.headers:
            problems.append("429 without Retry-After")
    return problems
