"""GET /docs in a real browser: headless Chromium (Debian's ``chromium`` package) loads the page from a real
``broker serve``, renders every operation of /openapi.json, runs "Try it out" with a key entered in its
"Authorize" dialog, and makes no request to any other origin: the reference works with no internet.

The browser is driven by ``load_page.mjs`` (playwright-core, which downloads no browser of its own; its
``node_modules`` come from ``npm ci`` in this folder, run here when missing). Skipped only when Chromium is
not installed (``apt-get install chromium``)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from support.fleet import ApiServer, Fleet

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
    pytest.mark.timeout(180),
]


@pytest.fixture(scope="module")
def driver() -> Path:
    """``load_page.mjs``, with its playwright-core installed (``npm ci``, from the committed lock file)."""
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("tests/browser needs Node.js and npm to drive Chromium (then: npm ci --prefix tests/browser)")
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True,
                              timeout=170)
        if done.returncode != 0:
            pytest.fail(f"npm ci in tests/browser failed:\n{done.stdout}\n{done.stderr}")
    return HERE / "load_page.mjs"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, str]]:
    """A real ``broker serve`` on a redis-server of its own, and a valid key."""
    fleet = Fleet(tmp_path_factory.mktemp("docs-page"))
    key = f"docs-{uuid.uuid4().hex}"
    try:
        node = fleet.redis()
        yield fleet.serve(node.url, f"docs:{key}", "--no-workers"), key
    finally:
        fleet.stop_all()


def load(driver: Path, url: str, text: str, **env: str) -> dict[str, Any]:
    """What the browser saw and requested while loading ``url`` (see load_page.mjs)."""
    done = subprocess.run(
        ["node", str(driver), url, text], cwd=HERE, capture_output=True, text=True, timeout=150,
        env={**os.environ, "CHROMIUM": CHROMIUM, **env},
    )
    assert done.returncode == 0, f"load_page.mjs failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def documented_operations(base: str) -> set[str]:
    document = httpx.get(f"{base}/openapi.json", timeout=10).json()
    return {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
            if method in METHODS}


def test_docs_page_renders_every_operation_and_asks_only_its_own_origin(
    driver: Path, server: tuple[ApiServer, str]
) -> None:
    api, key = server
    report = load(driver, f"{api.url}/docs", "/v1/queue/publish", API_KEY=key, TRY_PATH="/v1/queue/list")

    assert report["text_visible"], report.get("wait_error")
    assert report["page_errors"] == [] and report["console_errors"] == [], report
    requested = [r["url"] for r in report["requests"]]
    assert [u for u in requested if origin(u) != api.url] == [], "requests to another origin"
    assert report["failed"] == [], "requests that failed"
    paths = {urlsplit(u).path for u in requested}
    assert {"/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css",
            "/docs/assets/docs.js"} <= paths
    assert set(report["operations"]) == documented_operations(api.url)
    assert len(report["operations"]) == len(set(report["operations"]))
    # "Try it out" on an authenticated route, with the key given in "Authorize", reached the server.
    assert report["tried"] == "200", report["tried"]
    assert "/v1/queue/list" in paths


def test_the_recorder_sees_requests_to_another_origin(driver: Path, server: tuple[ApiServer, str]) -> None:
    """The check above can fail: a page of another origin (a server of this test, on loopback) that loads an
    image from the broker's origin shows that request as foreign."""
    api, _ = server
    page = f'<!doctype html><title>control</title><p>control page</p><img src="{api.url}/healthz">'.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        page_url = f"http://127.0.0.1:{other.server_address[1]}/"
        report = load(driver, page_url, "control page")
    finally:
        other.shutdown()
        other.server_close()
    assert report["text_visible"], report.get("wait_error")
    foreign = [r["url"] for r in report["requests"] if origin(r["url"]) != origin(page_url)]
    assert foreign == [f"{api.url}/healthz"]
