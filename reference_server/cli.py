"""``intraday-live-server``: run the reference server, watch a stream, or both (demo).

::

    intraday-live-server serve --port 5000 --auth-mode jwt --jwt-secret ...
    intraday-live-server demo                      # server, simulated feed, dashboard
    intraday-live-server watch --org acme          # the same as ``intraday-live listen``
    intraday-live-server cluster-demo --nodes 3    # nodes over a Redis of its own, a dashboard

Every setting of :class:`~reference_server.config.ServerSettings` is a flag of
``serve`` and ``demo`` (``--max-connections-total``...), generated from the
settings model, so a new setting cannot be forgotten here; flags win over
``INTRADAY_*`` variables, which win over ``--config`` files. Failures a user
can fix (a taken port, a bad value, a missing extra) end in one line on
stderr that names the fix, exit status 2 (1 for a failure at run time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import logging
import re
import sys
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .logformat import configure_logging

if TYPE_CHECKING:
    from .config import ServerSettings

__all__ = ["banner", "main"]

PROG = "intraday-live-server"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _MissingExtra(Exception):
    def __init__(self, name: str | None) -> None:
        super().__init__(
            f"{PROG}: the server needs {name or 'its dependencies'!r}, "
            "which the [server] extra installs: pip install -e '.[server]' (from a checkout)"
        )


def _load_config_module() -> types.ModuleType:
    try:
        from . import config
    except ModuleNotFoundError as exc:
        raise _MissingExtra(exc.name) from None
    return config


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _flag_options(annotation: Any) -> dict[str, Any]:
    """The ``add_argument`` options for a settings field of this type."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction, "default": None}
    if origin is typing.Literal:
        return {"choices": list(args)}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"choices": [member.value for member in annotation]}
    if origin is list:
        return {"type": _comma_list, "metavar": "A,B"}
    if args and type(None) in args:  # X | None
        inner = [a for a in args if a is not type(None)]
        return _flag_options(inner[0]) if len(inner) == 1 else {}
    return {}  # a string: pydantic validates it and names the flag in its message


_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")
"""A Sphinx role, ``:mod:`x.y``` (the target, x.y) or ``:class:`~x.Y``` (its last part, Y)."""


def _plain_text(description: str) -> str:
    """A settings docstring (reST) as a terminal shows it, without its markup.

    Example:
        >>> _plain_text("see :mod:`reference_server.logformat`; ``json`` lines")
        'see reference_server.logformat; json lines'
    """

    def target(match: re.Match[str]) -> str:
        short, name = match.groups()
        return name.rsplit(".", 1)[-1] if short else name

    return _ROLE.sub(target, description).replace("``", "")


def _add_setting_flags(command: argparse.ArgumentParser, settings_cls: Any) -> None:
    group = command.add_argument_group("settings (also INTRADAY_<NAME> or --config)")
    for name, field in settings_cls.model_fields.items():
        default = field.default
        if isinstance(default, enum.Enum):
            default = default.value
        shown = "" if default is None else f" (default {default})"
        described = _plain_text(field.description or name.replace("_", " "))
        help_text = described.replace("%", "%%") + shown
        options = _flag_options(field.annotation)
        if "choices" not in options and "action" not in options:
            options.setdefault("metavar", name.upper())
        group.add_argument("--" + name.replace("_", "-"), dest=name, help=help_text, **options)


def _parser(settings_cls: Any | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="The intraday-live reference server.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server until SIGTERM/SIGINT")
    demo = commands.add_parser("demo", help="run the server with the simulated feed and watch it")
    for command in (serve, demo):
        command.add_argument("--config", type=Path, help="a .toml or .json settings file")
        if settings_cls is not None:
            _add_setting_flags(command, settings_cls)
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--org", default="acme", help="organization to watch (default acme)")

    cluster = commands.add_parser(
        "cluster-demo",
        help="a cluster on this machine: its own redis-server, nodes, the feed on one, "
        "the dashboard on another",
    )
    cluster.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
    cluster.add_argument("--org", default="acme", help="organization to watch (default acme)")
    cluster.add_argument("--duration", type=float, help="stop after this many seconds")

    watch = commands.add_parser(
        "watch", help="print the live events of an organization (intraday-live listen)"
    )
    watch.add_argument("--url", default="http://127.0.0.1:5000", help="server URL")
    watch.add_argument("--path", default="/ws", help="Socket.IO path (default /ws)")
    watch.add_argument("--org", default="acme", help="organization (default acme)")
    watch.add_argument("--duration", type=float, help="stop after this many seconds")
    return parser


def _settings(args: argparse.Namespace, settings_cls: Any, **forced: Any) -> ServerSettings:
    config = _load_config_module()
    flags = {name: getattr(args, name, None) for name in settings_cls.model_fields}
    flags.update(forced)
    settings: ServerSettings = config.load_settings(args.config, **flags)
    return settings


def _configure_logging(settings: ServerSettings) -> None:
    level = getattr(logging, settings.log_level.upper()) if settings.enable_logging else 100
    configure_logging(
        level,
        settings.log_format,
        sys.stderr,
        connection_lines=settings.log_connection_events,
    )


def banner(url: str, settings: ServerSettings) -> str:
    """The start-up lines: every URL the server answers on, as a client or an operator reaches it.

    The plain-WebSocket bridge shares the Socket.IO path (an upgrade without
    ``EIO`` in the query string). The admin UI and ``/metrics`` are listed when
    they are on, with whether they want the admin token.
    """
    ws = url.replace("http", "ws", 1)
    token = settings.admin_token is not None
    # The docs page and the admin UI are public (they hold no data); their forms
    # ask for the token.
    sign_in = "  (sign in with the token)" if token else ""
    lines = [
        f"{PROG} {__version__} listening on {url}",
        f"  Socket.IO   {url}{settings.path}",
        f"  bridge      {ws}{settings.path}",
        f"  API docs    {url}/api/ws/docs{sign_in}",
        f"  health      {url}/api/ws/health",
    ]
    if settings.admin_ui_enabled:
        lines.append(f"  admin UI    {url}/admin/{sign_in}")
    if settings.metrics_enabled:
        guarded = token and settings.metrics_require_token
        lines.append(f"  metrics     {url}/metrics" + ("  (admin token)" if guarded else ""))
    if settings.auth_mode.value == "trust":
        lines.append("  auth mode   trust: ids are accepted as stated (development only)")
    return "\n".join(lines)


def _watch_arguments(url: str, path: str, org: str, duration: float | None) -> list[str]:
    """``watch`` is ``intraday-live listen``: one printer, one set of failure messages."""
    arguments = ["listen", "--url", url, "--path", path, "--org", org, "--user", "watcher"]
    return arguments + (["--duration", str(duration)] if duration is not None else [])


async def _dashboard(url: str, path: str, org: str, duration: float | None) -> None:
    """The SDK's rich dashboard of ``org``; the plain line view without rich."""
    try:
        from client_sdk import ClientConfig, IntradayClient
        from client_sdk.dashboard import run_dashboard
    except ModuleNotFoundError:  # rich is the SDK's dashboard extra
        from client_sdk.cli import listen

        config = ClientConfig(
            url=url,
            path=path,
            user_id="demo-viewer",
            organization_id=org,
            reconnection_attempts=None,
        )
        await listen(config, duration=duration)
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
    print(banner(server.url, settings), file=sys.stderr)
    print("simulated feed on; Ctrl-C stops", file=sys.stderr, flush=True)
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


async def _serve(settings: ServerSettings) -> None:
    from .app import ReferenceServer
    from .transport.http_guard import quiet_accept_failures, raise_file_limit

    raise_file_limit()  # before the server sizes its connection cap on it
    quiet_accept_failures(asyncio.get_running_loop())
    server = ReferenceServer(settings)
    await server.start()
    print(banner(server.url, settings), file=sys.stderr, flush=True)
    await server.wait_stopped()


def _cannot_listen(settings: ServerSettings, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return (
        f"{PROG}: cannot listen on {settings.host}:{settings.port}: {reason}; "
        "choose another port with --port N (make demo PORT=N), or stop what uses it"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        config = _load_config_module()
    except _MissingExtra as exc:
        if arguments[:1] == ["watch"] or "--version" in arguments:
            config = None  # watching needs only the SDK
        else:
            print(exc, file=sys.stderr)
            return EXIT_USAGE
    settings_cls = config.ServerSettings if config is not None else None
    args = _parser(settings_cls).parse_args(arguments)
    if args.command == "watch":
        from client_sdk.cli import main as sdk_main

        return sdk_main(_watch_arguments(args.url, args.path, args.org, args.duration))
    if args.command == "cluster-demo":
        from .cluster_demo import main as cluster_demo

        return cluster_demo(args.nodes, args.org, args.duration)
    assert config is not None
    demo = args.command == "demo"
    try:
        forced: dict[str, Any] = {}
        if demo:
            forced = {"simulate": True, "log_broadcast_events": False}
            # The demo's dashboard redraws the terminal: only warnings may interleave.
            forced["log_level"] = args.log_level or "warning"
        settings = _settings(args, settings_cls, **forced)
    except config.ConfigError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    _configure_logging(settings)
    try:
        if demo:
            asyncio.run(_demo(settings, args.org, args.duration))
        else:
            asyncio.run(_serve(settings))
    except ModuleNotFoundError as exc:
        print(_MissingExtra(exc.name), file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(_cannot_listen(settings, exc), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
