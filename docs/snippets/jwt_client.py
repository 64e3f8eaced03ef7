"""Mint tokens the reference server accepts in jwt mode, and connect with them."""

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt  # PyJWT; RS256 also needs its crypto extra: pip install 'PyJWT[crypto]'

from client_sdk import ClientConfig, IntradayClient

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")
SECRET = os.environ.get("INTRADAY_JWT_SECRET", "")  # HS256: the server's --jwt-secret
PRIVATE_KEY = os.environ.get("INTRADAY_JWT_PRIVATE_KEY")  # RS256: a PEM private key file


def mint(user_id: str, organization_id: str, lifetime: timedelta = timedelta(minutes=15)) -> str:
    """A token for one user of one organization: claims sub, org and exp."""
    claims = {"sub": user_id, "org": organization_id, "exp": datetime.now(UTC) + lifetime}
    if PRIVATE_KEY:
        return jwt.encode(claims, Path(PRIVATE_KEY).read_text(), algorithm="RS256")
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def main() -> None:
    config = ClientConfig(
        url=URL,
        user_id="ops-bot",
        organization_id="acme",
        token_provider=lambda: mint("ops-bot", "acme"),  # a fresh token on every (re)connect
    )
    async with IntradayClient(config) as client:
        assert client.identity is not None
        print("authenticated as", client.identity.user_id, "in", client.identity.organization_id)


if __name__ == "__main__":
    asyncio.run(main())
