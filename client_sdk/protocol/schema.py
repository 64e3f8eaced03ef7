"""JSON Schema of every protocol message, generated from the models.

The files under ``docs/schema/`` are the published form of this package for
implementations in other languages. They are generated, never edited::

    python -m client_sdk.protocol.schema docs/schema          # write
    python -m client_sdk.protocol.schema --check docs/schema  # CI: exit 1 on drift

File names never contain a colon (it is not portable): an event name's colons
become dots, so the payload of ``kpi:update`` is ``kpi.update.json``. Each
schema carries its wire name in ``title`` and says where it travels in
``x-wire``; payload schemas also name their event and channel in ``x-event``
and ``x-channel``. No schema has an ``$id``: they are addressed by file name.

The output is deterministic (``json.dumps(..., indent=2, sort_keys=True)``), so
the committed files change only when a model does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from .api import (
    BroadcastRequest,
    BroadcastResult,
    ConnectionDetail,
    ConnectionList,
    DisconnectResult,
    Health,
    RoomList,
    Stats,
)
from .bridge import BridgeFrame
from .envelope import Batch, Envelope
from .errors import ErrorInfo, FailureAck
from .events import EVENT_CHANNEL, ClientEvent, ControlEvent, ServerEvent
from .payloads import EVENT_PAYLOADS
from .requests import (
    AuthenticateRequest,
    AuthSuccess,
    PingAck,
    PingRequest,
    Pong,
    RoomsNotice,
    SubscribeAck,
    SubscribeRequest,
    UnsubscribeAck,
    UnsubscribeRequest,
)

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "README_NAME",
    "check_schemas",
    "main",
    "payload_schema_name",
    "readme",
    "render",
    "schemas",
    "write_schemas",
]

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
"""The JSON Schema dialect pydantic generates, stated in every file's ``$schema``."""

README_NAME: Final = "README.md"
"""The generated index written next to the schema files."""

_COMMAND: Final = "python -m client_sdk.protocol.schema"


@dataclass(frozen=True, slots=True)
class _Entry:
    """One schema file: the model it comes from and where the object travels."""

    model: type[BaseModel]
    title: str
    wire: str
    extra: tuple[tuple[str, str], ...] = ()


def payload_schema_name(event: ServerEvent | str) -> str:
    """The file name of an event's payload schema: ``kpi:update`` -> ``kpi.update.json``.

    Raises:
        ValueError: ``event`` is not a server event.
    """
    return f"{ServerEvent(event).value.replace(':', '.')}.json"


def _entries() -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {
        "envelope.json": _Entry(
            Envelope,
            "envelope",
            "the one argument of every server event (section 5); "
            "`data` follows the event's payload schema",
        ),
        "error.json": _Entry(
            ErrorInfo,
            "error",
            "the error object: `error` of a failure ack or HTTP answer, "
            "the `error` event, the `connect_error` data (section 8)",
        ),
        "failure.json": _Entry(
            FailureAck,
            "failure",
            "the ack of any refused request and the body of any HTTP failure (sections 8, 9)",
        ),
        "bridge.frame.json": _Entry(
            BridgeFrame,
            "bridge frame",
            "a text frame a plain-WebSocket bridge client sends (section 1)",
        ),
    }
    for event, model in EVENT_PAYLOADS.items():
        entries[payload_schema_name(event)] = _Entry(
            model,
            event.value,
            f"`data` of the `{event.value}` envelope (section 5)",
            (("x-channel", EVENT_CHANNEL[event].value), ("x-event", event.value)),
        )
    requests: dict[ClientEvent, tuple[type[BaseModel], type[BaseModel]]] = {
        ClientEvent.AUTHENTICATE: (AuthenticateRequest, AuthSuccess),
        ClientEvent.SUBSCRIBE: (SubscribeRequest, SubscribeAck),
        ClientEvent.UNSUBSCRIBE: (UnsubscribeRequest, UnsubscribeAck),
        ClientEvent.PING: (PingRequest, PingAck),
    }
    for client_event, (request, ack) in requests.items():
        stem = client_event.value.replace(":", ".")
        entries[f"request.{stem}.json"] = _Entry(
            request,
            client_event.value,
            f"the argument of the `{client_event.value}` event a client sends",
            (("x-event", client_event.value),),
        )
        entries[f"ack.{stem}.json"] = _Entry(
            ack,
            f"{client_event.value} ack",
            f"the success ack of `{client_event.value}`",
            (("x-event", client_event.value),),
        )
    controls: dict[ControlEvent, type[BaseModel]] = {
        ControlEvent.AUTHENTICATED: AuthSuccess,
        ControlEvent.PONG: Pong,
        ControlEvent.SUBSCRIBED: RoomsNotice,
        ControlEvent.UNSUBSCRIBED: RoomsNotice,
        ControlEvent.BATCH: Batch,
    }
    for control, notice in controls.items():
        entries[f"event.{control.value.replace(':', '.')}.json"] = _Entry(
            notice,
            control.value,
            f"the argument of the `{control.value}` event a server sends",
            (("x-event", control.value),),
        )
    api: dict[str, tuple[type[BaseModel], str]] = {
        "broadcast.request": (BroadcastRequest, "POST /api/ws/broadcast, request body"),
        "broadcast.response": (
            BroadcastResult,
            "POST /api/ws/broadcast and /broadcast/{kind}, response body",
        ),
        "stats": (Stats, "GET /api/ws/stats, response body"),
        "connections": (ConnectionList, "GET /api/ws/connections, response body"),
        "connection": (ConnectionDetail, "GET /api/ws/connections/{socket_id}: one connection"),
        "disconnect": (DisconnectResult, "DELETE /api/ws/connections/{socket_id}, response body"),
        "rooms": (RoomList, "GET /api/ws/rooms, response body"),
        "health": (Health, "GET /api/ws/health, response body"),
    }
    for stem, (body, wire) in api.items():
        entries[f"api.{stem}.json"] = _Entry(body, stem.replace(".", " "), wire)
    return entries


def _schema(entry: _Entry) -> dict[str, Any]:
    schema = entry.model.model_json_schema(mode="validation")
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema["title"] = entry.title
    schema["x-model"] = entry.model.__name__
    schema["x-wire"] = entry.wire
    for key, value in entry.extra:
        schema[key] = value
    return schema


def schemas() -> dict[str, dict[str, Any]]:
    """Generate every schema, keyed by file name (``envelope.json``, ``kpi.update.json``, ...)."""
    return {name: _schema(entry) for name, entry in sorted(_entries().items())}


def render(schema: dict[str, Any]) -> str:
    """The exact text of a schema file: sorted keys, two-space indent, final newline."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def readme() -> str:
    """The generated ``README.md`` that lists every schema file and what it describes."""
    lines = [
        "# JSON Schema of the Intraday live-updates protocol, version 1",
        "",
        "Generated from `client_sdk/protocol/` by",
        f"`{_COMMAND} docs/schema`; do not edit by hand.",
        f"CI runs `{_COMMAND} --check docs/schema`.",
        "",
        "Dialect: JSON Schema 2020-12. Each file's `title` is the wire name, `x-wire` says",
        "where the object travels, payload files also carry `x-event` and `x-channel`.",
        "Event names map to file names with `:` replaced by `.`. Objects a server",
        "sends (envelopes, payloads, answers) allow unknown fields; requests do not.",
        "",
        "| file | title | travels as |",
        "| --- | --- | --- |",
    ]
    for name, entry in sorted(_entries().items()):
        lines.append(f"| [`{name}`]({name}) | `{entry.title}` | {entry.wire} |")
    return "\n".join(lines) + "\n"


def _expected() -> dict[str, str]:
    files = {name: render(schema) for name, schema in schemas().items()}
    files[README_NAME] = readme()
    return files


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema file and the README into ``directory`` (created if missing).

    Files that are already up to date are left untouched. Stale ``*.json``
    files that no model produces any more are not deleted;
    :func:`check_schemas` reports them.

    Returns:
        The paths of all generated files, in file-name order.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, text in sorted(_expected().items()):
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written


def check_schemas(directory: Path) -> list[str]:
    """Compare ``directory`` with the generated files.

    Returns:
        One line per problem (``missing: x``, ``differs: x``, ``extra: x``), empty
        when the directory is up to date. Only ``*.json`` files count as extra.
    """
    expected = _expected()
    problems: list[str] = []
    for name, text in sorted(expected.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"differs: {path}")
    if directory.is_dir():
        for path in sorted(directory.glob("*.json")):
            if path.name not in expected:
                problems.append(f"extra: {path}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the schema files, or with ``--check`` verify them.

    Returns:
        The exit status: 0 on success, 1 when ``--check`` finds a difference.
    """
    parser = argparse.ArgumentParser(
        prog=_COMMAND, description="Generate or check the protocol's JSON Schema files."
    )
    parser.add_argument("directory", type=Path, help="where the schema files live")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the files are not current"
    )
    args = parser.parse_args(argv)
    directory: Path = args.directory
    if args.check:
        problems = check_schemas(directory)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(
                f"JSON Schema files are out of date; run: {_COMMAND} {directory}"
                " (and delete extra files)",
                file=sys.stderr,
            )
            return 1
        print(f"{len(_expected())} files up to date in {directory}")
        return 0
    paths = write_schemas(directory)
    for problem in check_schemas(directory):
        print(f"warning: {problem} (not generated; delete it)", file=sys.stderr)
    print(f"wrote {len(paths)} files to {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
