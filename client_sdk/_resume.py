"""Where the client is in each stream: the last ``(seq, epoch)`` whose handlers finished.

A position moves only after the listeners of its message have run, so a
resume from it hands the application every message it has not finished
with: at-least-once to handlers, and the duplicates that brings are dropped
by id. With ``ClientConfig.resume_store`` the positions (and the recent
message ids of the dedupe window) are kept in a SQLite file, written as
they move, so a process that stops and starts again resumes where it was.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable

__all__ = ["Position", "ResumeState"]

Position = tuple[int, str]
"""``(seq, epoch)`` of the last message of a stream the application finished with."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (stream TEXT PRIMARY KEY, seq INTEGER, epoch TEXT);
CREATE TABLE IF NOT EXISTS recent (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE);
"""


class ResumeState:
    """The positions of this client, in memory and, given a path, on disk.

    Args:
        path: a SQLite file for positions that outlive the process (``None``: memory only).
        dedupe_window: how many recent message ids the file keeps.
    """

    def __init__(self, path: str | os.PathLike[str] | None, dedupe_window: int) -> None:
        self._positions: dict[str, Position] = {}
        self._stored: dict[str, Position] = {}
        self._window = dedupe_window
        self._db: sqlite3.Connection | None = None
        self._recent: list[str] = []
        if path is not None:
            # Autocommit in WAL mode: each move is one small transaction,
            # durable against a crash of the process (not of the machine).
            db = sqlite3.connect(os.fspath(path), isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._stored = {
                stream: (int(seq), str(epoch))
                for stream, seq, epoch in db.execute("SELECT stream, seq, epoch FROM positions")
            }
            self._recent = [row[0] for row in db.execute("SELECT id FROM recent ORDER BY n")]
            self._db = db

    @property
    def recent_ids(self) -> list[str]:
        """The message ids the file remembers, oldest first (to seed the dedupe window)."""
        return list(self._recent)

    def position(self, stream: str) -> Position | None:
        """Where this process is in ``stream`` (``None``: it has read nothing of it)."""
        return self._positions.get(stream)

    def take_stored(self, stream: str) -> Position | None:
        """The position a previous process left for ``stream``, once (for the first subscribe)."""
        stored = self._stored.pop(stream, None)
        if stored is not None and stream not in self._positions:
            self._positions[stream] = stored
        return stored

    def advance(self, stream: str, seq: int, epoch: str, message_id: str) -> None:
        """The handlers of message ``seq`` of ``stream`` have finished."""
        current = self._positions.get(stream)
        if current is not None and current[1] == epoch and current[0] >= seq:
            return
        self._positions[stream] = (seq, epoch)
        if self._db is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)", (stream, seq, epoch)
            )
            cursor = self._db.execute("INSERT OR IGNORE INTO recent (id) VALUES (?)", (message_id,))
            last = cursor.lastrowid
            if last is not None and last % 256 == 0:
                self._db.execute("DELETE FROM recent WHERE n <= ?", (last - self._window,))

    def restart(self, stream: str, seq: int, epoch: str) -> None:
        """Continue ``stream`` from ``(seq, epoch)``, the server's latest (after a gap or probe)."""
        self._positions[stream] = (seq, epoch)
        if self._db is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)", (stream, seq, epoch)
            )

    def known(self, streams: Iterable[str]) -> dict[str, Position]:
        """The positions of those of ``streams`` this process knows."""
        return {s: p for s in streams if (p := self._positions.get(s)) is not None}

    def close(self) -> None:
        """Close the file."""
        db, self._db = self._db, None
        if db is not None:
            db.close()
