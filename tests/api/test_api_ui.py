"""GET /ui and its two files, without a browser (tests/browser/test_ui.py drives the page itself): served with
no key, under a policy that allows this origin only and no inline script or style, and referencing nothing
elsewhere; the script puts the server's text in as text, never as HTML."""

from __future__ import annotations

import re
from typing import Any

from broker.http.routes.ui import ASSETS, UI_DIR


async def test_the_page_references_only_its_own_origin(api: Any) -> None:
    response = await api.client.get("/ui")  # no key
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    references = re.findall(r'(?:src|href)="([^"]*)"', response.text)
    assert {r for r in references if r.startswith("ui/assets/")} == {"ui/assets/ui.js", "ui/assets/ui.css"}
    for reference in references:
        assert reference == "data:," or not re.match(r"^([a-z][a-z0-9+.-]*:|//)", reference, re.I), reference
    assert "<script>" not in response.text and "style=" not in response.text
    for name in ASSETS:
        asset = await api.client.get(f"/ui/assets/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"].split(";")[0] in ("text/css", "text/javascript")
        assert asset.content == (UI_DIR / name).read_bytes()


def test_the_modules_import_only_each_other() -> None:
    """Every module of UI_DIR is served, and imports only served modules, by relative path."""
    modules = {path.name for path in UI_DIR.glob("*.js")}
    assert modules == {name for name in ASSETS if name.endswith(".js")}
    for name in modules:
        imported = set(re.findall(r'^import .* from "([^"]+)";$', (UI_DIR / name).read_text(), re.M))
        assert imported <= {f"./{m}" for m in modules}, (name, imported)


def test_the_files_ask_no_other_host_and_write_no_html() -> None:
    script = "\n".join((UI_DIR / name).read_text() for name in ASSETS if name.endswith(".js"))
    css = (UI_DIR / "ui.css").read_text()
    assert set(re.findall(r"https?://[^\s\"'`)]+", script + css)) == {"http://www.w3.org/2000/svg"}  # a namespace
    assert "@import" not in css and "url(" not in css
    assert "innerHTML" not in script and "outerHTML" not in script and "insertAdjacentHTML" not in script
    assert "eval(" not in script and "localStorage.setItem" not in script
