"""GET /ui: the dashboard (queues, one queue, dead letters), a page, its stylesheet and its JavaScript modules
served from ``broker/http/ui`` (package data: the wheel carries them). No auth on the files themselves: the page asks
for a project key and sends it, as a bearer token, on its calls to the API; the key is kept in the tab's
session storage only.

Like /docs, the page references only its own origin, under a Content-Security-Policy that allows scripts,
styles and connections to this server alone (no inline script or style), so it works with no internet."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from broker.http.operation import ApiRoute, Operation

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
#: The files under /ui/assets/: the stylesheet, the entry module (ui.js) and the modules it imports.
ASSETS = ("ui.css", "ui.js", "api.js", "dom.js", "queue.js", "queues.js")
MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".html": "text/html"}
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _file(name: str, extra: dict[str, str] | None = None) -> FileResponse:
    path = UI_DIR / name
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={**_HEADERS, **(extra or {})})


async def ui_page(request: Request) -> Response:
    return _file("index.html", {"Content-Security-Policy": PAGE_POLICY})


def _asset(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def asset(request: Request) -> Response:
        return _file(name)

    return asset


routes = [
    ApiRoute("/ui", ui_page, methods=["GET"], operation=Operation(
        "ui", "The dashboard (an HTML page; it asks for a project key)", tag="documentation", response=None,
        auth=False, content_types=("text/html",),
    )),
    *(
        ApiRoute(f"/ui/assets/{name}", _asset(name), methods=["GET"], operation=Operation(
            f"ui.assets.{name}", "A file of the dashboard", tag="documentation", response=None, auth=False,
            content_types=(MEDIA_TYPES[Path(name).suffix],),
        ))
        for name in ASSETS
    ),
]
