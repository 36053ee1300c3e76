"""The study itself: ``study.json`` read and checked (:func:`load_study`) or written (:func:`make_study`)."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from v2meow.errors import UserError

QUESTIONS: dict[str, tuple[str, str]] = {
    "relevance": ("Which music goes best with the video?",
                  "Ignore the sound quality: judge only how well the music fits the video."),
    "preference": ("Which music do you prefer?", "Ignore the video: judge only the music."),
}
CHOICES = ("left", "right", "none")
VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".ogv": "video/ogg"}
AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".m4a": "audio/mp4",
               ".aac": "audio/aac", ".ogg": "audio/ogg", ".opus": "audio/ogg", ".webm": "audio/webm"}
_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_STUDY_KEYS = {"name", "questions", "ratings_per_pair", "allow_no_preference", "items"}


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
