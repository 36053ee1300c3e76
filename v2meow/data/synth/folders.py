"""The folder driver: every audio file of a music folder rendered into a mirrored video folder, resumably,
in parallel processes; per-track seeds and what is known of each track's source and licence."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from v2meow.data.synth.render import FORMAT, SYNTH_VERSION, render_video, sidecar_path
from v2meow.data.synth.worlds import WORLDS
from v2meow.errors import UserError
from v2meow.io.atomic import sha256_file
from v2meow.io.audio import AUDIO_EXTENSIONS

logger = logging.getLogger("v2meow.data.synth")


def list_audio(music_dir: str | os.PathLike[str]) -> list[str]:
    """Audio files under ``music_dir`` (recursively, sorted, hidden files and folders skipped)."""
    root = os.fspath(music_dir)
    if not os.path.isdir(root):
        raise UserError(f"The music folder {root} does not exist.")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS):
                found.append(os.path.join(dirpath, name))
    return sorted(found, key=lambda p: os.path.relpath(p, root))


def track_seed(seed: int, relpath: str) -> int:
    """Per-track seed from the run's seed and the track's path relative to the music folder."""
    digest = hashlib.sha256(f"{int(seed)}:{Path(relpath).as_posix()}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


_LICENCE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING", "copyright", "LICENCE", "README")


def _folders_up(audio_path: str, music_dir: str) -> Iterator[str]:
    """The track's folder, then each folder above it up to (and with) the music folder."""
    root = os.path.abspath(music_dir)
    folder = os.path.dirname(os.path.abspath(audio_path))
    while True:
        yield folder
        if folder == root or os.path.dirname(folder) == folder or not folder.startswith(root):
            return
        folder = os.path.dirname(folder)


def _read_json(path: str) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _sources_entry(audio_path: str, music_dir: str) -> dict[str, Any] | None:
    """The track's entry in the nearest ``sources.json`` (format ``v2meow-music-sources/1``, as the corpus and
    ``scripts/get_music.py`` write it) in its folder or above, up to the music folder; None when none lists it."""
    for folder in _folders_up(audio_path, music_dir):
        manifest = _read_json(os.path.join(folder, "sources.json"))
        if isinstance(manifest, dict) and isinstance(manifest.get("files"), list):
            rel = Path(os.path.relpath(os.path.abspath(audio_path), folder)).as_posix()
            for e in manifest["files"]:
                if isinstance(e, dict) and e.get("path") == rel:
                    return e
    return None


def source_info(audio_path: str, music_dir: str, license: str | None = None) -> dict[str, Any]:
    """What is known about a track's origin: its path relative to the music folder and its licence.

    The licence is, in order: ``license`` (given for the whole run); a per-track sidecar next to the
    audio (``<name>.json`` or ``<audio file>.json``; its ``"license"`` and other fields are recorded); the
    track's entry in a music manifest ``sources.json`` (its ``"licence"``; the entry is recorded, held-out flag
    included, when there is no sidecar);
    an entry of a ``licenses.json`` (relative path or file name → licence) in the track's folder or
    above (up to the music folder); else the nearest licence-like file (``LICENSE``, ``COPYING``,
    Debian ``copyright``) in those folders is named as ``license_file``.
    """
    rel = os.path.relpath(audio_path, music_dir)
    info: dict[str, Any] = {"relpath": Path(rel).as_posix()}
    entry = _sources_entry(audio_path, music_dir)
    if entry is not None:  # a music manifest's entry (source, licence, held-out flag); a sidecar below wins
        info["info"] = entry
    for cand in (os.path.splitext(audio_path)[0] + ".json", audio_path + ".json"):
        if os.path.isfile(cand):
            extra = _read_json(cand)
            if isinstance(extra, dict):
                info["info"] = extra
                if "license" in extra and license is None:
                    license = str(extra["license"])
            break
    if license is None and entry is not None and "licence" in entry:
        license = str(entry["licence"])
    for folder in _folders_up(audio_path, music_dir):
        if license is not None:
            break
        entries = _read_json(os.path.join(folder, "licenses.json"))
        if isinstance(entries, dict):
            key_rel = Path(os.path.relpath(audio_path, folder)).as_posix()
            for key in (key_rel, os.path.basename(audio_path), "*"):
                if key in entries:
                    license = str(entries[key])
                    break
        if license is None and "license_file" not in info:
            for name in _LICENCE_FILES:
                if os.path.isfile(os.path.join(folder, name)):
                    info["license_file"] = os.path.join(folder, name)
                    break
    if license is not None:
        info["license"] = license
    return info


def _output_names(files: list[str], music_dir: str) -> list[str]:
    """Output paths relative to the output folder: the track's relative path with ``.mp4``; when two
    tracks share a stem (``a.ogg`` and ``a.wav``), the source extension is kept in the name."""
    stems = [os.path.splitext(os.path.relpath(p, music_dir))[0] for p in files]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s.lower()] = counts.get(s.lower(), 0) + 1
    out = []
    for p, s in zip(files, stems):
        if counts[s.lower()] > 1:
            s = s + "_" + os.path.splitext(p)[1].lstrip(".").lower()
        out.append(s + ".mp4")
    return out


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    out_path = job["out_path"]
    try:
        source = {**job["source"], "sha256": sha256_file(job["audio_path"])}
    except OSError as e:
        return {"video": out_path, "source": {"path": job["audio_path"]}, "status": "failed", "error": str(e)}
    if os.path.exists(out_path) and os.path.exists(sidecar_path(out_path)):
        try:
            with open(sidecar_path(out_path), encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            meta = None  # an unreadable sidecar: render again
        wanted = {
            "format": FORMAT,
            "version": SYNTH_VERSION,
            "size": list(job["size"]),
            "fps": job["fps"],
            "seed": job["seed"],
            "seconds_limit": job["seconds"],
            "world_forced": job.get("world"),
        }
        same_audio = isinstance(meta, dict) and (meta.get("source") or {}).get("sha256") == source["sha256"]
        if same_audio and all(meta.get(k) == v for k, v in wanted.items()):
            return {**meta, "video": out_path, "sidecar": sidecar_path(out_path), "status": "skipped"}
        # Made with other settings, from other audio (a sidecar without its audio's SHA-256 is from before it was
        # recorded) or by another version: replaced, atomically, by a new render.
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    try:
        meta = render_video(
            job["audio_path"],
            out_path,
            seconds=job["seconds"],
            size=job["size"],
            fps=job["fps"],
            seed=job["seed"],
            world=job.get("world"),
            source=source,
        )
    except Exception as e:  # one bad file must not stop hours of rendering; reported per file
        logger.warning("Could not render %s: %s", job["audio_path"], e)
        return {"video": out_path, "source": {"path": job["audio_path"]}, "status": "failed", "error": str(e)}
    return {**meta, "status": "rendered"}


def synth_data(
    music_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    seconds: float | None = None,
    size: tuple[int, int] = (256, 144),
    fps: float = 24,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
    license: str | None = None,
    world: str | None = None,
) -> list[dict[str, Any]]:
    """Render a paired video for every audio file under ``music_dir`` into ``out_dir`` (same tree).

    Each output is ``<relative path>.mp4`` plus its sidecar ``.json`` (see :func:`render_video`). Outputs
    that exist (both files, made with the same settings) are skipped, so an interrupted run resumes;
    outputs made with other settings (size, fps, seed, ``seconds``, ``world``) are rendered again. Each
    track's seed is derived from ``seed`` and its relative path (:func:`track_seed`). ``workers > 1``
    renders in that many processes. Returns one metadata dict per track, in the sorted order of the tracks, each with
    ``"status"``: ``"rendered"``, ``"skipped"`` or ``"failed"`` (with ``"error"``; other tracks go on).
    """
    music_dir, out_dir = os.fspath(music_dir), os.fspath(out_dir)
    files = list_audio(music_dir)
    if not files:
        raise UserError(f"No audio files ({', '.join(AUDIO_EXTENSIONS)}) were found under {music_dir}.")
    if workers < 1:
        raise UserError(f"The number of workers must be at least 1, got {workers}.")
    if world is not None and world not in WORLDS:
        raise UserError(f"Unknown visual world {world!r}; choose from {', '.join(WORLDS)}.")
    os.makedirs(out_dir, exist_ok=True)
    jobs = []
    for path, name in zip(files, _output_names(files, music_dir)):
        src = source_info(path, music_dir, license)
        jobs.append(
            {
                "audio_path": path,
                "out_path": os.path.join(out_dir, name),
                "seconds": seconds,
                "size": (int(size[0]), int(size[1])),
                "fps": float(fps),
                "seed": track_seed(seed, src["relpath"]),
                "world": world,
                "source": src,
            }
        )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="track", desc="synth-data")
    results: dict[str, dict[str, Any]] = {}
    try:
        if workers == 1 or len(jobs) == 1:
            for job in jobs:
                results[job["out_path"]] = _run_job(job)
                if bar is not None:
                    bar.update(1)
        else:
            # forkserver: workers are forked from a clean server process (no threads or locks inherited
            # from the caller, e.g. torch's) that imported the analysis libraries once, so each worker
            # does not pay their seconds-long import again. spawn where forkserver does not exist.
            if "forkserver" in multiprocessing.get_all_start_methods():
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["v2meow.data.synth", "librosa.beat", "librosa.feature", "librosa.onset"])
            else:
                ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(workers, len(jobs))) as pool:
                for res in pool.imap_unordered(_run_job, jobs):
                    results[res["video"]] = res
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return [results[job["out_path"]] for job in jobs]
