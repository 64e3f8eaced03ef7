"""The management API's OpenAPI description and its Swagger UI page, both truthful and local.

FastAPI's own description lists only 200 and 422 (this API answers
validation failures 400, never 422), no security scheme, and a bare object
for the payloads; its ``/docs`` page loads Swagger UI from a CDN, blank
without internet; and both are served without the admin token. Here:

- :func:`openapi_document` rewrites FastAPI's description: the protocol's
  error body for 400, 401 (with a token set), 404 (socket routes) and 413
  (bodies), the bearer security scheme when a token is configured (declared
  only then, so that it is true), and the payload schemas of section 5 for
  ``POST /broadcast/{kind}``;
- :data:`router` serves it at ``/api/ws/openapi.json`` and Swagger UI at
  ``/api/ws/docs`` behind the same admin-token rule as the API; the page
  carries the description inline (a browser cannot add the bearer header
  to Swagger UI's own fetch) and loads Swagger UI 5.35.0 from files vendored
  in ``swagger_ui/`` (the npm package ``swagger-ui-dist``: nothing on PyPI
  ships Swagger UI 5, which OpenAPI 3.1 needs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic.json_schema import models_json_schema

from client_sdk.protocol import API_BASE
from client_sdk.protocol.payloads import (
    AlertPayload,
    AttendanceCheckPayload,
    AttendancePayload,
    BacklogPayload,
    BacklogSnapshotPayload,
    KpiPayload,
    MetricAlertPayload,
)

from .api_routes import api_parts

__all__ = ["assets", "openapi_document", "router"]

ASSETS = Path(__file__).with_name("swagger_ui")
_ASSET_TYPES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}
SECURITY_SCHEME = "adminToken"

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

_PAYLOADS = (
    KpiPayload,
    MetricAlertPayload,
    BacklogPayload,
    BacklogSnapshotPayload,
    AttendancePayload,
    AttendanceCheckPayload,
    AlertPayload,
)

router = APIRouter()
"""The description and the docs page (included behind the admin token)."""
assets = APIRouter()
"""Swagger UI's own files: public, they are the same for every server."""


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
            if path == f"{API_BASE}/broadcast/{{kind}}":
                refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in _PAYLOADS]
                body = operation.setdefault("requestBody", {"required": True})
                body["content"] = {"application/json": {"schema": {"anyOf": refs}}}
    return document


def _page(document: dict[str, Any]) -> str:
    # The description inline, "</" escaped so that it cannot end the script.
    spec = json.dumps(document).replace("</", "<\\/")
    base = f"{API_BASE}/docs/assets"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{document.get("info", {}).get("title", "API")}</title>
<link rel="stylesheet" href="{base}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{base}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{spec: {spec}, dom_id: "#swagger-ui"}});</script>
</body></html>"""


def _describe(request: Request) -> dict[str, Any]:
    token_required = api_parts(request).settings.admin_token is not None
    return openapi_document(request.app, token_required=token_required)


@router.get(f"{API_BASE}/openapi.json", include_in_schema=False)
async def openapi_json(request: Request) -> JSONResponse:
    """The OpenAPI description."""
    return JSONResponse(_describe(request))


@router.get(f"{API_BASE}/docs", include_in_schema=False)
async def docs_page(request: Request) -> HTMLResponse:
    """Swagger UI over the description, with no file from outside this server."""
    return HTMLResponse(_page(_describe(request)))


@assets.get(f"{API_BASE}/docs/assets/{{name}}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    """One of Swagger UI's two files."""
    media_type = _ASSET_TYPES.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail=f"no asset {name[:64]}")
    return FileResponse(ASSETS / name, media_type=media_type)
