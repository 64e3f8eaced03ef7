"""Section 5: envelopes, the payload schema of each of the seventeen events, priorities."""

from __future__ import annotations

from typing import Any

from ...protocol import EVENT_CHANNEL, EVENT_PAYLOADS, Envelope, Priority, ServerEvent
from .._context import CheckContext
from .._expect import model, require
from .._samples import SEED_KPI_UPDATE, SEED_SYSTEM_MESSAGE, sample_payload, scope_fields
from ..model import Check, CheckFailure, CheckFunction, Needs, Section, add_check, check

__all__: list[str] = []

ENVELOPE_KEYS = (
    "id",
    "event",
    "channel",
    "timestamp",
    "priority",
    "requires_ack",
    "target",
    "data",
)
TARGET_KEYS = ("organization_id", "department_id", "queue_name")


def _differences(event: ServerEvent, sent: dict[str, Any], received: dict[str, Any]) -> list[str]:
    payload_model = EVENT_PAYLOADS[event]
    want = payload_model.model_validate(sent).model_dump(mode="json")
    got = payload_model.model_validate(received).model_dump(mode="json")
    return sorted(key for key in want if got.get(key) != want[key])


def _payload_check(event: ServerEvent) -> CheckFunction:
    async def run(ctx: CheckContext) -> None:
        channel = EVENT_CHANNEL[event].value
        dept, queue = ctx.name("dept"), ctx.name("queue")
        peer = await ctx.socket()
        await ctx.subscribe(peer, [channel], queue_name=queue)
        probe = ctx.name("probe")
        sent = sample_payload(event, probe, ctx.org, dept, queue)
        target = scope_fields(ctx.org, dept, queue)
        answer = await ctx.admin.broadcast(event.value, sent, target=target)
        raw = await ctx.wait_probe(peer, event, probe)
        shown = {"event": event.value, "data": sent, "target": target}
        envelope = model(Envelope, raw, f"the {event.value} envelope", sent=shown)
        require(
            envelope.event is event and envelope.channel.value == channel,
            f"event {event.value!r} in channel {channel!r}",
            sent=shown,
            received=raw,
        )
        model(EVENT_PAYLOADS[event], envelope.data, f"the {event.value} payload", sent=shown)
        changed = _differences(event, sent, envelope.data)
        require(
            not changed,
            f"the payload as published (fields {changed} differ)",
            sent=shown,
            received=raw,
        )
        scope = envelope.target
        require(
            (scope.organization_id, scope.department_id, scope.queue_name)
            == (ctx.org, dept, queue),
            "the envelope's target to be the broadcast's target",
            sent=shown,
            received=raw,
        )
        recipients = answer.get("recipients")
        require(
            isinstance(recipients, int) and recipients >= 1,
            "the broadcast answer to count at least the one subscriber",
            sent=shown,
            received=answer,
        )

    run.__doc__ = f"``{event.value}`` published with a valid payload arrives valid and intact."
    return run


for _event in ServerEvent:
    add_check(
        Check(
            Section.ENVELOPES,
            f"payload schema of {_event.value}",
            _payload_check(_event),
            Needs(admin=True),
        )
    )


@check(Section.ENVELOPES, "every envelope field is present with its type", admin=True)
async def envelope_fields(ctx: CheckContext) -> None:
    """id, event, channel, timestamp, priority (medium), requires_ack (false), target, data."""
    queue = ctx.name("queue")
    peer = await ctx.socket()
    await ctx.subscribe(peer, ["kpi"], queue_name=queue)
    probe = ctx.name("probe")
    await ctx.publish(ServerEvent.KPI_UPDATE, probe, queue_name=queue)
    raw = await ctx.wait_probe(peer, ServerEvent.KPI_UPDATE, probe)
    sent = ctx.last_sent
    missing = [k for k in ENVELOPE_KEYS if k not in raw]
    require(not missing, f"every envelope field (missing: {missing})", sent=sent, received=raw)
    target = raw.get("target")
    require(
        isinstance(target, dict) and all(k in target for k in TARGET_KEYS),
        f"a target with {list(TARGET_KEYS)} (null when absent)",
        sent=sent,
        received=raw,
    )
    envelope = model(Envelope, raw, "the envelope", sent=sent)
    require(bool(envelope.id), "a non-empty id", sent=sent, received=raw)
    require(
        raw.get("priority") == "medium", "priority 'medium' by default", sent=sent, received=raw
    )
    require(
        raw.get("requires_ack") is False,
        "requires_ack false when not asked",
        sent=sent,
        received=raw,
    )


@check(Section.ENVELOPES, "message ids are unique", admin=True)
async def unique_ids(ctx: CheckContext) -> None:
    """Five messages, five ids."""
    queue = ctx.name("queue")
    peer = await ctx.socket()
    await ctx.subscribe(peer, ["alerts"], queue_name=queue)
    probes = [ctx.name("probe") for _ in range(5)]
    for probe in probes:
        await ctx.publish(ServerEvent.ALERT_TRIGGERED, probe, queue_name=queue)
    ids = [(await ctx.wait_probe(peer, ServerEvent.ALERT_TRIGGERED, p)).get("id") for p in probes]
    require(
        len(set(ids)) == len(ids),
        "distinct ids for distinct messages",
        sent=f"5 alert:triggered broadcasts, contract_probe {probes}",
        received=ids,
    )


@check(Section.ENVELOPES, "a given priority is kept", admin=True)
async def priorities(ctx: CheckContext) -> None:
    """``low``, ``high`` and ``urgent`` are delivered as given."""
    queue = ctx.name("queue")
    peer = await ctx.socket()
    await ctx.subscribe(peer, ["backlog"], queue_name=queue)
    for priority in (Priority.LOW, Priority.HIGH, Priority.URGENT):
        probe = ctx.name("probe")
        await ctx.publish(
            ServerEvent.BACKLOG_UPDATE, probe, queue_name=queue, priority=priority.value
        )
        raw = await ctx.wait_probe(peer, ServerEvent.BACKLOG_UPDATE, probe)
        require(
            raw.get("priority") == priority.value,
            f"priority {priority.value!r}",
            sent=f"broadcast with priority {priority.value!r}",
            received=raw,
        )


@check(Section.ENVELOPES, "the protocol's own example payloads are accepted", admin=True)
async def seed_examples(ctx: CheckContext) -> None:
    """The minimal KPI update and ``{"message": "System maintenance in 10 minutes"}``."""
    queue = ctx.name("queue")
    peer = await ctx.socket()
    await ctx.subscribe(peer, ["kpi", "notifications"], queue_name=queue)
    kpi = {**SEED_KPI_UPDATE, "organization_id": ctx.org, "queue_name": queue}
    await ctx.admin.broadcast("kpi:update", kpi, target=scope_fields(ctx.org, None, queue))
    system = dict(SEED_SYSTEM_MESSAGE)
    await ctx.admin.broadcast(
        "system:notification", system, target=scope_fields(ctx.org, None, queue)
    )
    await peer.wait_for("kpi:update", sent=kpi)
    found = await peer.wait_for("system:notification", sent=system)
    data = found[0].get("data") if isinstance(found[0], dict) else None
    require(
        isinstance(data, dict) and data.get("message") == SEED_SYSTEM_MESSAGE["message"],
        "the system message as sent",
        sent=system,
        received=found[0],
    )


@check(
    Section.ENVELOPES,
    "system:maintenance reaches every authenticated socket of its organization",
    admin=True,
)
async def maintenance_scope(ctx: CheckContext) -> None:
    """Subscribed or not; an unauthenticated socket is in no organization and gets nothing."""
    idle = await ctx.socket(label="unsubscribed")
    stranger = await ctx.socket(authenticate=False, label="unauthenticated")
    probe = ctx.name("probe")
    await ctx.publish(ServerEvent.SYSTEM_MAINTENANCE, probe)
    await ctx.wait_probe(idle, ServerEvent.SYSTEM_MAINTENANCE, probe)
    await ctx.settle()
    got = stranger.received("system:maintenance")
    if any(
        isinstance(e, dict)
        and isinstance(e.get("data"), dict)
        and e["data"].get("contract_probe") == probe
        for e in got
    ):
        raise CheckFailure(
            "no organization message at an unauthenticated socket",
            sent=f"system:maintenance for {ctx.org}",
            received=stranger.summary(),
        )
