"""GET /openapi.json and GET /docs: the document is valid OpenAPI 3.1, describes every route of the app (and
nothing else) from the route table and the Structs, and says what the server really does: the statuses and
bodies it answers, the fields it requires, the types and limits it enforces. The page /docs and its files
are served from the package and reference no other origin (tests/browser loads it in a real browser)."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import msgspec
import pytest
from apikit import assert_error
from openapi_spec_validator import OpenAPIV31SpecValidator
from starlette.routing import Route

from broker import schemas
from broker.http.app import ROUTES, create_app
from broker.http.openapi import build_document
from broker.http.operation import ApiRoute, Operation
from broker.http.routes import account, admin
from broker.http.routes.docs import ASSETS, ASSETS_DIR
from broker.settings import Settings
from broker.store import accounts, apikeys

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "put", "post", "delete", "patch"}
#: The 15 capabilities of the hosted API (the contract), as routes.
CONTRACT = {
    ("POST", "/v1/queue/create"), ("GET", "/v1/queue/get/{queue}"), ("GET", "/v1/queue/list"),
    ("PATCH", "/v1/queue/update/{queue}"), ("DELETE", "/v1/queue/delete/{queue}"),
    ("POST", "/v1/queue/purge/{queue}"), ("GET", "/v1/queue/stats/{queue}"), ("POST", "/v1/queue/publish"),
    ("POST", "/v1/queue/publish_batch"), ("POST", "/v1/queue/consume"), ("POST", "/v1/queue/ack"),
    ("POST", "/v1/queue/nack"), ("GET", "/v1/queue/dlq/list/{queue}"), ("POST", "/v1/queue/dlq/redrive/{queue}"),
    ("POST", "/v1/queue/push_subscribe/{queue}"),
}
PUSH_URL = "https://93.184.215.14/hook"  # a literal, globally routable address: no DNS lookup needed


def is_admin(path: str) -> bool:
    return path.startswith("/v1/admin/")


@pytest.fixture
async def document(api: Any) -> dict[str, Any]:
    response = await api.client.get("/openapi.json")  # no key
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    loaded: dict[str, Any] = response.json()
    return loaded


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method.upper(), path): op for path, item in document["paths"].items()
            for method, op in item.items() if method in METHODS}


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node and len(node) == 1:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def app_routes() -> set[tuple[str, str]]:
    app = create_app(Settings(api_keys=(("p", "k" * 16),)))
    return {(method, route.path) for route in app.routes if isinstance(route, Route)
            for method in route.methods or () if method != "HEAD"}


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    OpenAPIV31SpecValidator(document).validate()
    assert document["openapi"].startswith("3.1.")


def test_every_route_of_the_app_is_documented_and_nothing_else(document: dict[str, Any]) -> None:
    routes = app_routes()
    assert routes == set(operations(document))
    assert all(isinstance(route, ApiRoute) for route in ROUTES)
    ids = [op["operationId"] for op in operations(document).values()]
    assert len(ids) == len(set(ids))


def test_the_contract_and_the_extensions_are_told_apart(document: dict[str, Any]) -> None:
    ops = operations(document)
    assert CONTRACT <= set(ops)
    for key, op in ops.items():
        if key in CONTRACT or not key[1].startswith("/v1/queue/"):
            assert "x-extension" not in op, key
            assert op["tags"] != ["extensions"], key
        else:
            assert op.get("x-extension") is True and op["tags"] == ["extensions"], key
    # docs/api.md marks the same routes as extensions: in a heading, or in a paragraph that starts "Extensions:".
    reference = (ROOT / "docs" / "api.md").read_text()
    marked = set(re.findall(r"^### (\w+) (\S+) \(extension\)$", reference, re.M))
    for paragraph in re.findall(r"Extensions:(.*?)(?:\n\n|$)", reference, re.S):
        marked |= set(re.findall(r"`(GET|POST|PATCH|DELETE|PUT) (/v1/queue/\S+)`", paragraph))
    assert marked == {key for key, op in ops.items() if op.get("x-extension")}


def test_authenticated_routes_use_the_bearer_scheme(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": document["components"]["securitySchemes"]["bearer"][
            "description"]}
    for (method, path), op in operations(document).items():
        if path.startswith("/v1/queue/") or path == "/v1/account":
            assert op["security"] == [{"bearer": []}], (method, path)
            assert {"401", "429", "503"} <= set(op["responses"]), (method, path)
        else:
            assert op["security"] == [], (method, path)
            # /metrics needs the metrics token (not a project key) when one is configured, /v1/admin the admin key.
            assert ("401" in op["responses"]) == (path == "/metrics" or is_admin(path)), (method, path)


async def test_the_routes_without_a_key_answer_without_one(document: dict[str, Any], api: Any) -> None:
    for (method, path), op in operations(document).items():
        if op["security"] == [] and not is_admin(path):
            response = await api.client.request(method, path)
            assert response.status_code == 200, (method, path, response.status_code)


def error_codes(document: dict[str, Any], op: dict[str, Any], status: str) -> set[str]:
    response = resolve(document, op["responses"][status])
    schema = response["content"]["application/json"]["schema"]
    assert schema["allOf"][0] == {"$ref": "#/components/schemas/ErrorResponse"}
    return set(schema["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"])


def test_error_statuses_per_route(document: dict[str, Any]) -> None:
    ops = operations(document)
    for (method, path), op in ops.items():
        statuses = set(op["responses"])
        assert "200" in statuses and "500" in statuses, (method, path)
        if "requestBody" in op:
            assert {"400", "413"} <= statuses, (method, path)
        if "{queue}" in path:
            assert "VALIDATION_ERROR" in error_codes(document, op, "400"), (method, path)
            codes = error_codes(document, op, "404")
            assert "NOT_FOUND" in codes, (method, path)  # a {queue} holding a "/" matches no route
            assert "QUEUE_NOT_FOUND" in codes or path.startswith("/v1/queue/delete/"), (method, path)
    assert error_codes(document, ops[("POST", "/v1/queue/create")], "409") >= {"QUEUE_ALREADY_EXISTS"}
    assert error_codes(document, ops[("DELETE", "/v1/queue/delete/{queue}")], "409") == {"QUEUE_IN_USE"}
    for name in ("ack", "nack", "ack_batch", "extend"):
        op = ops[("POST", f"/v1/queue/{name}")]
        assert "LEASE_EXPIRED" in error_codes(document, op, "409"), name
        assert error_codes(document, op, "404") == {"QUEUE_NOT_FOUND", "MESSAGE_NOT_FOUND"}, name
    assert "SUBSCRIPTION_NOT_FOUND" in error_codes(document, ops[("GET", "/v1/queue/push_subscription/{queue}")],
                                                   "404")
    for status in ("429", "503"):
        assert "Retry-After" in resolve(document, ops[("POST", "/v1/queue/publish")]["responses"][status])["headers"]


def test_the_schemas_are_the_structs(document: dict[str, Any]) -> None:
    """The component schemas are msgspec's own, not written by hand."""
    components = document["components"]["schemas"]
    modules = (schemas, admin, account, accounts, apikeys)
    structs = [next(getattr(m, name) for m in modules if hasattr(m, name)) for name in components]
    _, expected = msgspec.json.schema_components(structs, ref_template="#/components/schemas/{name}")
    assert components == expected
    ops = operations(document)
    assert ops[("POST", "/v1/queue/publish")]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PublishRequest"}
    assert ops[("GET", "/v1/queue/stats/{queue}")]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/QueueStats"}


def test_parameters_are_documented(document: dict[str, Any]) -> None:
    ops = operations(document)
    for (method, path), op in ops.items():
        declared = {p["name"]: p for p in op.get("parameters", [])}
        for name in re.findall(r"\{(\w+)\}", path):
            assert declared[name]["in"] == "path" and declared[name]["required"] is True, (method, path)
        if path == "/v1/queue/list" or path.startswith("/v1/queue/dlq/list/"):
            assert declared["limit"]["in"] == "query" and declared["cursor"]["in"] == "query"
            assert declared["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    queue = {p["name"]: p for p in ops[("GET", "/v1/queue/get/{queue}")]["parameters"]}["queue"]
    assert queue["schema"]["pattern"].startswith("^[A-Za-z0-9_-]{1,80}$")


async def test_query_limits_are_the_ones_the_server_enforces(document: dict[str, Any], api: Any) -> None:
    await api.ok("POST", "/v1/queue/create", {"name": "jobs"})
    for path, url in (("/v1/queue/list", "/v1/queue/list"), ("/v1/queue/dlq/list/{queue}", "/v1/queue/dlq/list/jobs")):
        limit = {p["name"]: p for p in operations(document)[("GET", path)]["parameters"]}["limit"]["schema"]
        for good in (limit["minimum"], limit["maximum"]):
            assert (await api.get(f"{url}?limit={good}")).status_code == 200, (path, good)
        for bad in (limit["minimum"] - 1, limit["maximum"] + 1):
            assert_error(await api.get(f"{url}?limit={bad}"), 400, "VALIDATION_ERROR", "limit")
        assert_error(await api.get(f"{url}?cursor=%25%25"), 400, "VALIDATION_ERROR", "cursor")


def body_schema(document: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    return resolve(document, op["requestBody"]["content"]["application/json"]["schema"])


async def test_required_fields_are_the_ones_the_server_requires(document: dict[str, Any], api: Any) -> None:
    """An empty body is refused naming a required field exactly when the document has one."""
    for (method, path), op in operations(document).items():
        if "requestBody" not in op or is_admin(path):  # admin routes: tests/api/test_api_admin.py
            continue
        required = body_schema(document, op).get("required", [])
        assert op["requestBody"]["required"] is bool(required), (method, path)
        response = await api.request(method, path.format(queue="absent"), {})
        if required:
            error = assert_error(response, 400, "VALIDATION_ERROR")
            assert error.get("field") in required, (method, path, error)
        elif path.startswith("/v1/queue/push_subscribe/"):
            assert_error(response, 400, "VALIDATION_ERROR", "url")  # url or its alias forward_to: one is needed
        else:
            assert response.status_code in (200, 404), (method, path, response.text)


def typed(schema: dict[str, Any]) -> set[str]:
    """The JSON types a property schema admits."""
    if "anyOf" in schema:
        return set().union(*(typed(s) for s in schema["anyOf"]))
    return {schema["type"]} if "type" in schema else {"string", "number", "integer", "boolean", "object", "array",
                                                      "null"}


async def test_types_and_bounds_are_the_ones_the_server_enforces(document: dict[str, Any], api: Any) -> None:
    """Every property that admits no string is refused as a string, and every documented numeric bound is
    the server's: one past it is a 400 naming the field."""
    checked = 0
    for (method, path), op in operations(document).items():
        if "requestBody" not in op or is_admin(path):
            continue
        url = path.format(queue="absent")
        for name, prop in body_schema(document, op)["properties"].items():
            if "string" not in typed(prop):
                assert_error(await api.request(method, url, {name: "not-a-number"}), 400, "VALIDATION_ERROR", name)
                checked += 1
            for bound in [s for s in prop.get("anyOf", [prop]) if s.get("type") in ("integer", "number")]:
                for key, past in (("minimum", -1), ("maximum", 1)):
                    if key in bound:
                        response = await api.request(method, url, {name: bound[key] + past})
                        assert_error(response, 400, "VALIDATION_ERROR", name)
                        checked += 1
    assert checked > 40


class Conformance:
    """Checks an answer against what the document says of its operation and status."""

    def __init__(self, document: dict[str, Any]):
        self.document = document
        self.ops = operations(document)
        self.seen: set[tuple[str, str, int]] = set()

    def __call__(self, method: str, path: str, response: httpx.Response) -> Any:
        op = self.ops[(method, path)]
        status = str(response.status_code)
        assert status in op["responses"], (method, path, status, response.text)
        documented = resolve(self.document, op["responses"][status])
        media_type = response.headers["content-type"].split(";")[0]
        assert media_type in documented["content"], (method, path, media_type)
        assert "x-request-id" in response.headers
        body = response.json()
        schema = documented["content"][media_type]["schema"]
        # The schema's references point into the document: validate with the document as the root resource.
        jsonschema.Draft202012Validator({**self.document, **schema}).validate(body)
        self.seen.add((method, path, response.status_code))
        return body


async def test_answers_conform_to_the_document(document: dict[str, Any], api: Any) -> None:
    """A session over every operation of the contract and the extensions, each answer checked against the
    document: its status is documented for the operation, and its body matches the schema of that status."""
    check = Conformance(document)

    async def call(method: str, path: str, body: Any = None, query: str = "", **fill: str) -> Any:
        url = path.format(**fill) + (f"?{query}" if query else "")
        return check(method, path, await api.request(method, url, body))

    await call("POST", "/v1/queue/create", {"name": "dead"})
    await call("POST", "/v1/queue/create", {"name": "jobs", "max_retries": 0, "enable_priority": True})
    await call("POST", "/v1/queue/create", {"name": "jobs", "max_retries": 3})
    await call("POST", "/v1/queue/create", {"name": "jobs", "dead_letter_queue": "nowhere"})
    await call("GET", "/v1/queue/get/{queue}", queue="jobs")
    await call("GET", "/v1/queue/get/{queue}", queue="absent")
    await call("GET", "/v1/queue/get/{queue}", queue="bad.name")
    await call("GET", "/v1/queue/list", query="limit=1")
    await call("PATCH", "/v1/queue/update/{queue}", {"max_retries": 1}, queue="jobs")
    ids = (await call("POST", "/v1/queue/publish_batch", {"queue": "jobs", "messages": [
        {"payload": {"n": i}, "priority": i} for i in range(4)]}))["message_ids"]
    await call("POST", "/v1/queue/publish_batch", {"queue": "jobs", "messages": [{"payload": None}]})
    await call("POST", "/v1/queue/publish", {"queue": "jobs", "payload": "x" * (300 * 1024)})
    await call("POST", "/v1/queue/publish", {"queue": "jobs", "payload": [1], "delay_seconds": 60,
                                             "idempotency_key": "k1"})
    await call("POST", "/v1/queue/publish", {"queue": "jobs", "payload": [2], "idempotency_key": "k1"})
    await call("GET", "/v1/queue/stats/{queue}", queue="jobs")
    messages = (await call("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 4}))["messages"]
    assert {m["message_id"] for m in messages} == set(ids)
    first, second, third, fourth = messages
    await call("POST", "/v1/queue/extend", {"queue": "jobs", "message_id": first["message_id"],
                                            "visibility_timeout": 60})
    await call("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": first["message_id"], "receipt": "stale.1"})
    await call("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": "absent"})
    await call("POST", "/v1/queue/ack_batch", {"queue": "jobs", "messages": [{"message_id": second["message_id"]}]})
    await call("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": third["message_id"], "requeue": False})
    await call("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": fourth["message_id"], "requeue": False})
    await call("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": first["message_id"]})
    dead = (await call("GET", "/v1/queue/dlq/list/{queue}", query="limit=1", queue="jobs"))
    assert dead["items"] and "next_cursor" in dead
    await call("GET", "/v1/queue/dlq/list/{queue}", query=f"cursor={dead['next_cursor']}", queue="jobs")
    await call("POST", "/v1/queue/dlq/redrive/{queue}", {"message_id": "absent"}, queue="jobs")
    await call("POST", "/v1/queue/dlq/redrive/{queue}", {}, queue="jobs")
    await call("POST", "/v1/queue/push_subscribe/{queue}", {"url": "http://127.0.0.1/hook"}, queue="jobs")
    await call("GET", "/v1/queue/push_subscription/{queue}", queue="jobs")
    await call("POST", "/v1/queue/push_subscribe/{queue}", {"url": PUSH_URL, "dead_letter_queue": "dead"},
               queue="jobs")
    await call("GET", "/v1/queue/push_subscription/{queue}", queue="jobs")
    await call("DELETE", "/v1/queue/delete/{queue}", queue="dead")
    await call("DELETE", "/v1/queue/push_subscription/{queue}", queue="jobs")
    await call("DELETE", "/v1/queue/push_subscription/{queue}", queue="jobs")
    await call("POST", "/v1/queue/purge/{queue}", {"queue": "jobs"}, queue="jobs")
    await call("DELETE", "/v1/queue/delete/{queue}", queue="jobs")
    await call("DELETE", "/v1/queue/delete/{queue}", queue="jobs")
    await call("GET", "/healthz")
    await call("GET", "/readyz")
    check("GET", "/v1/queue/list", await api.client.get("/v1/queue/list"))  # no key
    statuses = {status for _, _, status in check.seen}
    assert statuses == {200, 400, 401, 404, 409, 413}, statuses
    assert {(m, p) for m, p, _ in check.seen} >= CONTRACT


def test_the_document_is_built_once_from_the_route_table() -> None:
    app = create_app(Settings(api_keys=(("p", "k" * 16),)))
    assert isinstance(app.state.openapi, bytes)
    assert msgspec.json.decode(app.state.openapi) == build_document(ROUTES)


async def test_the_served_bytes_are_the_built_ones() -> None:
    app = create_app(Settings(api_keys=(("p", "k" * 16),)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        first, second = await client.get("/openapi.json"), await client.get("/openapi.json")
    assert first.content == second.content == app.state.openapi


def test_a_route_without_its_facts_is_refused() -> None:
    async def endpoint(request: Any) -> Any:
        raise NotImplementedError

    with pytest.raises(TypeError, match="no OpenAPI facts"):
        build_document([*ROUTES, Route("/v1/queue/secret", endpoint, methods=["GET"])])
    with pytest.raises(ValueError, match="not declared"):
        build_document([ApiRoute("/v1/queue/x/{thing}", endpoint, methods=["GET"], operation=Operation(
            "x", "x", tag="queues", response=schemas.Health))])
    with pytest.raises(ValueError, match="one method"):
        ApiRoute("/x", endpoint, methods=["GET", "POST"], operation=Operation("x", "x", response=None))


# --- the interactive reference ---------------------------------------------------------------------------


async def test_the_docs_page_references_only_its_own_origin(api: Any) -> None:
    response = await api.client.get("/docs")  # no key
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    references = re.findall(r'(?:src|href)="([^"]*)"', response.text)
    assert references
    for reference in references:
        assert reference == "data:," or not re.match(r"^([a-z][a-z0-9+.-]*:|//)", reference, re.I), reference
    for reference in references:
        if reference.startswith("docs/assets/"):
            asset = await api.client.get(f"/{reference}")
            assert asset.status_code == 200, reference
            assert asset.headers["content-type"].split(";")[0] in ("text/css", "text/javascript")
            assert len(asset.content) > 100


async def test_the_vendored_files_reference_no_other_host() -> None:
    """The stylesheet loads nothing by URL but data: images, and the start-up script turns off the validator
    badge (Swagger UI's only request to another host)."""
    css = (ASSETS_DIR / "swagger-ui" / "swagger-ui.css").read_text()
    assert "@import" not in css and "@font-face" not in css
    assert all(url.strip("'\"").startswith("data:") for url in re.findall(r"url\(([^)]*)\)", css))
    assert "validatorUrl: null" in (ASSETS_DIR / "docs.js").read_text()


async def test_an_unknown_file_of_the_reference_is_404(api: Any) -> None:
    for path in ("/docs/assets/nope.js", "/docs/assets/../docs.html", "/docs/assets/LICENSE"):
        assert_error(await api.client.get(path), 404, "NOT_FOUND")


def test_the_reference_ships_in_the_package() -> None:
    """Every file /docs serves is package data (the wheel has it), with the vendored files' licence, and the
    version written down in docs/observability.md is the vendored one."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["broker.http"]
    files = [ASSETS_DIR / relative for relative in [*ASSETS.values(), "docs.html", "swagger-ui/LICENSE"]]
    for path in files:
        assert path.is_file(), path
        relative = path.relative_to(ASSETS_DIR.parent).as_posix()
        assert any(fnmatch(relative, pattern) for pattern in patterns), relative
    version = (ASSETS_DIR / "swagger-ui" / "VERSION").read_text().split()[1]
    assert f"swagger-ui-dist {version}" in (ROOT / "docs" / "observability.md").read_text()
