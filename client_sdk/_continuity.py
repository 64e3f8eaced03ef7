"""Gap detection while connected: a stream's position never moves past a hole.

The dispatcher asks :class:`StreamGuard` about every message of a stream
(one with ``seq`` and ``epoch``, not a snapshot) before its listeners run:

- *deliver* it: the next one (or a stream whose holes cannot be seen, below);
- *old*: its seq is at or before the position, the handlers had it already;
- *discard* it: it lies past a hole; the guard has asked for a fill (a
  ``subscribe`` with ``since`` = the position, for that stream alone), whose
  replay sends it again, in order, after the missing ones;
- *hold* it: a resume of its stream is in flight (a reconnect, a stored
  position, a fill). Everything of the stream waits until that request's
  answer, then goes out in seq order without what the handlers had: live
  messages the server sent before it read the request cannot overtake the
  replay.

A hole is seen two ways. In a stream read whole (a subscription without a
department or queue filter), any jump of ``seq`` or change of ``epoch``
is one. In a filtered stream jumps are normal (other queues' messages are
not sent), so only what the client lost itself counts: a message the
dispatch queue dropped under its backpressure policy. Loss the server
causes in a filtered stream is the server's to repair (protocol section 6:
it resends, or sends ``error``, on which the client fills the stream).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ._messages import Message
from ._resume import Position, ResumeState
from .protocol import Channel, Payload, stream_name

__all__ = ["Answer", "StreamGuard", "Verdict", "stream_of"]

_CHANNELS = {c.value: c for c in Channel}


class Verdict(Enum):
    """What the dispatcher does with a message of a stream."""

    DELIVER = "deliver"
    OLD = "old"
    DISCARD = "discard"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class Answer:
    """What a ``subscribe`` answered about one stream it resumed (``replay`` of its ack)."""

    complete: bool
    epoch: str | None
    seq: int | None

    @staticmethod
    def of(ack: Any, stream: str) -> Answer | None:
        """The answer about ``stream`` in a raw success ack (``None``: none)."""
        replay = ack.get("replay") if isinstance(ack, dict) else None
        part = replay.get(stream) if isinstance(replay, dict) else None
        if not isinstance(part, dict):
            return None
        epoch, seq = part.get("epoch"), part.get("seq")
        return Answer(
            part.get("complete") is True,
            epoch if isinstance(epoch, str) and epoch else None,
            seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        )


Held = tuple[Message[Payload], bool]
"""A held message, and whether a replay was in flight when it arrived."""

Released = tuple[str, Message[Payload]]
"""A message a resume's answer let go, with its stream."""

Settle = tuple[str, str, int]
"""``(stream, epoch, latest)``: where a stream continues once its released messages ran."""


def stream_of(data: Any) -> tuple[str, int | None, str | None] | None:
    """The stream and seq of a raw envelope, if it names them (for a message never parsed)."""
    if not isinstance(data, dict):
        return None
    channel = _CHANNELS.get(data.get("channel"))  # type: ignore[arg-type]
    target = data.get("target")
    org = target.get("organization_id") if isinstance(target, dict) else None
    if channel is None or channel is Channel.ALL or not isinstance(org, str):
        return None
    seq, epoch = data.get("seq"), data.get("epoch")
    return (
        stream_name(channel, org),
        seq if isinstance(seq, int) else None,
        epoch if isinstance(epoch, str) else None,
    )


class StreamGuard:
    """Per stream: the holes the client knows of, the resumes in flight, what waits for them.

    Args:
        resume: the positions (moved by the dispatcher after each message's handlers).
        read_whole: whether a stream is read without a department or queue filter.
        fill: starts a ``subscribe`` with ``since`` of one stream; ``False``: no
            subscription reads it. At most one is in flight per stream: the
            next is asked for only once the dispatcher saw the last one end.
    """

    def __init__(
        self,
        resume: ResumeState,
        *,
        read_whole: Callable[[str], bool],
        fill: Callable[[str], bool],
    ) -> None:
        self._resume = resume
        self._read_whole = read_whole
        self._fill = fill
        self._filling: set[str] = set()
        self._windows: dict[str, int] = {}
        self._replaying: dict[str, int] = {}
        self._held: dict[str, list[Held]] = {}
        self._lost: dict[str, set[int]] = {}
        self._lost_epoch: dict[str, str] = {}
        self.replayed_upto: dict[str, int] = {}

    def reset(self) -> None:
        """Forget what waited on requests of a dispatcher run that ended."""
        self._filling.clear()
        self._windows.clear()
        self._replaying.clear()
        self._held.clear()

    def request(self, stream: str) -> bool:
        """Fill ``stream`` unless a fill of it is in flight; ``False``: nothing reads it."""
        if stream in self._filling:
            return True
        if not self._fill(stream):
            self._lost.pop(stream, None)  # no subscription of it: nothing to resume
            return False
        self._filling.add(stream)
        return True

    def fill_done(self, stream: str) -> None:
        """A fill ended (after its answer's marker): the next may be asked for."""
        self._filling.discard(stream)

    @property
    def missing(self) -> bool:
        """Whether the dispatch queue dropped messages not yet asked for again."""
        return bool(self._lost)

    def drained(self) -> None:
        """The dispatch queue is empty: fill what it dropped (now there is room for it)."""
        for stream, lost in list(self._lost.items()):
            if lost and not self._windows.get(stream):
                self.request(stream)

    # -- messages ---------------------------------------------------------------------

    def admit(self, stream: str, seq: int, epoch: str, message: Message[Payload]) -> Verdict:
        """Decide about ``message``, number ``seq`` of ``stream`` in ``epoch``."""
        windows = self._windows
        if windows and windows.get(stream):
            self._held.setdefault(stream, []).append((message, bool(self._replaying.get(stream))))
            return Verdict.HOLD
        position = self._resume.position(stream)
        if position is None:
            if self._resume.stored(stream) is not None:
                return Verdict.DISCARD  # the subscribe that resumes the stored position replays it
            jump = False
        elif position[1] == epoch:
            if seq <= position[0]:
                return Verdict.OLD
            jump = seq != position[0] + 1
        else:
            jump = True
        lost = self._lost.get(stream) if self._lost else None
        if (lost and min(lost) < seq) or (jump and self._read_whole(stream)):
            self.request(stream)
            return Verdict.DISCARD
        return Verdict.DELIVER

    def delivered(self, stream: str, seq: int) -> None:
        """Message ``seq`` of ``stream`` went to the handlers."""
        if not self._lost:
            return
        lost = self._lost.get(stream)
        if lost is not None:
            lost.discard(seq)
            if not lost:
                del self._lost[stream]

    def dropped(self, stream: str, seq: int, epoch: str | None) -> None:
        """The dispatch queue dropped message ``seq`` of ``stream``.

        It is asked for again when a later message of the stream comes to
        be dispatched, or when the queue has drained: not while the
        listeners are still behind, which would only drop the replay too.
        """
        position = self._resume.position(stream)
        if position is not None and position[1] == epoch and seq <= position[0]:
            return  # a copy of one the handlers had: nothing is missing
        self._lost.setdefault(stream, set()).add(seq)
        if epoch is not None:
            self._lost_epoch[stream] = epoch

    def since(self, stream: str) -> Position | None:
        """Where a fill of ``stream`` resumes: the position, else just before the first loss."""
        position = self._resume.position(stream)
        lost = self._lost.get(stream)
        epoch = self._lost_epoch.get(stream)
        if position is None and lost and epoch is not None:
            return min(lost) - 1, epoch
        return position

    # -- resumes ----------------------------------------------------------------------

    def begin(self, streams: dict[str, bool]) -> None:
        """A ``subscribe`` resuming ``streams`` (``True``: asks a replay, not a probe) was sent."""
        for stream, replay in streams.items():
            self._windows[stream] = self._windows.get(stream, 0) + 1
            if replay:
                self._replaying[stream] = self._replaying.get(stream, 0) + 1
            self.replayed_upto.pop(stream, None)

    def end(self, streams: dict[str, bool], ack: Any) -> tuple[list[Released], list[Settle]]:
        """Its answer arrived (``ack``: the raw success ack, ``None``: it failed).

        Returns what waited for it, in seq order, marked replayed where a
        replay was in flight, for the dispatcher to deliver; then where each
        stream continues from, for :meth:`settle` once they were handled
        (not a stream still missing messages: filled once the queue drains).
        """
        out: list[Released] = []
        settles: list[Settle] = []
        for stream, replay in streams.items():
            count = self._windows.get(stream, 0) - 1
            if count > 0:
                self._windows[stream] = count
            else:
                self._windows.pop(stream, None)
            if replay:
                left = self._replaying.get(stream, 0) - 1
                if left > 0:
                    self._replaying[stream] = left
                else:
                    self._replaying.pop(stream, None)
            answer = Answer.of(ack, stream) if ack is not None else None
            if ack is not None:
                self._resume.adopt(stream)
            else:
                # No answer (refused, or the connection went): what waited may
                # lie past a hole the replay never filled. Nothing of it is
                # handed over; it is missing, asked for again like a drop (a
                # reconnect's resume brings it anyway).
                for message, _ in self._held.pop(stream, ()):
                    envelope = message.envelope
                    if envelope.seq is not None:
                        self.dropped(stream, envelope.seq, envelope.epoch)
            if count > 0:
                continue
            released, settle = self._release(stream, answer, replay)
            out.extend(released)
            if settle is not None:
                settles.append(settle)
        return out, settles

    def _release(
        self, stream: str, answer: Answer | None, replay: bool
    ) -> tuple[list[Released], Settle | None]:
        held = sorted(self._held.pop(stream, ()), key=lambda h: h[0].envelope.seq or 0)
        if answer is not None and not answer.complete:
            self._lost.pop(stream, None)  # the gap is reported; nothing more will come
        position = self._resume.position(stream)
        lost = self._lost.get(stream)
        out: list[Released] = []
        for message, replayed in held:
            seq, epoch = message.envelope.seq or 0, message.envelope.epoch
            if position is not None and position[1] == epoch and seq <= position[0]:
                continue
            if lost and min(lost) < seq:
                break  # dropped again while waiting: filled once these ran
            out.append((stream, message.as_replayed() if replayed else message))
            position = (seq, epoch or "")
            if lost:
                lost.discard(seq)
        if lost:
            return out, None
        self._lost.pop(stream, None)
        if answer is None or answer.epoch is None or answer.seq is None:
            return out, None
        if replay:
            self.replayed_upto[stream] = answer.seq
        return out, (stream, answer.epoch, answer.seq)

    def settle(self, stream: str, epoch: str, latest: int) -> None:
        """After what a resume released was handled: continue from the server's ``latest``.

        The answer says what the server had sent by then: nothing of the
        stream up to ``latest`` is missing (or the gap is reported), so the
        position may move there even if the filter let none of it through.
        """
        current = self._resume.position(stream)
        if current is None or current[1] != epoch or current[0] < latest:
            self._resume.restart(stream, latest, epoch)
