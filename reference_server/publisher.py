"""Publishing a message: build it (validate, resolve the target, envelope), then distribute it.

The management API, the simulator and the shutdown notice all publish
through :class:`Publisher`, so every message is validated and built the same
way and no path can skip the organization check. Building ends in one value,
an :class:`~reference_server.delivery.OutgoingMessage`; delivering it is the
:class:`~reference_server.distribution.Distribution`'s (this process only, or
every node of a cluster), and recording it the
:class:`~reference_server.delivery.DeliveryRecorder`'s.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from client_sdk.protocol import (
    EVENT_CHANNEL,
    BroadcastRequest,
    BroadcastResult,
    Channel,
    ErrorCode,
    Priority,
    ProtocolError,
    Scope,
    ServerEvent,
    build_envelope,
    format_timestamp,
    parse_payload,
    stream_name,
    utc_now,
)

from .delivery import DeliveryRecorder, LocalDelivery, OutgoingMessage
from .distribution import Distribution
from .validation import validating

__all__ = ["Publisher", "build_message", "resolve_target"]


def resolve_target(request: BroadcastRequest, data: dict[str, Any]) -> Scope:
    """The message's target: the request's, completed from the payload.

    Raises:
        ProtocolError: ``INVALID_MESSAGE`` when they disagree, so that a
            payload of one organization can never be aimed at another.
    """
    given = request.target
    fields: dict[str, str | None] = {}
    for name in ("organization_id", "department_id", "queue_name"):
        from_payload = data.get(name)
        from_target = getattr(given, name) if given is not None else None
        if from_target is not None and from_payload is not None and from_target != from_payload:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE, f"target.{name} does not match the payload's {name}"
            )
        fields[name] = from_target if from_target is not None else from_payload
    return Scope(**fields)


def _check_addressable(event: ServerEvent, target: Scope) -> None:
    """Refuse a target no delivery rule covers (before anything is logged or sent)."""
    if target.organization_id is not None:
        return
    if target.department_id or target.queue_name:
        # Only a target-less admin broadcast may span organizations.
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE, "department_id and queue_name need organization_id"
        )
    if EVENT_CHANNEL[event] is not Channel.NOTIFICATIONS:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{event} needs an organization_id")


def build_message(request: BroadcastRequest, message_id: str | None = None) -> OutgoingMessage:
    """Validate ``request``, resolve its target and build its envelope (``id``:
    ``message_id``, new when ``None``); nothing is sent.

    Raises:
        ProtocolError: ``INVALID_MESSAGE`` for a bad payload or target.
    """
    with validating(f"{request.event} payload"):
        payload = parse_payload(request.event, request.data)
    data = payload.model_dump(mode="json", exclude_unset=True)
    target = resolve_target(request, data)
    socket_ids = request.target.socket_ids if request.target is not None else None
    if socket_ids is None:
        _check_addressable(request.event, target)
    org = target.organization_id
    # A message of no organization, or for chosen sockets only, is in no
    # stream: it is not logged, so no replay can hand it to anyone else.
    stream = None
    if org is not None and socket_ids is None:
        stream = stream_name(EVENT_CHANNEL[request.event], org)
    envelope = build_envelope(
        message_id=message_id or uuid.uuid4().hex,
        event=request.event,
        timestamp=format_timestamp(utc_now()),
        target=target,
        data=data,
        priority=request.priority,
        requires_ack=request.requires_ack,
    )
    return OutgoingMessage(
        event=request.event,
        envelope=envelope,
        target=target,
        socket_ids=socket_ids,
        stream=stream,
        requires_ack=request.requires_ack,
    )


class Publisher:
    """Builds broadcasts and has them distributed and recorded.

    Args:
        distribution: where messages go (this process, or the cluster).
        local: this process's sockets (the shutdown notice goes to them only).
        recorder: where each publish is recorded.
    """

    def __init__(
        self, distribution: Distribution, local: LocalDelivery, recorder: DeliveryRecorder
    ) -> None:
        self._distribution = distribution
        self._local = local
        self._recorder = recorder

    async def publish(
        self, request: BroadcastRequest, message_id: str | None = None
    ) -> BroadcastResult:
        """Validate, build the envelope and deliver; nothing is sent if anything is invalid.

        ``message_id``: the envelope's ``id`` (new when ``None``; an idempotency
        key's, :mod:`.idempotency`).

        Raises:
            ProtocolError: ``INVALID_MESSAGE`` for a bad payload or target; a
                retryable ``INTERNAL_ERROR`` when the store or cluster is away.
        """
        message = build_message(request, message_id)
        started = time.perf_counter()
        recipients = await self._distribution.distribute(message)
        self._recorder.published(message, recipients, time.perf_counter() - started)
        return BroadcastResult(message_id=message.message_id, recipients=recipients)

    async def notify_all(self, event: ServerEvent, data: dict[str, Any]) -> None:
        """Send a server-originated message to every socket of this process (shutdown notice)."""
        envelope = build_envelope(
            message_id=uuid.uuid4().hex,
            event=event,
            timestamp=format_timestamp(utc_now()),
            target=Scope(),
            data=data,
            priority=Priority.URGENT,
        )
        message = OutgoingMessage(event, envelope, Scope(), None, None, requires_ack=False)
        started = time.perf_counter()
        recipients = await self._local.deliver_to_everyone(event, envelope)
        self._recorder.published(message, recipients, time.perf_counter() - started)
