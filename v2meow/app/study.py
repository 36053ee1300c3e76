"""The listening study (``v2meow study``): side-by-side ratings of two soundtracks for the same video.

A study is a folder holding ``study.json`` and the media it lists. Each *pair* (an item) is one video and
two soundtracks made by two systems. A rater sees the video (muted) with both soundtracks, in an order
randomised per rater and pair, and answers one of the paper's two questions:

- ``relevance``: "Which music goes best with the video?" (ignore the sound quality);
- ``preference``: "Which music do you prefer?" (ignore the video).

``study.json``::

    {
      "name": "v2meow-vs-baseline",
      "questions": ["relevance", "preference"],
      "ratings_per_pair": 3,
      "allow_no_preference": false,
      "items": [
        {"id": "pair0000", "video": "media/0000/video.mp4",
         "tracks": [{"system": "v2meow", "audio": "media/0000/track0.wav"},
                    {"system": "baseline", "audio": "media/0000/track1.wav"}]}
      ]
    }

Media paths are relative to the study folder and must stay inside it. The server addresses media by item
index only (``/media/3/video``, ``/media/3/relevance/left``) and serves only files listed in
``study.json``: no part of a request is ever used as a file name. Which system is "left" is decided by
the server from a secret salt and the rater id, so the URLs do not reveal the systems.

Ratings live in SQLite (WAL journal, ``synchronous=FULL``): each answer is committed in its own
transaction before it is acknowledged, so an acknowledged answer survives the server being killed (and,
with ``synchronous=FULL``, a power cut). ``UNIQUE(rater, item_id, question)`` makes sure that a rater
rates a (pair, question) at most once, whatever the page does.

Win rates (ties, i.e. "no preference", excluded) come with 95% Wilson score intervals, which stay inside
[0, 1] and behave at small counts. They treat ratings as independent, which several ratings of the same
pair by the same raters are not quite; read them as a rough guide at small study sizes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from v2meow.errors import UserError

QUESTIONS: dict[str, tuple[str, str]] = {
    "relevance": ("Which music goes best with the video?",
                  "Ignore the sound quality: judge only how well the music fits the video."),
    "preference": ("Which music do you prefer?", "Ignore the video: judge only the music."),
}
CHOICES = ("left", "right", "none")
Z95 = 1.959963984540054  # two-sided 95% normal quantile
VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".ogv": "video/ogg"}
AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".m4a": "audio/mp4",
               ".aac": "audio/aac", ".ogg": "audio/ogg", ".opus": "audio/ogg", ".webm": "audio/webm"}
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"/": ("study.html", "text/html; charset=utf-8"),
                "/study.js": ("study.js", "text/javascript; charset=utf-8"),
                "/study.css": ("study.css", "text/css; charset=utf-8")}
COOKIE = "v2meow_rater"
MAX_BODY = 4096  # bytes of a POST body; answers are ~100 bytes
MAX_NAME = 100
_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_RATER_RE = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
_MEDIA_RE = re.compile(r"^/media/(\d{1,7})/(?:video|(\w{1,20})/(left|right))$")
_STUDY_KEYS = {"name", "questions", "ratings_per_pair", "allow_no_preference", "items"}


# --------------------------------------------------------------------------------------------- study


@dataclass(frozen=True)
class Track:
    system: str
    audio: Path  # absolute


@dataclass(frozen=True)
class Item:
    id: str
    video: Path  # absolute
    tracks: tuple[Track, Track]


@dataclass(frozen=True)
class Study:
    root: Path
    name: str
    items: tuple[Item, ...]
    questions: tuple[str, ...] = ("relevance", "preference")
    ratings_per_pair: int = 3
    allow_no_preference: bool = False

    def item(self, item_id: str) -> Item | None:
        return next((it for it in self.items if it.id == item_id), None)

    def index(self, item_id: str) -> int:
        return next(i for i, it in enumerate(self.items) if it.id == item_id)


def _media_path(root: Path, rel: Any, kinds: dict[str, str], what: str) -> Path:
    """Resolve a media path of ``study.json``: relative, inside ``root``, an existing file of a known type."""
    if not isinstance(rel, str) or not rel:
        raise UserError(f"study.json: {what} must be a non-empty relative path, got {rel!r}")
    if os.path.isabs(rel):
        raise UserError(f"study.json: {what} {rel!r} must be relative to the study folder")
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise UserError(f"study.json: {what} {rel!r} points outside the study folder")
    if path.suffix.lower() not in kinds:
        raise UserError(f"study.json: {what} {rel!r} has an unsupported type; use one of {sorted(kinds)}")
    if not path.is_file():
        raise UserError(f"study.json: {what} {rel!r} does not exist")
    return path


def load_study(study_dir: str | os.PathLike[str]) -> Study:
    """Read and check ``study_dir/study.json``; raise :class:`UserError` on anything wrong with it."""
    root = Path(study_dir).resolve()
    spec_path = root / "study.json"
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{root} is not a study folder: it has no study.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {spec_path}: {e}") from None
    if not isinstance(spec, dict):
        raise UserError(f"{spec_path} must hold a JSON object")
    unknown = set(spec) - _STUDY_KEYS
    if unknown:
        raise UserError(f"study.json: unknown keys {sorted(unknown)}; known are {sorted(_STUDY_KEYS)}")
    name = spec.get("name", root.name)
    if not isinstance(name, str) or not name.strip():
        raise UserError("study.json: name must be a non-empty string")
    questions = spec.get("questions", ["relevance", "preference"])
    if isinstance(questions, str):
        questions = [questions]
    if (not isinstance(questions, list) or not questions or len(set(questions)) != len(questions)
            or any(q not in QUESTIONS for q in questions)):
        raise UserError(f"study.json: questions must be a non-empty list from {sorted(QUESTIONS)}, got {questions!r}")
    target = spec.get("ratings_per_pair", 3)
    if not isinstance(target, int) or isinstance(target, bool) or not 1 <= target <= 1000:
        raise UserError(f"study.json: ratings_per_pair must be an integer in 1..1000, got {target!r}")
    allow_none = spec.get("allow_no_preference", False)
    if not isinstance(allow_none, bool):
        raise UserError(f"study.json: allow_no_preference must be true or false, got {allow_none!r}")
    raw_items = spec.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise UserError("study.json: items must be a non-empty list")
    items, seen = [], set()
    for i, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            raise UserError(f"study.json: item {i} must be an object")
        item_id = raw.get("id", f"pair{i:04d}")
        if not isinstance(item_id, str) or not _ID_RE.match(item_id):
            raise UserError(f"study.json: item {i} id {item_id!r} must be 1-64 letters, digits, '_', '.' or '-'")
        if item_id in seen:
            raise UserError(f"study.json: item id {item_id!r} is used twice")
        seen.add(item_id)
        video = _media_path(root, raw.get("video"), VIDEO_TYPES, f"item {item_id} video")
        tracks = raw.get("tracks")
        if not isinstance(tracks, list) or len(tracks) != 2 or not all(isinstance(t, dict) for t in tracks):
            raise UserError(f"study.json: item {item_id} must have exactly two tracks, each {{system, audio}}")
        parsed = []
        for t in tracks:
            system = t.get("system")
            if not isinstance(system, str) or not system.strip() or len(system) > 100:
                raise UserError(f"study.json: item {item_id} has a track without a system name")
            parsed.append(Track(system, _media_path(root, t.get("audio"), AUDIO_TYPES, f"item {item_id} audio")))
        if parsed[0].system == parsed[1].system:
            raise UserError(f"study.json: item {item_id} compares system {parsed[0].system!r} with itself")
        items.append(Item(item_id, video, (parsed[0], parsed[1])))
    return Study(root, name.strip(), tuple(items), tuple(questions), target, allow_none)


def make_study(
    pairs: list[dict],
    out_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    questions: tuple[str, ...] | list[str] = ("relevance", "preference"),
    ratings_per_pair: int = 3,
    allow_no_preference: bool = False,
) -> str:
    """Build a study folder from generated files and return its path.

    Args:
        pairs: one dict per pair: ``{"video": path, "tracks": {system: audio_path, system: audio_path}}``
            (``tracks`` may also be ``[{"system": ..., "audio": ...}, ...]``), optionally ``"id"``.
            Files are copied into ``out_dir/media/`` (a video used by several pairs is copied once).
        out_dir: the new study folder (created; must not hold a ``study.json`` already).
        name, questions, ratings_per_pair, allow_no_preference: written to ``study.json`` as they are.
    """
    out = Path(out_dir)
    if (out / "study.json").exists():
        raise UserError(f"{out} already holds a study; choose a new folder")
    if not isinstance(pairs, list) or not pairs:
        raise UserError("make_study needs a non-empty list of pairs")
    out.mkdir(parents=True, exist_ok=True)
    copied: dict[Path, str] = {}

    def copy(src: Any, dest_stem: str, kinds: dict[str, str], what: str) -> str:
        if not isinstance(src, (str, os.PathLike)):
            raise UserError(f"pair {what}: expected a file path, got {src!r}")
        path = Path(src).resolve()
        if not path.is_file():
            raise UserError(f"pair {what}: {src} does not exist")
        ext = path.suffix.lower()
        if ext not in kinds:
            raise UserError(f"pair {what}: {src} has an unsupported type; use one of {sorted(kinds)}")
        if path not in copied:
            rel = f"media/{dest_stem}{ext}"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out / rel)
            copied[path] = rel
        return copied[path]

    items = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, dict):
            raise UserError(f"pair {i} must be a dict with 'video' and 'tracks'")
        tracks = pair.get("tracks")
        if isinstance(tracks, dict):
            tracks = [{"system": s, "audio": a} for s, a in tracks.items()]
        if not isinstance(tracks, list) or len(tracks) != 2 or not all(isinstance(t, dict) for t in tracks):
            raise UserError(f"pair {i} must have exactly two tracks")
        item = {"id": pair.get("id", f"pair{i:04d}"),
                "video": copy(pair.get("video"), f"{i:04d}/video", VIDEO_TYPES, f"{i} video"),
                "tracks": [{"system": t.get("system"),
                            "audio": copy(t.get("audio"), f"{i:04d}/track{k}", AUDIO_TYPES, f"{i} track {k}")}
                           for k, t in enumerate(tracks)]}
        items.append(item)
    spec = {"name": name or out.resolve().name, "questions": list(questions), "ratings_per_pair": ratings_per_pair,
            "allow_no_preference": allow_no_preference, "items": items}
    tmp = out / "study.json.tmp"
    tmp.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "study.json")
    try:
        load_study(out)  # the same checks the server makes, now rather than at serving time
    except UserError:
        os.remove(out / "study.json")
        raise
    return str(out)


# --------------------------------------------------------------------------------------------- storage

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


# --------------------------------------------------------------------------------------------- results


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a proportion ``k / n`` (95% for the default ``z``); None when ``n == 0``.

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = k/n``.
    """
    if n <= 0:
        return None
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def export_results(db: str | os.PathLike[str], study: Study | str | os.PathLike[str]) -> dict:
    """Win rates per system pair and question, with 95% Wilson score intervals, from a ratings database.

    The win rate of a system is its wins over the decisive ratings (ties, "no preference", are counted
    apart and left out). Returns a JSON-ready dict: ``comparisons`` (one row per system pair and
    question), ``progress`` (pairs that reached their target number of ratings), ``left_chosen`` (how
    often raters picked the left side, a check on position bias) and ``markdown`` (a table of it all).
    """
    if not isinstance(study, Study):
        study = load_study(study)
    if not Path(db).is_file():
        raise UserError(f"no ratings database at {db}")
    try:
        conn = sqlite3.connect(f"file:{quote(str(Path(db).resolve()))}?mode=ro", uri=True)
        try:
            _check_study_name(conn, study, db)
            rows = conn.execute("SELECT rater, item_id, question, left_system, right_system, choice, winner "
                                "FROM ratings ORDER BY id").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise UserError(f"cannot read the ratings database {db}: {e}") from None

    # A system pair is reported in the order its systems first appear in study.json.
    order: dict[frozenset, tuple[str, str]] = {}
    for it in study.items:
        order.setdefault(frozenset(t.system for t in it.tracks), (it.tracks[0].system, it.tracks[1].system))
    known = {it.id for it in study.items}
    stats: dict[tuple[str, str, str], dict[str, int]] = {}
    per_item: dict[tuple[str, str], int] = {}
    left_chosen = decisive = 0
    raters = set()
    for rater, item_id, question, left, right, choice, winner in rows:
        if item_id not in known:
            continue  # a pair removed from study.json since
        a, b = order.get(frozenset((left, right)), tuple(sorted((left, right))))
        s = stats.setdefault((question, a, b), {"n": 0, "wins_a": 0, "wins_b": 0, "ties": 0})
        s["n"] += 1
        s["wins_a" if winner == a else "wins_b" if winner == b else "ties"] += 1
        per_item[(item_id, question)] = per_item.get((item_id, question), 0) + 1
        raters.add(rater)
        if choice != "none":
            decisive += 1
            left_chosen += choice == "left"

    comparisons = []
    qrank = {q: i for i, q in enumerate(QUESTIONS)}
    for (question, a, b), s in sorted(stats.items(), key=lambda kv: (qrank.get(kv[0][0], 99), kv[0][1:])):
        d = s["wins_a"] + s["wins_b"]
        ci_a, ci_b = wilson_interval(s["wins_a"], d), wilson_interval(s["wins_b"], d)
        comparisons.append({
            "question": question, "question_text": QUESTIONS.get(question, (question,))[0],
            "system_a": a, "system_b": b, **s, "decisive": d,
            "win_rate_a": s["wins_a"] / d if d else None, "ci_a": list(ci_a) if ci_a else None,
            "win_rate_b": s["wins_b"] / d if d else None, "ci_b": list(ci_b) if ci_b else None,
        })
    tasks = [(it.id, q) for it in study.items for q in study.questions]
    complete = sum(per_item.get(t, 0) >= study.ratings_per_pair for t in tasks)
    result = {
        "study": study.name,
        "interval": "95% Wilson score interval (z = 1.96) on the win rate; ties ('no preference') excluded",
        "ratings": sum(s["n"] for s in stats.values()),
        "raters": len(raters),
        "ratings_per_pair": study.ratings_per_pair,
        "progress": {"pairs": len(tasks), "complete": complete},
        "left_chosen": {"count": left_chosen, "of": decisive, "rate": left_chosen / decisive if decisive else None},
        "comparisons": comparisons,
    }
    result["markdown"] = _markdown(result)
    return result


def _markdown(result: dict) -> str:
    lines = [f"Study **{result['study']}**: {result['ratings']} ratings by {result['raters']} raters; "
             f"{result['progress']['complete']} of {result['progress']['pairs']} (pair, question) tasks have "
             f"{result['ratings_per_pair']} ratings.", "",
             "| question | system A | system B | ratings | A wins | B wins | no pref. | A win rate [95% CI] |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for c in result["comparisons"]:
        ci = f" [{_pct(c['ci_a'][0])}, {_pct(c['ci_a'][1])}]" if c["ci_a"] else ""
        lines.append(f"| {c['question']} | {c['system_a']} | {c['system_b']} | {c['n']} | {c['wins_a']} | "
                     f"{c['wins_b']} | {c['ties']} | {_pct(c['win_rate_a'])}{ci} |")
    lines += ["", f"Win rates over decisive ratings; {result['interval']}."]
    return "\n".join(lines) + "\n"


def export_study(study_dir: str | os.PathLike[str], db_path: str | os.PathLike[str],
                 out_json: str | os.PathLike[str]) -> dict:
    """:func:`export_results` written to ``out_json`` (atomically); returns the same dict."""
    result = export_results(db_path, load_study(study_dir))
    out = Path(out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return result


# --------------------------------------------------------------------------------------------- server


class StudyServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], study: Study, store: RatingStore, quiet: bool = False):
        self.study, self.store, self.quiet = study, store, quiet
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def server_close(self) -> None:
        super().server_close()
        self.store.close()


class _Handler(BaseHTTPRequestHandler):
    server: StudyServer
    server_version = "v2meow-study"
    protocol_version = "HTTP/1.1"  # keep-alive: browsers fetch media in many range requests
    timeout = 60  # seconds a client may stay silent before its connection is dropped

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    # --- helpers

    def _rater(self) -> str | None:
        try:
            morsel = SimpleCookie(self.headers.get("Cookie", "")).get(COOKIE)
        except CookieError:
            return None
        return morsel.value if morsel is not None and _RATER_RE.match(morsel.value) else None

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: dict, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", headers)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    # --- dispatch

    def do_GET(self) -> None:
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_POST(self) -> None:
        try:
            self._post()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _get(self) -> None:
        path = urlsplit(self.path).path
        if path in STATIC_FILES:
            name, ctype = STATIC_FILES[path]
            headers = {}
            if path == "/" and self._rater() is None:
                headers["Set-Cookie"] = _cookie(secrets.token_urlsafe(18))
            self._send(200, (STATIC_DIR / name).read_bytes(), ctype, headers)
        elif path == "/api/next":
            self._next()
        elif path == "/favicon.ico":  # browsers ask for it; there is none
            self._send(204, b"", "image/x-icon")
        elif m := _MEDIA_RE.match(path):
            self._media(int(m.group(1)), m.group(2), m.group(3))
        else:
            self._error(404, "not found")

    def _next(self) -> None:
        headers = {}
        rater = self._rater()
        if rater is None:
            rater = secrets.token_urlsafe(18)
            headers["Set-Cookie"] = _cookie(rater)
        store, study = self.server.store, self.server.study
        task = store.next_task(rater)
        body: dict[str, Any] = {"rated": store.rated_by(rater), "done": task is None}
        if task is not None:
            item, question = task
            i = study.index(item.id)
            text, hint = QUESTIONS[question]
            body["task"] = {"item": item.id, "question": question, "text": text, "hint": hint,
                            "choices": store.allowed_choices(), "video": f"/media/{i}/video",
                            "left": f"/media/{i}/{question}/left", "right": f"/media/{i}/{question}/right"}
        self._json(200, body, headers)

    def _media(self, index: int, question: str | None, side: str | None) -> None:
        study = self.server.study
        if index >= len(study.items):
            return self._error(404, "not found")
        item = study.items[index]
        if question is None:
            path = item.video
        else:
            rater = self._rater()
            if question not in study.questions or rater is None:
                return self._error(404, "not found")
            left, right = self.server.store.sides(rater, item, question)
            path = (left if side == "left" else right).audio
        ctype = VIDEO_TYPES.get(path.suffix.lower()) or AUDIO_TYPES[path.suffix.lower()]
        self._file(path, ctype)

    def _file(self, path: Path, ctype: str) -> None:
        """Send a file listed in study.json, honouring a single ``Range: bytes=a-b`` (media players seek)."""
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            start, end, status = 0, size - 1, 200
            rng = self.headers.get("Range")
            if rng is not None:
                m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
                if m is None or m.group(1) == m.group(2) == "":
                    return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
                if m.group(1) == "":  # suffix range: the last N bytes
                    start = max(0, size - int(m.group(2)))
                else:
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                if start > end or start >= size:
                    return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
                status = 206
            length = end - start + 1
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Cache-Control", "private, no-store")  # left/right differ between raters
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            f.seek(start)
            while length > 0:
                chunk = f.read(min(length, 1 << 16))
                if not chunk:
                    break
                self.wfile.write(chunk)
                length -= len(chunk)

    def _read_json(self) -> dict | None:
        """The request's JSON object, or None after sending the error response."""
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":  # also makes cross-site form posts impossible
            self.close_connection = True
            self._error(415, "send application/json")
            return None
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._error(411, "Content-Length required")
            return None
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True  # the body is left unread
            self._error(413, f"request body over {MAX_BODY} bytes")
            return None
        try:
            obj = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            self._error(400, "the body is not valid JSON")
            return None
        if not isinstance(obj, dict):
            self._error(400, "the body must be a JSON object")
            return None
        return obj

    def _post(self) -> None:
        path = urlsplit(self.path).path
        if path not in ("/api/answer", "/api/rater"):
            self.close_connection = True
            return self._error(404, "not found")
        body = self._read_json()
        if body is None:
            return
        rater = self._rater()
        if rater is None:
            return self._error(403, "no rater id: reload the page (cookies must be enabled)")
        store, study = self.server.store, self.server.study
        if path == "/api/rater":
            name = body.get("name")
            if not isinstance(name, str) or len(name) > MAX_NAME:
                return self._error(400, f"name must be a string of at most {MAX_NAME} characters")
            store.set_name(rater, name.strip())
            return self._json(200, {"ok": True})
        item = study.item(body.get("item")) if isinstance(body.get("item"), str) else None
        question, choice, elapsed = body.get("question"), body.get("choice"), body.get("elapsed_ms")
        if item is None:
            return self._error(400, "unknown item")
        if not isinstance(question, str) or question not in study.questions:
            return self._error(400, "unknown question")
        if not isinstance(choice, str) or choice not in store.allowed_choices():
            return self._error(400, f"choice must be one of {store.allowed_choices()}")
        if not isinstance(elapsed, int) or isinstance(elapsed, bool) or not 0 <= elapsed < 2**31:
            elapsed = None
        try:
            store.record(rater, item, question, choice, elapsed)
        except DuplicateRating as e:
            return self._error(409, str(e))
        self._json(200, {"ok": True, "rated": store.rated_by(rater)})


def _cookie(rater: str) -> str:
    return f"{COOKIE}={rater}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Strict"


def make_server(study_dir: str | os.PathLike[str], db_path: str | os.PathLike[str], host: str = "127.0.0.1",
                port: int = 8000, quiet: bool = False) -> StudyServer:
    """A bound, not yet serving, study server (``port=0``: any free port; see ``.url``)."""
    study = load_study(study_dir)
    store = RatingStore(db_path, study)
    try:
        return StudyServer((host, port), study, store, quiet=quiet)
    except OSError as e:
        store.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def serve_study(study_dir: str | os.PathLike[str], db_path: str | os.PathLike[str], host: str = "127.0.0.1",
                port: int = 8000) -> None:
    """Serve the study until interrupted (Ctrl-C). Prints the address first (a line starting ``Serving``)."""
    server = make_server(study_dir, db_path, host, port)
    s = server.study
    print(f"Serving study {s.name!r} at {server.url} ({len(s.items)} pairs × {len(s.questions)} questions, "
          f"{s.ratings_per_pair} ratings each; ratings in {server.store.path}). Ctrl-C stops.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
