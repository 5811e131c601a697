"""The dashboard at /ui in a real browser: headless Chromium (Debian's ``chromium``) against a real
``broker serve``, driven by ``ui_flow.mjs`` (playwright-core, as test_docs_page.py does). One scenario per
test: the whole flow (sign in, create, configure, publish, watch the counts change, dead-letter, redrive,
purge), a phone-wide viewport with no sideways scrolling, the keyboard alone, and the first render of a
project with 1,000 queues. The page only ever asks its own origin.

Screenshots are taken into a temporary folder; with ``UPDATE_SCREENSHOTS=1`` into ``docs/`` (where the README
and docs/ui.md show them)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from support.fleet import ApiServer, Fleet
from test_docs_page import CHROMIUM, HERE, driver

__all__ = ["driver"]  # the fixture, shared with test_docs_page.py

ROOT = HERE.parent.parent
PNG = b"\x89PNG\r\n\x1a\n"

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
    pytest.mark.timeout(240),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, str]]:
    """A redis-server of the module's own (its URL), in a fleet that stops everything at the end."""
    fleet = Fleet(tmp_path_factory.mktemp("ui"))
    try:
        yield fleet, fleet.redis().url
    finally:
        fleet.stop_all()


@pytest.fixture(scope="module")
def server(stack: tuple[Fleet, str]) -> tuple[ApiServer, str, str]:
    """A real ``broker serve`` (no background jobs) on that store, a key of project "ui" and one of "many"."""
    fleet, url = stack
    key, many = f"ui-{uuid.uuid4().hex}", f"many-{uuid.uuid4().hex}"
    return fleet.serve(url, f"ui:{key},many:{many}", "--no-workers"), key, many


class Hook(BaseHTTPRequestHandler):
    """A webhook endpoint: 200 for a payload without "fail", else 503 with Retry-After: 0 (retried at once)."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        failing = isinstance(body["payload"], dict) and "fail" in body["payload"]
        self.send_response(503 if failing else 200)
        if failing:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def run(driver: Path, scenario: str, base: str, key: str, shots: Path | None = None, **env: str) -> dict[str, Any]:
    command = ["node", str(driver.parent / "ui_flow.mjs"), scenario, base, key]
    if shots is not None:
        command.append(str(shots))
    done = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=220,
                          env={**os.environ, "CHROMIUM": CHROMIUM, **env})
    assert done.returncode == 0, f"ui_flow.mjs failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"], (report.get("error"), report["steps"])
    assert report["page_errors"] == [], report
    # The one answer that is not a 200: a queue without a push subscription (the page says "No push
    # subscription."); the browser logs each such answer as a console error, nothing else may be logged.
    assert all(re.fullmatch(r"404 /v1/queue/push_subscription/[\w-]+", r) for r in report["refused"]), report["refused"]
    assert report["console_errors"] == [
        "Failed to load resource: the server responded with a status of 404 (Not Found)"] * len(report["refused"])
    foreign = [u for u in report["requests"] if f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" != base]
    assert foreign == [], "requests to another origin"
    return report


def call(base: str, key: str, method: str, path: str, body: Any = None) -> Any:
    response = httpx.request(method, base + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def shots_dir(tmp_path: Path) -> Path:
    return ROOT / "docs" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path


def test_the_whole_flow(driver: Path, server: tuple[ApiServer, str, str], tmp_path: Path) -> None:
    api, key, _ = server
    for name in ("billing", "emails", "thumbnails"):  # neighbours in the table (and the screenshot)
        kind = "fifo" if name == "billing" else "standard"
        call(api.url, key, "POST", "/v1/queue/create", {"name": name, "type": kind})
    call(api.url, key, "POST", "/v1/queue/publish_batch",
         {"queue": "emails", "messages": [{"payload": {"to": f"user{n}@example.com"}} for n in range(7)]})
    shots = shots_dir(tmp_path)
    report = run(driver, "flow", api.url, key, shots, QUEUE="orders")
    names = [s if isinstance(s, str) else s["name"] for s in report["steps"]]
    assert names == ["signed in", "queue created", "table refreshed by itself", "configuration edited",
                     "published from the page", "peeked, pretty-printed", "dead-lettered", "found by id", "redriven",
                     "redriven since a time, and all", "purged", "charts", "chart readout", "dark"]
    # What the page did, seen from the API: the queue is there, configured, purged, with nothing dead.
    stats = call(api.url, key, "GET", "/v1/queue/stats/orders")
    assert (stats["available"], stats["in_flight"], stats["dlq"]) == (0, 0, 0)
    assert call(api.url, key, "GET", "/v1/queue/get/orders")["max_retries"] == 0
    [row] = [i for i in call(api.url, key, "GET", "/v1/queue/overview")["items"] if i["queue"] == "orders"]
    assert (row["published"], row["dead_lettered"]) == (2, 3)
    for name in ("ui-queues.png", "ui-queue.png", "ui-queue-dark.png"):
        assert (shots / name).read_bytes()[:8] == PNG


def test_a_phone_never_scrolls_sideways(driver: Path, server: tuple[ApiServer, str, str], tmp_path: Path) -> None:
    api, key, _ = server
    name = "phone-queue-with-a-rather-long-name"
    call(api.url, key, "POST", "/v1/queue/create", {"name": name, "max_retries": 0})
    long_payload = {"long": "x" * 400, "list": list(range(60))}
    call(api.url, key, "POST", "/v1/queue/publish", {"queue": name, "payload": long_payload})
    call(api.url, key, "POST", "/v1/queue/publish", {"queue": name, "payload": {"n": 2}})
    [m] = call(api.url, key, "POST", "/v1/queue/consume", {"queue": name})["messages"]
    call(api.url, key, "POST", "/v1/queue/nack", {"queue": name, "message_id": m["message_id"],
                                                  "receipt": m["receipt"], "requeue": False})
    report = run(driver, "phone", api.url, key, shots_dir(tmp_path), QUEUE=name)
    pages = [s for s in report["steps"] if isinstance(s, dict)]
    assert [p["name"] for p in pages] == ["queues", "queue", "dead"]
    for page in pages:
        assert page["client_width"] == 390, page
        assert page["scroll_width"] <= 390 and page["body_width"] <= 390, page


def test_the_keyboard_alone_is_enough(driver: Path, server: tuple[ApiServer, str, str]) -> None:
    api, key, _ = server
    call(api.url, key, "POST", "/v1/queue/create", {"name": "aaa-keys"})  # first in the table
    call(api.url, key, "POST", "/v1/queue/publish", {"queue": "aaa-keys", "payload": 1})
    report = run(driver, "keyboard", api.url, key, QUEUE="aaa-keys")
    assert report["steps"][-4:] == ["purged with the keyboard", "escape cancels", "chart read with the keyboard",
                                    "deleted with the keyboard"]
    gone = httpx.get(f"{api.url}/v1/queue/get/aaa-keys", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "QUEUE_NOT_FOUND"


def test_push_deliveries_are_listed(driver: Path, stack: tuple[Fleet, str], server: tuple[ApiServer, str, str],
                                    tmp_path: Path) -> None:
    """A subscription's recent delivery attempts (delivered, failed and retried, dead-lettered), made by the push
    delivery of a second ``broker serve`` (with its background jobs) to a local endpoint, shown on the page."""
    fleet, url = stack
    api, key, _ = server
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    pusher = fleet.serve(url, api.api_keys, BROKER_PUSH_ALLOW_PRIVATE="1")
    try:
        call(api.url, key, "POST", "/v1/queue/create", {"name": "webhooks"})
        call(pusher.url, key, "POST", "/v1/queue/push_subscribe/webhooks",  # the server that allows local URLs
             {"url": f"http://127.0.0.1:{hook.server_port}/hook", "max_retries": 1})
        for payload in ({"order": 1}, {"fail": "always"}):
            call(api.url, key, "POST", "/v1/queue/publish", {"queue": "webhooks", "payload": payload})
            deadline = time.monotonic() + 30
            while len(call(api.url, key, "GET", "/v1/queue/push_subscription/webhooks")["recent_attempts"]) < \
                    (1 if "order" in payload else 3):
                assert time.monotonic() < deadline, "the attempts were not recorded"
                time.sleep(0.1)
    finally:
        pusher.stop()
        hook.shutdown()
        hook.server_close()
    attempts = call(api.url, key, "GET", "/v1/queue/push_subscription/webhooks")["recent_attempts"]
    assert [(a["outcome"], a["attempt"], a["status"]) for a in attempts] == [
        ("dead_lettered", 2, 503), ("failure", 1, 503), ("success", 1, 200)]
    report = run(driver, "push", api.url, key, shots_dir(tmp_path), QUEUE="webhooks")
    [listed] = [s for s in report["steps"] if isinstance(s, dict) and s["name"] == "recent deliveries"]
    assert listed["rows"] == [
        {"outcome": a["outcome"], "message": a["message_id"], "attempt": str(a["attempt"]),
         "answer": a["error"] or f"HTTP {a['status']}", "took": f"{a['duration_ms']} ms"} for a in attempts]
    [dead] = [s for s in report["steps"] if isinstance(s, dict) and s["name"] == "dead letter"]
    assert (dead["reason"], dead["attempts"], dead["source"]) == ("push_failed", "2", "webhooks")
    assert dead["last_error"] == attempts[0]["error"] and dead["last_error"].startswith("HTTP 503")
    [phone] = [s for s in report["steps"] if isinstance(s, dict) and s["name"] == "phone"]
    assert phone["client_width"] == 390 and phone["scroll_width"] <= 390 and phone["body_width"] <= 390, phone


async def _create_many(base: str, key: str, count: int) -> None:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        gate = asyncio.Semaphore(20)

        async def create(n: int) -> None:
            async with gate:
                response = await client.post("/v1/queue/create", json={"name": f"q-{n:04d}"})
                assert response.status_code == 200, response.text
                if n % 10 == 0:
                    await client.post("/v1/queue/publish", json={"queue": f"q-{n:04d}", "payload": n})

        await asyncio.gather(*(create(n) for n in range(count)))


def test_first_render_of_a_thousand_queues(driver: Path, server: tuple[ApiServer, str, str]) -> None:
    api, _, many = server
    asyncio.run(_create_many(api.url, many, 1000))
    report = run(driver, "many", api.url, many, QUEUE_COUNT="1000")
    print(f"first render of 1,000 queues: {report['first_render_ms']} ms (best of 3), sort {report['sort_ms']} ms")
    assert report["first_render_ms"] < 5000, report["steps"]
