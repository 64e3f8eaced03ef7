"""The management API (protocol section 9) as the checks use it: raw answers.

Unlike :class:`client_sdk.admin.AdminClient`, nothing here turns a failure
into an exception: a check needs the status and the body exactly as the
server sent them, to compare them with the rule and to quote them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import httpx

from ..protocol import API_BASE
from .failures import CheckFailure

__all__ = ["AdminApi", "Answer", "Token"]


class Token(Enum):
    """Which credentials a request carries."""

    CONFIGURED = "configured"
    """The admin token of the run, if any."""
    NONE = "none"
    """No ``Authorization`` header."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: status, the JSON body (``None`` if not JSON) and the raw text."""

    method: str
    path: str
    status: int
    body: Any
    text: str

    def describe(self) -> str:
        """``POST /broadcast -> 400 {...}``, for failure messages."""
        shown = self.text if len(self.text) <= 600 else self.text[:600] + "..."
        return f"{self.method} {API_BASE}{self.path} -> {self.status} {shown}"

    @property
    def error_code(self) -> str | None:
        """The ``error.code`` of a failure body."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        return code if isinstance(code, str) else None


_NO_BODY: Final = object()


class AdminApi:
    """Requests to ``{url}/api/ws`` with or without the admin token.

    Args:
        http: a client whose ``base_url`` is the server's URL.
        token: the admin token, or ``None``.
    """

    def __init__(self, http: httpx.AsyncClient, token: str | None) -> None:
        self._http = http
        self.token = token
        self.last_sent: Any = None
        """The last request, as quoted in failure messages: its body, or method and path."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = _NO_BODY,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        token: Token | str = Token.CONFIGURED,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Send one request to ``API_BASE + path``; the answer whatever its status.

        Raises:
            CheckFailure: the server could not be reached or did not answer in time.
        """
        headers = dict(headers or {})
        described = f"{method} {API_BASE}{path}"
        self.last_sent = {described: json_body} if json_body is not _NO_BODY else described
        secret = self.token if token is Token.CONFIGURED else token
        if isinstance(secret, str):
            headers["Authorization"] = f"Bearer {secret}"
        if json_body is not _NO_BODY:
            content = json.dumps(json_body).encode()
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._http.request(
                method, API_BASE + path, content=content, params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            raise CheckFailure(
                f"an answer to {method} {API_BASE}{path}", received=f"{type(exc).__name__}: {exc}"
            ) from None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        return Answer(method, path, response.status_code, body, response.text)

    async def get(
        self,
        path: str,
        *,
        params: dict[str, str] | None = None,
        token: Token | str = Token.CONFIGURED,
    ) -> Answer:
        """``GET API_BASE + path``."""
        return await self.request("GET", path, params=params, token=token)

    async def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A request that must answer 200 ``{"success": true, ...}``; its body.

        Raises:
            CheckFailure: any other answer.
        """
        answer = await self.request(method, path, **kwargs)
        body = answer.body
        if answer.status != 200 or not isinstance(body, dict) or body.get("success") is not True:
            sent = kwargs.get("json_body", f"{method} {API_BASE}{path}")
            raise CheckFailure(
                f"{method} {API_BASE}{path} to answer 200 with success: true",
                sent=sent,
                received=answer.describe(),
            )
        return body

    async def broadcast(
        self,
        event: str,
        data: dict[str, Any],
        *,
        target: dict[str, Any] | None = None,
        priority: str | None = None,
        requires_ack: bool | None = None,
    ) -> dict[str, Any]:
        """``POST /broadcast`` that must be accepted; the answer's body."""
        body: dict[str, Any] = {"event": event, "data": data}
        if target is not None:
            body["target"] = target
        if priority is not None:
            body["priority"] = priority
        if requires_ack is not None:
            body["requires_ack"] = requires_ack
        return await self.ok("POST", "/broadcast", json_body=body)
