"""Push receivers against real deliveries of a real server: ``verify`` on a delivery it signed, refusing
tampered, foreign and stale ones, and the Starlette and Flask receivers of docs/client.md as written."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from clientkit import ROOT, Server, examples
from support import free_port, wait_until

from broker.client import Client
from broker.client.webhooks import InvalidSignature, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PLAIN_SECRET = "a plain secret, used as its UTF-8 bytes"


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[Delivery]]]:
    """An HTTP endpoint on loopback that records every delivery and answers 204."""
    got: list[Delivery] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            got.append(Delivery({k: v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", got
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("secret", [SECRET, PLAIN_SECRET])
def test_verify_accepts_a_real_delivery_and_refuses_altered_ones(
        client: Client, queue: str, recorder: tuple[str, list[Delivery]], secret: str) -> None:
    url, got = recorder
    client.push_subscribe(queue, url=url, secret=secret)
    published = client.publish(queue, payload={"order_id": "o_7", "items": [1, 2]})
    wait_until(lambda: got, 15, what="a delivery")
    delivery = got[0]
    message = verify(secret, delivery.headers, delivery.body)
    assert message.message_id == published.message_id == delivery.headers["webhook-id"]
    assert message.payload == {"order_id": "o_7", "items": [1, 2]} and message.attempts == 1
    assert verify(secret.encode() if secret == PLAIN_SECRET else secret, delivery.headers,
                  delivery.body.decode()) == message  # bytes secret, str body
    with pytest.raises(InvalidSignature):
        verify(secret, delivery.headers, delivery.body.replace(b"o_7", b"o_8"))
    with pytest.raises(InvalidSignature):
        verify("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUE=", delivery.headers, delivery.body)
    with pytest.raises(InvalidSignature):
        verify(secret, {**delivery.headers, "webhook-timestamp": str(int(delivery.headers["webhook-timestamp"])
                                                                     - 3600)}, delivery.body)
    with pytest.raises(InvalidSignature):
        verify(secret, {k: v for k, v in delivery.headers.items() if k.lower() != "webhook-signature"},
               delivery.body)
    wait_until(lambda: client.push_subscription(queue).last_status == 204, 10, what="the delivery acked")
    assert client.stats(queue).in_flight == 0


RECEIVERS: dict[str, Callable[[Path, int], list[str]]] = {
    "receiver_starlette.py": lambda path, port: [sys.executable, "-m", "uvicorn", f"{path.stem}:app", "--port",
                                                 str(port), "--log-level", "warning"],
    "receiver_flask.py": lambda path, port: [sys.executable, "-m", "flask", "--app", path.stem, "run", "--port",
                                             str(port)],
}


@pytest.mark.parametrize("name", sorted(RECEIVERS))
def test_the_documented_receivers_ack_signed_deliveries_and_refuse_others(
        name: str, client: Client, queue: str, server: Server, tmp_path: Path) -> None:
    script = tmp_path / name
    script.write_text(examples()[name])
    port = free_port()
    out = tmp_path / "receiver.out"
    env = {**server.env(WEBHOOK_SECRET=SECRET), "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    with out.open("wb") as sink:
        proc = subprocess.Popen(RECEIVERS[name](script, port), env=env, cwd=tmp_path, stdout=sink,
                                stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: proc.poll() is not None or _answers(port), 20,
                   what=lambda: f"the receiver listening: {out.read_text()}")
        assert proc.poll() is None, out.read_text()
        url = f"http://127.0.0.1:{port}/hook"
        # Signed with another secret: refused (400), so the server keeps the message and retries it.
        client.push_subscribe(queue, url=url, secret="whsec_" + "QkJCQkJCQkJCQkJCQkJCQkJCQkI=")
        published = client.publish(queue, payload={"order_id": "o_9"})
        wait_until(lambda: client.push_subscription(queue).last_status == 400, 15, what="the refusal")
        assert client.push_subscription(queue).consecutive_failures >= 1
        assert "received" not in out.read_text()
        # The right secret: the retry is delivered, verified and acked.
        client.push_subscribe(queue, url=url, secret=SECRET)
        wait_until(lambda: f"received {published.message_id} {{'order_id': 'o_9'}}" in out.read_text(), 20,
                   what=lambda: f"the delivery received: {out.read_text()}")
        wait_until(lambda: client.push_subscription(queue).last_status == 204, 10, what="the ack")
        stats = client.stats(queue)
        assert (stats.available, stats.in_flight, stats.delayed) == (0, 0, 0)
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    except httpx.TransportError:
        return False
    return True
