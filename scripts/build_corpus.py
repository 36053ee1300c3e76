"""Build the training corpus of the shipped weights in ``data_cache/corpus/``: music free for any use, ≥ 40 h.

One resumable command; run it again and it carries on where it stopped (every rendered or converted file is
kept, and its labels lie beside it):

1. ``scores/``: public-domain works of the music21 corpus rendered with FluidSynth through the MIT SoundFonts
   (``scripts/render_scores.py``: ensembles, tempi, keys, dynamics and drum parts drawn per track; whole works
   held out);
2. ``mit_music/``: the MIT-licensed mood-labelled tracks of ``immich-memories-music``
   (``scripts/get_music.py --sources immich``);
3. ``sources.json``: one manifest over both, the format every music reader of v2meow understands, with each
   file's source, licence and held-out flag. A file whose licence is not free for any use (a render through the
   GPL TimGM6mb font, say) is refused here, so it can never reach the shipped weights.

``--eval-music`` also fetches the Debian game music (GPL-2+ / CC-BY-SA) into ``data_cache/music/``: a source the
shipped weights never hear, for ``bench.codec`` and for users' own training, never part of this corpus.

    apt-get install fluidsynth fluid-soundfont-gm musescore-general-soundfont && pip install -e '.[scores]'
    python scripts/build_corpus.py                  # 41.3 h: about 2.5 h on 2 busy cores
    python scripts/build_corpus.py --tracks 200     # a smaller corpus (≈ 5 h) to try things on
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent
FREE_LICENCES = ("MIT",)  # licences of the audio itself that allow any use, commercial included


def is_free(entry: dict) -> bool:
    """Whether a sources entry may train weights that ship: its audio and every part of its making are free."""
    if "free_for_any_use" in entry:  # rendered scores: public-domain works through an MIT or a GPL font
        return bool(entry["free_for_any_use"])
    return entry.get("licence") in FREE_LICENCES


def merge(out: Path, parts: list[str]) -> dict:
    """One ``sources.json`` over the ``parts`` folders of ``out`` (each with its own), paths relative to ``out``."""
    files, refused = [], []
    for part in parts:
        manifest = out / part / "sources.json"
        if not manifest.is_file():
            continue
        for e in json.loads(manifest.read_text())["files"]:
            e = {**e, "path": f"{part}/{e['path']}", "name": f"{part}/{e['name']}"}
            (files if is_free(e) else refused).append(e)
    total = sum(e["duration"] for e in files)
    held = sum(e["duration"] for e in files if e.get("heldout"))
    merged = {
        "format": "v2meow-music-sources/1",
        "sample_rate": 16000,
        "seconds": round(total, 1),
        "heldout_seconds": round(held, 1),
        "licences": sorted({e["licence"] for e in files}),
        "refused_not_free": [e["path"] for e in refused],
        "files": sorted(files, key=lambda e: e["path"]),
    }
    tmp = out / "sources.json.tmp"
    tmp.write_text(json.dumps(merged, indent=1))
    os.replace(tmp, out / "sources.json")
    return merged


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--out", default=str(ROOT / "data_cache" / "corpus"))
    p.add_argument("--tracks", type=int, default=1700, help="rendered tracks (about 1.45 min each)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--eval-music", action="store_true",
                   help="also fetch the Debian game music (copyleft; evaluation only) into data_cache/music")
    args = p.parse_args(argv)
    out = Path(args.out)
    py = sys.executable
    run([py, str(SCRIPTS / "render_scores.py"), "--tracks", str(args.tracks), "-o", str(out / "scores"),
         "--workers", str(args.workers)])
    if not (out / "mit_music" / "sources.json").is_file():
        run([py, str(SCRIPTS / "get_music.py"), "--sources", "immich", "--out", str(out / "mit_music"),
             "--jobs", str(args.workers)])
    if args.eval_music:
        run([py, str(SCRIPTS / "get_music.py"), "--sources", "wesnoth-1.16-music", "supertux-data",
             "supertuxkart-data", "frozen-bubble-data", "extremetuxracer-data", "--jobs", str(args.workers)])
    m = merge(out, ["scores", "mit_music"])
    print(f"{len(m['files'])} files, {m['seconds'] / 3600:.2f} h ({m['heldout_seconds'] / 3600:.2f} h held out), "
          f"licences: {'; '.join(m['licences'])}; refused as not free: {len(m['refused_not_free'])} "
          f"→ {out / 'sources.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
