"""What operators reach besides the management API: ``GET /metrics`` and the admin UI.

``/metrics`` renders the server's :class:`~reference_server.metrics.ServerMetrics`
in the Prometheus text format; the app factory puts it behind the admin token
unless ``metrics_require_token`` is off. The admin UI is static files (HTML, a
script, a style sheet) served from ``/admin/``: they hold no data and need no
token, because everything they show comes from the management API, which the
page calls with the token the operator typed into its login form (kept in the
tab's ``sessionStorage``, never in a URL; the form posts and its input has no
name, so even submitted without JavaScript the token goes nowhere).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from client_sdk.protocol import ErrorCode, ProtocolError

from .api_routes import ApiError, api_parts
from .metrics import CONTENT_TYPE

__all__ = ["ADMIN_UI_DIR", "ADMIN_UI_PATH", "METRICS_PATH", "metrics_route", "mount_admin_ui"]

METRICS_PATH: Final = "/metrics"
ADMIN_UI_PATH: Final = "/admin"
ADMIN_UI_DIR: Final = Path(__file__).with_name("admin_ui")

metrics_route = APIRouter()
"""``GET /metrics``; the app factory decides whether it needs the token."""


@metrics_route.get(METRICS_PATH, response_class=Response, include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The Prometheus exposition of this server."""
    parts = api_parts(request)
    figures = parts.metrics
    if figures is None:
        raise ApiError(ProtocolError(ErrorCode.INVALID_MESSAGE, "metrics are off"), status=404)
    if parts.store is not None:
        # The store's figures are awaited (Redis): read them here, once per scrape.
        figures.set_store_size((await parts.store.stats()).messages)
    return Response(figures.exposition(), media_type=CONTENT_TYPE)


class _AdminFiles(StaticFiles):
    """The UI's files, with headers that keep the page to itself."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        # Only our own script and styles, no frames, no referrer: the page holds a token.
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
        )
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount_admin_ui(app: FastAPI) -> None:
    """Serve the admin UI at ``/admin/`` (``/admin`` redirects there).

    ``/admin/settings.json`` tells the page whether the server has an admin
    token: without one the page does not ask for a token (any string would
    pass) and says instead that the API is open to whoever reaches it.
    """

    async def to_index() -> RedirectResponse:
        return RedirectResponse(f"{ADMIN_UI_PATH}/")

    async def ui_settings(request: Request) -> JSONResponse:
        token = api_parts(request).settings.admin_token is not None
        return JSONResponse({"admin_token": token}, headers={"Cache-Control": "no-store"})

    app.add_api_route(ADMIN_UI_PATH, to_index, include_in_schema=False)
    # Before the mount, which would otherwise answer every path under /admin/.
    app.add_api_route(f"{ADMIN_UI_PATH}/settings.json", ui_settings, include_in_schema=False)
    app.mount(ADMIN_UI_PATH, _AdminFiles(directory=ADMIN_UI_DIR, html=True), name="admin-ui")
