"""HS256 tokens for the suite's generated users, for servers in ``jwt`` mode.

Just enough of RFC 7519 to sign ``{"sub", "org", "iat", "exp"}`` with a shared
secret, so that the suite needs no JWT library. A server that accepts only
RS256 tokens cannot be given tokens for generated users: its checks that
need an authenticated socket are skipped with that reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

__all__ = ["hs256_token"]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def hs256_token(secret: str, *, user_id: str, organization_id: str, ttl: float = 600) -> str:
    """A signed JWT for ``user_id`` of ``organization_id``, valid for ``ttl`` seconds."""
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"sub": user_id, "org": organization_id, "iat": now, "exp": now + int(ttl)}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"
