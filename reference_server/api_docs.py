"""The management API's OpenAPI description and its Swagger UI page, both truthful and local.

FastAPI's own description lists only 200 and 422 (this API answers
validation failures 400, never 422), no security scheme, and a bare object
for the payloads; its ``/docs`` page loads Swagger UI from a CDN, blank
without internet; and both are served without the admin token. Here:

- :func:`openapi_document` rewrites FastAPI's description: the protocol's
  error body for 400, 401 (with a token set), 404 (socket routes), 413
  (bodies), 409 and 503 (broadcasts: a reused ``Idempotency-Key``, the store
  or the cluster away), the bearer security scheme when a token is configured (declared
  only then, so that it is true), operation ids chosen here (not generated
  from function names), and bodies as strict as the server: ``POST
  /broadcast`` is one variant per event (``event`` the discriminator, ``data``
  that event's payload), and ``POST /broadcast/{kind}`` is described as one
  path per kind, whose ``?event=`` lists only that channel's events with the
  kind's payload (the channel's other events, ``kpi:alert``..., take another
  payload: they are described on ``POST /broadcast``);
- :data:`router` serves the description at ``/api/ws/openapi.json`` behind the
  same admin-token rule as the API; :data:`assets` serves the Swagger UI page
  at ``/api/ws/docs`` and its files, public like the admin UI's, as they hold
  no data: with a token set, the page asks for it, fetches the description
  with it and authorizes Swagger UI with it (its Authorize button shows the
  bearer scheme), so that a browser, which cannot add a header itself, can
  try every route. Swagger UI 5.35.0 comes from files vendored in
  ``swagger_ui/`` (the npm package ``swagger-ui-dist``: nothing on PyPI
  ships Swagger UI 5, which OpenAPI 3.1 needs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic.json_schema import models_json_schema

from client_sdk.protocol import (
    API_BASE,
    EVENT_CHANNEL,
    EVENT_PAYLOADS,
    BroadcastKind,
    ServerEvent,
)

from .api_routes import api_parts

__all__ = ["assets", "openapi_document", "router"]

ASSETS = Path(__file__).with_name("swagger_ui")
_ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "docs-page.js": "text/javascript",
}
SECURITY_SCHEME = "adminToken"
DOCS_PATH = f"{API_BASE}/docs"

OPERATION_IDS: dict[tuple[str, str], str] = {
    ("get", f"{API_BASE}/health"): "getHealth",
    ("get", f"{API_BASE}/asyncapi.json"): "getAsyncApiDocument",
    ("get", f"{API_BASE}/stats"): "getStats",
    ("get", f"{API_BASE}/connections"): "listConnections",
    ("get", f"{API_BASE}/connections/{{socket_id}}"): "getConnection",
    ("delete", f"{API_BASE}/connections/{{socket_id}}"): "disconnectConnection",
    ("get", f"{API_BASE}/rooms"): "listRooms",
    ("post", f"{API_BASE}/broadcast"): "broadcast",
    **{
        ("post", f"{API_BASE}/broadcast/{kind.value}"): f"broadcast{kind.value.title()}"
        for kind in BroadcastKind
    },
}
"""The operation id of every route; a route missing here fails the description's test."""

_ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["success", "error"],
    "properties": {
        "success": {"const": False},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "retryable": {"type": "boolean"},
                "details": {"type": "object"},
            },
        },
    },
}

_PAYLOADS = tuple(dict.fromkeys(EVENT_PAYLOADS.values()))  # each model once, in event order

router = APIRouter()
"""The description (included behind the admin token)."""
assets = APIRouter()
"""The docs page and Swagger UI's files: public, they hold no data."""


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


def openapi_document(app: FastAPI, *, token_required: bool) -> dict[str, Any]:
    """FastAPI's description of ``app``, made true (see the module docstring)."""
    document: dict[str, Any] = json.loads(json.dumps(app.openapi()))  # FastAPI caches its own
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["ErrorBody"] = _ERROR_BODY
    _, payload_schemas = models_json_schema(
        [(model, "validation") for model in _PAYLOADS],
        ref_template="#/components/schemas/{model}",
    )
    schemas.update(payload_schemas.get("$defs", {}))
    if token_required:
        components["securitySchemes"] = {SECURITY_SCHEME: {"type": "http", "scheme": "bearer"}}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses["400"] = _error("INVALID_MESSAGE: a parameter or the body is invalid")
            if path == f"{API_BASE}/health":
                continue
            if token_required:
                operation["security"] = [{SECURITY_SCHEME: []}]
                responses["401"] = _error("AUTH_FAILED: the admin bearer token is missing or wrong")
            if "{socket_id}" in path:
                responses["404"] = _error("no connected socket has this id")
            if method == "post":
                responses["413"] = _error("MESSAGE_TOO_LARGE: the body is over the limit")
            if path.startswith(f"{API_BASE}/broadcast"):
                responses["409"] = _error(
                    "INVALID_MESSAGE: this Idempotency-Key was already used with another body"
                )
                responses["503"] = _error(
                    "the message store or the cluster is unreachable (retryable: retry with "
                    "the same Idempotency-Key)"
                )
            if path == f"{API_BASE}/broadcast":
                body = operation.setdefault("requestBody", {"required": True})
                body["content"] = {"application/json": {"schema": _broadcast_variants(schemas)}}
    _split_by_kind(document["paths"])
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            operation["operationId"] = OPERATION_IDS.get((method, path), operation["operationId"])
    return document


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _broadcast_variants(schemas: dict[str, Any]) -> dict[str, Any]:
    """``POST /broadcast``'s body: one schema per event, its ``data`` that event's payload."""
    base = schemas.pop("BroadcastRequest")
    mapping: dict[str, str] = {}
    for event, model in EVENT_PAYLOADS.items():
        name = "Broadcast_" + event.value.replace(":", "_")
        variant = json.loads(json.dumps(base))
        variant["title"] = f"Broadcast {event.value}"
        variant["description"] = f"``POST /broadcast`` of ``{event.value}``."
        variant["properties"]["event"] = {"const": event.value, "type": "string"}
        variant["properties"]["data"] = _ref(model.__name__)
        schemas[name] = variant
        mapping[event.value] = f"#/components/schemas/{name}"
    return {
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "event", "mapping": mapping},
    }


def _kind_events(kind: BroadcastKind) -> list[ServerEvent]:
    """The events ``?event=`` may name on ``/broadcast/{kind}`` with the kind's payload."""
    payload = EVENT_PAYLOADS[kind.default_event]
    return [
        event
        for event, channel in EVENT_CHANNEL.items()
        if channel is kind.channel and EVENT_PAYLOADS[event] is payload
    ]


def _split_by_kind(paths: dict[str, Any]) -> None:
    """``/broadcast/{kind}`` as one path per kind, each with its own payload and events."""
    template = paths.pop(f"{API_BASE}/broadcast/{{kind}}", None)
    if template is None:
        return
    for kind in BroadcastKind:
        operation = json.loads(json.dumps(template["post"]))
        events = [event.value for event in _kind_events(kind)]
        payload = EVENT_PAYLOADS[kind.default_event].__name__
        operation["summary"] = f"Broadcast a {kind.channel.value} payload"
        operation["description"] = (
            f"Publish a ``{payload}`` to its own organization, department and queue, "
            f"as ``{kind.default_event.value}`` or the ``?event=`` named "
            f"({', '.join(events)}). The channel's events with another payload are "
            "published with ``POST /broadcast``."
        )
        parameters = []
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "kind":
                continue
            if parameter["name"] == "event":
                parameter["schema"] = {
                    "type": "string",
                    "enum": events,
                    "default": kind.default_event.value,
                }
            parameters.append(parameter)
        operation["parameters"] = parameters
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(payload)}},
        }
        paths[f"{API_BASE}/broadcast/{kind.value}"] = {"post": operation}


def _page(title: str, token_required: bool) -> str:
    """The docs page: Swagger UI over the description, which ``docs-page.js`` fetches.

    The page holds no data (the description is fetched with the token typed
    into its form); the token input has no name and the form posts, so the
    token never lands in a URL.
    """
    base = f"{DOCS_PATH}/assets"
    required = "true" if token_required else "false"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{base}/swagger-ui.css"></head>
<body data-description="{API_BASE}/openapi.json" data-token-required="{required}"
 data-security-scheme="{SECURITY_SCHEME}">
<form id="token-form" method="post" hidden style="margin: 1rem 2rem; font-family: sans-serif">
<label>Admin token <input id="token" type="password" autocomplete="off" required></label>
<button type="submit">Show the API</button>
<span id="token-error" role="alert" style="color: #b91c1c"></span>
</form>
<div id="swagger-ui"></div>
<script src="{base}/swagger-ui-bundle.js"></script>
<script src="{base}/docs-page.js"></script>
</body></html>"""


def _describe(request: Request) -> dict[str, Any]:
    token_required = api_parts(request).settings.admin_token is not None
    return openapi_document(request.app, token_required=token_required)


@router.get(f"{API_BASE}/openapi.json", include_in_schema=False)
async def openapi_json(request: Request) -> JSONResponse:
    """The OpenAPI description."""
    return JSONResponse(_describe(request))


@assets.get(DOCS_PATH, include_in_schema=False)
async def docs_page(request: Request) -> HTMLResponse:
    """Swagger UI over the description, with no file from outside this server."""
    token_required = api_parts(request).settings.admin_token is not None
    return HTMLResponse(
        _page(request.app.title, token_required), headers={"Cache-Control": "no-cache"}
    )


@assets.get(f"{DOCS_PATH}/assets/{{name}}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    """One of Swagger UI's files, or the page's own script."""
    media_type = _ASSET_TYPES.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail=f"no asset {name[:64]}")
    return FileResponse(ASSETS / name, media_type=media_type)
