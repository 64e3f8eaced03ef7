"""``intraday-live-server``: run the reference server, watch a stream, or both (demo)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from .config import ConfigError, ServerSettings, load_settings
from .logformat import configure_logging

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="intraday-live-server", description="The intraday-live reference server."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server until SIGTERM/SIGINT")
    demo = commands.add_parser("demo", help="run the server with the simulated feed and watch it")
    for command in (serve, demo):
        command.add_argument("--host", help="address to listen on (default 127.0.0.1)")
        command.add_argument("--port", type=int, help="port (default 5000; 0 picks a free one)")
        command.add_argument("--config", type=Path, help="a .toml or .json settings file")
        # The demo's dashboard redraws the terminal: only warnings may interleave.
        level = "warning" if command is demo else "info"
        command.add_argument("--log-level", default=level, help=f"debug, info... (default {level})")
        command.add_argument(
            "--log-format",
            choices=["text", "json"],
            help="json: one object per line (default text)",
        )
    serve.add_argument("--auth-mode", choices=["trust", "jwt"], help="default trust")
    serve.add_argument("--admin-token", help="bearer token for the management API")
    serve.add_argument("--jwt-secret", help="HS256 secret (jwt mode)")
    serve.add_argument("--jwt-public-key-file", type=Path, help="RS256 public key (jwt mode)")
    serve.add_argument("--simulate", action="store_true", default=None, help="run the feed")
    serve.add_argument(
        "--store", help="replay and snapshot store: memory (default), none, or redis://HOST:PORT/DB"
    )
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--org", default="acme", help="organization to watch (default acme)")

    watch = commands.add_parser("watch", help="print the live events of an organization")
    watch.add_argument("--url", default="http://127.0.0.1:5000")
    watch.add_argument("--path", default="/ws")
    watch.add_argument("--org", default="acme")
    watch.add_argument("--duration", type=float)
    return parser


def _settings(args: argparse.Namespace, **forced: Any) -> ServerSettings:
    flags = {
        "host": args.host,
        "port": args.port,
        "auth_mode": getattr(args, "auth_mode", None),
        "admin_token": getattr(args, "admin_token", None),
        "jwt_secret": getattr(args, "jwt_secret", None),
        "jwt_public_key_file": getattr(args, "jwt_public_key_file", None),
        "simulate": getattr(args, "simulate", None),
        "log_format": args.log_format,
        "store": getattr(args, "store", None),
        **forced,
    }
    return load_settings(args.config, **flags)


def _configure_logging(level: str, settings: ServerSettings) -> None:
    chosen = getattr(logging, level.upper(), logging.INFO) if settings.enable_logging else 100
    configure_logging(chosen, settings.log_format, sys.stderr)


async def _dashboard(url: str, path: str, org: str, duration: float | None) -> None:
    """The SDK's rich dashboard of ``org``; the plain line view without rich."""
    try:
        from client_sdk import IntradayClient
        from client_sdk.dashboard import run_dashboard
    except ModuleNotFoundError:  # rich is the SDK's dashboard extra
        from .live_view import watch

        await watch(url, org, path=path, duration=duration)
        return
    client = IntradayClient(
        url=url, path=path, user_id="demo-viewer", organization_id=org, reconnection_attempts=None
    )
    try:
        await run_dashboard(client, organization_id=org, duration=duration)
    finally:
        await client.close()


async def _demo(settings: ServerSettings, org: str, duration: float | None) -> None:
    from .app import ReferenceServer

    server = ReferenceServer(settings)
    await server.start()
    print(f"reference server on {server.url}{settings.path} (simulated feed); Ctrl-C stops")
    watcher = asyncio.create_task(_dashboard(server.url, settings.path, org, duration))
    stopped = asyncio.create_task(server.wait_stopped())
    done, _ = await asyncio.wait({stopped, watcher}, return_when=asyncio.FIRST_COMPLETED)
    if watcher in done:
        await server.stop()
    else:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    await stopped


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "watch":
        from .live_view import watch

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(watch(args.url, args.org, path=args.path, duration=args.duration))
        return 0
    try:
        settings = (
            _settings(args, simulate=True, log_broadcast_events=False)
            if args.command == "demo"
            else _settings(args)
        )
    except ConfigError as error:
        print(f"intraday-live-server: {error}", file=sys.stderr)
        return 2
    _configure_logging(args.log_level, settings)
    if args.command == "demo":
        asyncio.run(_demo(settings, args.org, args.duration))
        return 0
    from .app import ReferenceServer

    asyncio.run(ReferenceServer(settings).serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
