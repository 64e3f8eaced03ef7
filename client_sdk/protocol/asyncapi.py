"""The protocol as an AsyncAPI 3.0 document, generated from the same models as the JSON Schemas.

For teams that build their own server or client: one machine-readable
description of the Socket.IO path (the channels and their server events,
each an envelope around its payload schema; the client requests with their
acks; the control events) and of the plain-WebSocket bridge. It is
generated, never edited::

    python -m client_sdk.protocol.asyncapi docs/asyncapi.json          # write
    python -m client_sdk.protocol.asyncapi --check docs/asyncapi.json  # CI: exit 1 on drift

The document describes the *server*: ``send`` operations are events it
sends, ``receive`` operations requests it answers (``reply``: the ack).
Schemas follow the AsyncAPI schema format (a superset of JSON Schema draft
07): pydantic's 2020-12 output is adapted where the two differ
(``discriminator`` is a property name there, tuples use ``items``).
The output is deterministic, so the committed file changes only when a
model does; the reference server serves it at ``/api/ws/asyncapi.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .bridge import BridgeFrame
from .envelope import Batch, Envelope
from .errors import ErrorInfo, FailureAck
from .events import EVENT_CHANNEL, Channel, ClientEvent, ControlEvent, ServerEvent
from .payloads import EVENT_PAYLOADS
from .requests import (
    PROTOCOL_VERSION,
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

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document", "main", "render"]

ASYNCAPI_VERSION: Final = "3.0.0"
_COMMAND: Final = "python -m client_sdk.protocol.asyncapi"
_REF: Final = "#/components/schemas/{model}"

_REQUESTS: Final[dict[ClientEvent, tuple[type[BaseModel], type[BaseModel]]]] = {
    ClientEvent.AUTHENTICATE: (AuthenticateRequest, AuthSuccess),
    ClientEvent.SUBSCRIBE: (SubscribeRequest, SubscribeAck),
    ClientEvent.UNSUBSCRIBE: (UnsubscribeRequest, UnsubscribeAck),
    ClientEvent.PING: (PingRequest, PingAck),
}
_CONTROLS: Final[dict[ControlEvent, type[BaseModel]]] = {
    ControlEvent.AUTHENTICATED: AuthSuccess,
    ControlEvent.ERROR: ErrorInfo,
    ControlEvent.PONG: Pong,
    ControlEvent.SUBSCRIBED: RoomsNotice,
    ControlEvent.UNSUBSCRIBED: RoomsNotice,
    ControlEvent.BATCH: Batch,
}


def _key(name: str) -> str:
    """An AsyncAPI component key (``^[a-zA-Z0-9.\\-_]+$``) for a wire name."""
    return name.replace(":", ".")


def _adapt(node: Any) -> Any:
    """pydantic's JSON Schema 2020-12 in the AsyncAPI schema format (draft 07 based)."""
    if isinstance(node, list):
        return [_adapt(item) for item in node]
    if not isinstance(node, dict):
        return node
    adapted = {key: _adapt(value) for key, value in node.items()}
    discriminator = adapted.get("discriminator")
    if isinstance(discriminator, dict):
        adapted["discriminator"] = discriminator.get("propertyName")
    if "prefixItems" in adapted:
        adapted["items"] = adapted.pop("prefixItems")
    return adapted


def _schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """Every model's schema, hoisted into components: (model name -> ref, components)."""
    models: list[type[BaseModel]] = [
        Envelope, Batch, ErrorInfo, FailureAck, BridgeFrame, Pong, RoomsNotice,
        *EVENT_PAYLOADS.values(),
        *(model for pair in _REQUESTS.values() for model in pair),
    ]  # fmt: skip
    unique = list(dict.fromkeys(models))
    refs, top = models_json_schema([(model, "validation") for model in unique], ref_template=_REF)
    components = {name: _adapt(schema) for name, schema in top.get("$defs", {}).items()}
    by_model = {model.__name__: refs[(model, "validation")] for model in unique}
    return by_model, components


def _message(name: str, title: str, summary: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "title": title, "summary": summary, "payload": payload}


def _server_event(event: ServerEvent, refs: dict[str, Any]) -> dict[str, Any]:
    payload = EVENT_PAYLOADS[event]
    envelope = {
        "allOf": [
            refs[Envelope.__name__],
            {
                "type": "object",
                "properties": {
                    "event": {"const": event.value},
                    "channel": {"const": EVENT_CHANNEL[event].value},
                    "data": refs[payload.__name__],
                },
            },
        ]
    }
    summary = f"`{event.value}`: the envelope around a {payload.__name__} (section 5)"
    return _message(event.value, event.value, summary, envelope)


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of protocol version 1."""
    refs, components = _schemas()
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for channel in Channel:
        if channel is Channel.ALL:
            continue
        events = [event for event, owner in EVENT_CHANNEL.items() if owner is channel]
        for event in events:
            messages[_key(event.value)] = _server_event(event, refs)
        channels[channel.value] = {
            "address": f"{channel.value}:org:{{organization_id}}",
            "title": f"the {channel.value} channel",
            "description": (
                f"Socket.IO events of the `{channel.value}` channel on the path. A client "
                f"subscribes with `subscribe`; rooms narrow it by department or queue "
                f"(`{channel.value}:org:{{org}}:dept:{{dept}}`, `...:queue:{{queue}}`; section 4)."
            ),
            "parameters": {"organization_id": {"description": "the organization's id"}},
            "messages": {
                _key(e.value): {"$ref": f"#/components/messages/{_key(e.value)}"} for e in events
            },
        }
        operations[f"send.{channel.value}"] = {
            "action": "send",
            "title": f"deliver {channel.value} events",
            "channel": {"$ref": f"#/channels/{channel.value}"},
            "messages": [
                {"$ref": f"#/channels/{channel.value}/messages/{_key(e.value)}"} for e in events
            ],
        }
    session: dict[str, Any] = {}
    for request, (body, ack) in _REQUESTS.items():
        name, reply = _key(request.value), f"{_key(request.value)}.ack"
        messages[name] = _message(
            request.value,
            request.value,
            f"`{request.value}`, sent by a client",
            refs[body.__name__],
        )
        messages[reply] = _message(
            f"{request.value} ack",
            f"{request.value} ack",
            f"the ack of `{request.value}`: success, or a failure with an error (section 8)",
            {"oneOf": [refs[ack.__name__], refs[FailureAck.__name__]]},
        )
        session[name] = {"$ref": f"#/components/messages/{name}"}
        session[reply] = {"$ref": f"#/components/messages/{reply}"}
        operations[f"receive.{name}"] = {
            "action": "receive",
            "title": f"answer {request.value}",
            "channel": {"$ref": "#/channels/session"},
            "messages": [{"$ref": f"#/channels/session/messages/{name}"}],
            "reply": {
                "channel": {"$ref": "#/channels/session"},
                "messages": [{"$ref": f"#/channels/session/messages/{reply}"}],
            },
        }
    for control, notice in _CONTROLS.items():
        name = f"control.{_key(control.value)}"
        what = (notice.__doc__ or "").strip().splitlines()[0]
        messages[name] = _message(
            control.value, control.value, f"`{control.value}`, sent by the server: {what}",
            refs[notice.__name__],
        )  # fmt: skip
        session[name] = {"$ref": f"#/components/messages/{name}"}
        operations[f"send.{name}"] = {
            "action": "send",
            "channel": {"$ref": "#/channels/session"},
            "messages": [{"$ref": f"#/channels/session/messages/{name}"}],
        }
    channels["session"] = {
        "address": "/ws",
        "title": "the Socket.IO session",
        "description": "Client requests (each answered by an ack) and control events (3, 7).",
        "messages": session,
    }
    messages["bridge.frame"] = _message(
        "bridge frame", "bridge frame", "a text frame a bridge client sends",
        refs[BridgeFrame.__name__],
    )  # fmt: skip
    messages["bridge.envelope"] = _message(
        "bridge envelope", "bridge envelope", "a server event as a text frame",
        refs[Envelope.__name__],
    )  # fmt: skip
    channels["bridge"] = {
        "address": "/ws",
        "title": "the plain-WebSocket bridge",
        "description": "A plain WebSocket (no EIO query) on the path: JSON text frames (1).",
        "servers": [{"$ref": "#/servers/bridge"}],
        "messages": {
            "frame": {"$ref": "#/components/messages/bridge.frame"},
            "envelope": {"$ref": "#/components/messages/bridge.envelope"},
        },
    }
    operations["receive.bridge.frame"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/bridge"},
        "messages": [{"$ref": "#/channels/bridge/messages/frame"}],
    }
    operations["send.bridge.envelope"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/bridge"},
        "messages": [{"$ref": "#/channels/bridge/messages/envelope"}],
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Intraday live-updates protocol",
            "version": str(PROTOCOL_VERSION),
            "description": (
                "Socket.IO v5 live updates of intraday operations: KPIs, backlogs, attendance, "
                "alerts and notifications, per organization, department and queue. "
                f"Generated by `{_COMMAND}`; the prose is docs/protocol.md."
            ),
            "license": {"name": "MIT"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "socketio": {
                "host": "localhost:5000",
                "pathname": "/ws",
                "protocol": "ws",
                "description": "Socket.IO v5 (Engine.IO v4) over WebSocket or long-polling.",
            },
            "bridge": {
                "host": "localhost:5000",
                "pathname": "/ws",
                "protocol": "ws",
                "description": "The plain-WebSocket bridge on the same path.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": components, "messages": messages},
    }


def render(document: dict[str, Any] | None = None) -> str:
    """The exact text of the committed file: sorted keys, two-space indent, final newline."""
    return json.dumps(document or asyncapi_document(), indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the document, or with ``--check`` verify it (exit 1 on drift)."""
    parser = argparse.ArgumentParser(prog=_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="where the document lives (docs/asyncapi.json)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 on drift")
    args = parser.parse_args(argv)
    path: Path = args.file
    text = render()
    if args.check:
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is out of date; run: {_COMMAND} {path}", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    path.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
