"""GET /openapi.json (the OpenAPI document, built once per process by ``create_app``) and GET /docs (an
interactive reference: Swagger UI, served from the files vendored in ``broker/http/assets``); no auth.

The page references only its own origin: the Content-Security-Policy it is served with lets the browser load
scripts, styles and data from this server alone, so the reference works on a machine with no internet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from broker.http.operation import ApiRoute, Operation

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
#: The files of the reference: ``/docs/assets/<name>`` -> file under ``ASSETS_DIR`` (the vendored ones come
#: from scripts/vendor-docs-assets).
ASSETS = {
    "swagger-ui.css": "swagger-ui/swagger-ui.css",
    "swagger-ui-bundle.js": "swagger-ui/swagger-ui-bundle.js",
    "docs.js": "docs.js",
}
MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".html": "text/html"}
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def _file(relative: str, extra: dict[str, str] | None = None) -> FileResponse:
    path = ASSETS_DIR / relative
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={**_HEADERS, **(extra or {})})


async def openapi_json(request: Request) -> Response:
    document: bytes = request.app.state.openapi
    return Response(document, media_type="application/json")


async def docs_page(request: Request) -> Response:
    return _file("docs.html", {"Content-Security-Policy": PAGE_POLICY})


def _asset(relative: str) -> Callable[[Request], Awaitable[Response]]:
    async def asset(request: Request) -> Response:
        return _file(relative)

    return asset


routes = [
    ApiRoute("/openapi.json", openapi_json, methods=["GET"], operation=Operation(
        "openapi", "This OpenAPI 3.1 document", tag="documentation", response=None, auth=False,
    )),
    ApiRoute("/docs", docs_page, methods=["GET"], operation=Operation(
        "docs", "The interactive API reference (an HTML page)", tag="documentation", response=None, auth=False,
        content_types=("text/html",),
    )),
    *(
        ApiRoute(f"/docs/assets/{name}", _asset(relative), methods=["GET"], operation=Operation(
            f"docs.assets.{name}", "A file of the interactive reference", tag="documentation", response=None,
            auth=False, content_types=(MEDIA_TYPES[Path(name).suffix],),
        ))
        for name, relative in ASSETS.items()
    ),
]
