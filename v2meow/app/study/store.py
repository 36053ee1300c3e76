"""The ratings database (SQLite): one committed transaction per answer (see :class:`RatingStore`)."""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from v2meow.app.study.model import CHOICES, Item, Study, Track
from v2meow.errors import UserError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS raters (
    id TEXT PRIMARY KEY,
    name TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ratings (
    id INTEGER PRIMARY KEY,
    rater TEXT NOT NULL REFERENCES raters(id),
    item_id TEXT NOT NULL,
    question TEXT NOT NULL,
    left_system TEXT NOT NULL,
    right_system TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'none')),
    winner TEXT,                 -- the chosen system; NULL for "no preference"
    elapsed_ms INTEGER,          -- time from showing the pair to answering, as the page measured it
    created REAL NOT NULL,
    UNIQUE (rater, item_id, question)
);
"""


class DuplicateRating(UserError):
    """This rater has already rated this (pair, question)."""


def _connect(db_path: str | os.PathLike[str]) -> sqlite3.Connection:
    conn = sqlite3.connect(os.fspath(db_path), timeout=30.0, isolation_level=None, check_same_thread=False)
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.close()
        raise UserError(f"cannot use a write-ahead log for {db_path} (journal mode {mode}); use a local disk")
    conn.execute("PRAGMA synchronous=FULL")  # fsync the WAL at every commit: a commit survives a power cut
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _check_study_name(conn: sqlite3.Connection, study: Study, db_path: Any) -> None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'study'").fetchone()
    if row is not None and row[0] != study.name:
        raise UserError(f"{db_path} holds ratings of study {row[0]!r}, not {study.name!r}; use another database")


class RatingStore:
    """The ratings database of one study. Thread-safe: one connection, one lock, one transaction per answer."""

    def __init__(self, db_path: str | os.PathLike[str], study: Study):
        self.study = study
        self.path = os.fspath(db_path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = _connect(self.path)
            self.conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        except sqlite3.DatabaseError as e:
            raise UserError(f"cannot open the ratings database {self.path}: {e}") from None
        try:
            _check_study_name(self.conn, study, self.path)
        except UserError:
            self.conn.close()
            raise
        self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('study', ?)", (study.name,))
        self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('salt', ?)", (secrets.token_hex(16),))
        self.salt = self.conn.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()[0]
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def _hash(self, *parts: str) -> bytes:
        return hashlib.sha256("\0".join((self.salt, *parts)).encode()).digest()

    def sides(self, rater: str, item: Item, question: str) -> tuple[Track, Track]:
        """``(left, right)`` for this rater, pair and question: a fixed coin flip the rater cannot predict."""
        a, b = item.tracks
        return (b, a) if self._hash("side", rater, item.id, question)[0] & 1 else (a, b)

    def set_name(self, rater: str, name: str) -> None:
        with self.lock:
            self.conn.execute("INSERT INTO raters (id, name, created) VALUES (?, ?, ?) "
                              "ON CONFLICT(id) DO UPDATE SET name = excluded.name", (rater, name, time.time()))

    def next_task(self, rater: str) -> tuple[Item, str] | None:
        """The (pair, question) this rater should rate next, or None when nothing is left for them.

        Pairs with the fewest ratings come first, so that every pair reaches ``ratings_per_pair`` before
        any gets more; ties are broken in an order of its own for each rater.
        """
        with self.lock:
            counts = {(i, q): n for i, q, n in self.conn.execute(
                "SELECT item_id, question, COUNT(*) FROM ratings GROUP BY item_id, question")}
            done = set(self.conn.execute("SELECT item_id, question FROM ratings WHERE rater = ?", (rater,)))
        todo = [(counts.get((it.id, q), 0), self._hash("order", rater, it.id, q), it, q)
                for it in self.study.items for q in self.study.questions
                if (it.id, q) not in done and counts.get((it.id, q), 0) < self.study.ratings_per_pair]
        if not todo:
            return None
        _, _, item, question = min(todo, key=lambda t: t[:2])
        return item, question

    def rated_by(self, rater: str) -> int:
        with self.lock:
            return self.conn.execute("SELECT COUNT(*) FROM ratings WHERE rater = ?", (rater,)).fetchone()[0]

    def record(self, rater: str, item: Item, question: str, choice: str, elapsed_ms: int | None = None) -> str | None:
        """Store one answer in its own committed transaction; return the winning system (None: no preference).

        Raises :class:`DuplicateRating` when this rater has rated this (pair, question) before.
        """
        if choice not in CHOICES or (choice == "none" and not self.study.allow_no_preference):
            raise UserError(f"choice must be one of {self.allowed_choices()}, got {choice!r}")
        if question not in self.study.questions:
            raise UserError(f"question must be one of {list(self.study.questions)}, got {question!r}")
        left, right = self.sides(rater, item, question)
        winner = {"left": left.system, "right": right.system, "none": None}[choice]
        now = time.time()
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.execute("INSERT OR IGNORE INTO raters (id, name, created) VALUES (?, NULL, ?)", (rater, now))
                self.conn.execute(
                    "INSERT INTO ratings (rater, item_id, question, left_system, right_system, choice, winner,"
                    " elapsed_ms, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (rater, item.id, question, left.system, right.system, choice, winner, elapsed_ms, now))
            except sqlite3.IntegrityError as e:
                self.conn.execute("ROLLBACK")
                if "UNIQUE" in str(e):
                    raise DuplicateRating(f"you have already rated pair {item.id!r} for this question") from None
                raise
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        return winner

    def allowed_choices(self) -> list[str]:
        return list(CHOICES) if self.study.allow_no_preference else ["left", "right"]
