"""Where the client is in each stream: the last ``(seq, epoch)`` whose handlers finished.

A position moves only after the listeners of its message have run, so a
resume from it hands the application every message it has not finished
with: at-least-once to handlers, and the duplicates that brings are dropped
by id. With ``ClientConfig.resume_store`` the positions (and the recent
message ids of the dedupe window) are kept in a SQLite file, so a process
that stops and starts again resumes where it was.

The file is opened when the client is made, written once to prove it can
be, and held with an exclusive lock for the client's life: a file that is
not writable, not a resume file, or in use by another process is refused
there, in one line (:class:`~client_sdk.exceptions.ResumeStoreError`). Writes never run
on the event loop: a move only marks the stream, and one flush per dispatch
cycle writes every marked position in one transaction on a worker thread.
The file lags the handlers by at most that cycle (a crash then replays a
little more, deduplicated by id). A flush that fails (the file removed,
the disk full) is reported once per distinct cause through ``on_error``;
dispatching goes on with positions in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterable

from pydantic import ValidationError

from .exceptions import IntradayError, ResumeStoreError
from .protocol import StreamPosition, parse_stream

__all__ = ["Position", "ResumeState"]

Position = tuple[int, str]
"""``(seq, epoch)`` of the last message of a stream the application finished with."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (stream TEXT PRIMARY KEY, seq INTEGER, epoch TEXT);
CREATE TABLE IF NOT EXISTS recent (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE);
"""


def _open(path: str) -> sqlite3.Connection:
    """The resume file, locked for this process and written once, or a one-line refusal."""
    db: sqlite3.Connection | None = None
    try:
        # timeout=0: a file held by another process is refused at once, never
        # waited for on the event loop. EXCLUSIVE locking keeps the lock taken
        # by the first write for as long as the connection lives.
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        db.execute(f"PRAGMA user_version={int(version) % 1000 + 1}")  # proves it is writable
    except sqlite3.Error as exc:
        if db is not None:
            db.close()
        text = str(exc)
        if "locked" in text or "busy" in text:
            why = "in use by another process (one resume file per client)"
        elif "not a database" in text or "malformed" in text:
            why = f"not a resume file ({text})"
        else:
            why = f"not writable ({text})"
        raise ResumeStoreError(f"resume_store {path}: {why}") from None
    return db


def _valid(stream: object, seq: object, epoch: object) -> Position | None:
    try:
        parse_stream(stream if isinstance(stream, str) else "")
        position = StreamPosition.model_validate({"seq": seq, "epoch": epoch})
    except (ValueError, ValidationError):  # a ValidationError is a ValueError too
        return None
    return position.seq, position.epoch


class ResumeState:
    """The positions of this client, in memory and, given a path, on disk.

    Args:
        path: a SQLite file for positions that outlive the process (``None``: memory only).
        dedupe_window: how many recent message ids the file keeps.
        on_error: told (once per distinct cause) when the file cannot be written.

    Raises:
        ResumeStoreError: the file cannot be used (not writable, not a resume
            file, in use by another process).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        dedupe_window: int,
        on_error: Callable[[IntradayError], None] | None = None,
    ) -> None:
        self._positions: dict[str, Position] = {}
        self._stored: dict[str, Position] = {}
        self.invalid: set[str] = set()
        """Streams whose stored position failed validation (dropped; a gap when subscribed)."""
        self._window = dedupe_window
        self._on_error = on_error
        self._db: sqlite3.Connection | None = None
        self._path = os.fspath(path) if path is not None else None
        self._inode: tuple[int, int] | None = None
        self._recent: list[str] = []
        self._dirty: dict[str, Position] = {}
        self._new_ids: list[str] = []
        self._flushing: asyncio.Task[None] | None = None
        self._reported: str | None = None
        if self._path is not None:
            db = _open(self._path)
            for stream, seq, epoch in db.execute("SELECT stream, seq, epoch FROM positions"):
                position = _valid(stream, seq, epoch)
                if position is None:
                    self.invalid.add(str(stream))
                    db.execute("DELETE FROM positions WHERE stream = ?", (stream,))
                else:
                    self._stored[stream] = position
            self._recent = [row[0] for row in db.execute("SELECT id FROM recent ORDER BY n")]
            stat = os.stat(self._path)
            self._inode = (stat.st_dev, stat.st_ino)
            self._db = db

    @property
    def recent_ids(self) -> list[str]:
        """The message ids the file remembers, oldest first (to seed the dedupe window)."""
        return [i for i in self._recent if isinstance(i, str)]

    def position(self, stream: str) -> Position | None:
        """Where this process is in ``stream`` (``None``: it has read nothing of it)."""
        return self._positions.get(stream)

    def stored(self, stream: str) -> Position | None:
        """The position a previous process left for ``stream``, until a subscribe adopts it."""
        return self._stored.get(stream)

    def adopt(self, stream: str) -> None:
        """A subscribe resuming the stored position of ``stream`` succeeded."""
        stored = self._stored.pop(stream, None)
        if stored is not None and stream not in self._positions:
            self._positions[stream] = stored

    def advance(self, stream: str, seq: int, epoch: str, message_id: str | None = None) -> None:
        """The handlers of message ``seq`` of ``stream`` have finished."""
        current = self._positions.get(stream)
        if current is not None and current[1] == epoch and current[0] >= seq:
            return
        if self._db is None:  # no file: _move's first step is all there is to do
            self._positions[stream] = (seq, epoch)
            return
        self._move(stream, (seq, epoch))
        if message_id is not None:
            self._new_ids.append(message_id)

    def restart(self, stream: str, seq: int, epoch: str) -> None:
        """Continue ``stream`` from ``(seq, epoch)``, the server's latest (after a gap or probe)."""
        self._move(stream, (seq, epoch))

    def known(self, streams: Iterable[str]) -> dict[str, Position]:
        """The positions of those of ``streams`` this process knows."""
        return {s: p for s in streams if (p := self._positions.get(s)) is not None}

    # -- the file ---------------------------------------------------------------------

    def _move(self, stream: str, position: Position) -> None:
        self._positions[stream] = position
        if self._db is None:
            return
        self._dirty[stream] = position
        if self._flushing is None:
            with contextlib.suppress(RuntimeError):  # no running loop: flushed at close
                self._flushing = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        try:
            # One flush per dispatch cycle: what moved meanwhile joins this write.
            await asyncio.sleep(0)
            while self._dirty or self._new_ids:
                await self.flush()
        finally:
            self._flushing = None

    async def flush(self) -> None:
        """Write what moved since the last flush, on a worker thread; never raises."""
        dirty, self._dirty = self._dirty, {}
        ids, self._new_ids = self._new_ids, []
        db = self._db
        if db is None or not (dirty or ids):
            return
        try:
            await asyncio.to_thread(self._write, db, dirty, ids)
        except (sqlite3.Error, OSError, ResumeStoreError) as exc:
            self._failed(exc)
        else:
            self._reported = None

    def _write(self, db: sqlite3.Connection, dirty: dict[str, Position], ids: list[str]) -> None:
        assert self._path is not None
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            stat = None
        if stat is None or (stat.st_dev, stat.st_ino) != self._inode:
            raise ResumeStoreError("the file was removed or replaced")
        with db:
            db.execute("BEGIN")
            db.executemany(
                "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)",
                [(s, seq, epoch) for s, (seq, epoch) in dirty.items()],
            )
            last = None
            for message_id in ids:
                last = db.execute(
                    "INSERT OR IGNORE INTO recent (id) VALUES (?)", (message_id,)
                ).lastrowid
            if last is not None and last > self._window + 256:
                db.execute("DELETE FROM recent WHERE n <= ?", (last - self._window,))

    def _failed(self, exc: BaseException) -> None:
        text = f"resume_store {self._path}: positions not saved ({exc}); kept in memory"
        if text == self._reported:
            return
        self._reported = text
        if self._on_error is not None:
            self._on_error(ResumeStoreError(text))

    async def aclose(self) -> None:
        """Write what is left, then close the file."""
        flushing = self._flushing
        if flushing is not None:
            with contextlib.suppress(Exception):
                await flushing
        await self.flush()
        self.close()

    def close(self) -> None:
        """Close the file (what did not reach it yet is not written)."""
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
