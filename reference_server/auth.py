"""Who a socket is: the ``trust`` and ``jwt`` authentication modes (protocol section 3)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import jwt

from client_sdk.protocol import AuthenticateRequest, ErrorCode, ProtocolError

from .config import AuthMode, ServerSettings

__all__ = ["TRUST_MODE_WARNING", "Authenticator", "Identity", "mode_warning"]

log = logging.getLogger(__name__)

TRUST_MODE_WARNING = "auth mode 'trust': ids are accepted as stated; never use it in production"


def mode_warning(mode: AuthMode) -> str | None:
    """The loud warning of trust mode (logged at start, shown by ``/health``), else ``None``."""
    return TRUST_MODE_WARNING if mode is AuthMode.TRUST else None


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user of an organization."""

    user_id: str
    organization_id: str


class Authenticator:
    """Checks an ``authenticate`` request against the configured mode.

    In ``jwt`` mode the token must verify with the configured key (HS256 with
    a shared secret, RS256 with a public key file), ``exp`` is honoured, and
    the stated ``user_id`` and ``organization_id`` must equal the ``sub`` and
    ``org`` claims.
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.mode = settings.auth_mode
        self._keys: list[tuple[str, Any]] = []
        if settings.jwt_secret is not None:
            self._keys.append(("HS256", settings.jwt_secret.get_secret_value()))
        if settings.jwt_public_key_file is not None:
            self._keys.append(("RS256", settings.jwt_public_key_file.read_text()))

    def authenticate(self, request: AuthenticateRequest) -> Identity:
        """Return the identity the request proves.

        Raises:
            ProtocolError: ``AUTH_FAILED``, with ``details.reason`` saying why.
        """
        if self.mode is AuthMode.TRUST:
            return Identity(request.user_id, request.organization_id)
        if not request.token:
            raise _failed("a token is required", "token_missing")
        claims = self._verify(request.token)
        for claim, field, stated in (
            ("sub", "user_id", request.user_id),
            ("org", "organization_id", request.organization_id),
        ):
            if claims.get(claim) != stated:
                raise _failed(
                    f"the token's {claim!r} claim does not match the stated {field} {stated!r}",
                    "claims_mismatch",
                    claim=claim,
                )
        return Identity(request.user_id, request.organization_id)

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _failed("malformed token", "token_invalid") from None
        for algorithm, key in self._keys:
            if header.get("alg") != algorithm:
                continue
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    options={"require": ["sub", "org", "exp"]},
                )
            except jwt.ExpiredSignatureError:
                raise _failed("token expired", "token_expired") from None
            except jwt.MissingRequiredClaimError as exc:
                raise _failed(
                    f"invalid token: the {exc.claim!r} claim is missing",
                    "token_invalid",
                    claim=exc.claim,
                ) from None
            except jwt.InvalidTokenError as exc:
                # PyJWT names the check that failed (signature, nbf, iat...).
                log.debug("token rejected: %s", exc)
                raise _failed(f"invalid token: {exc}", "token_invalid") from None
            return claims
        raise _failed("token algorithm not accepted", "token_invalid")


def _failed(message: str, reason: str, **details: str) -> ProtocolError:
    return ProtocolError(ErrorCode.AUTH_FAILED, message, details={"reason": reason, **details})
