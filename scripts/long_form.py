"""Does the music hold up over a whole long video? Level and sound, segment by segment, against the real music.

For the first ``--videos`` held-out works' videos (synth-data videos of music the corpus holds out) at least
``--seconds`` long, ``generate`` scores their first ``--seconds`` in one call (windowed, as for any long video), and
each ``--segment`` seconds of the soundtrack and of the video's own music get their loudness (BS.1770), tonal clarity
and spectral flatness. Printed per video: the spread of the segments' loudness (highest minus lowest, LU), the
segments more than 10 LU below the clip's median, and the segments whose tonal clarity is under 0.4 (the music
falls apart into noise or clicks there), the share of 2.5 s stretches that are drums alone
(:func:`v2meow.metrics.music.drums_alone`) and the longest run of them; then the means over the videos, generated
against real. ``--skip`` leaves out the first videos found, ``--wavs`` keeps each soundtrack, ``--reuse`` reads them
back instead of generating (the table of a run made in parts).

    python scripts/long_form.py --videos 6 --seconds 120 --segment 15 --json runs/long/long.json
    python scripts/long_form.py --videos 24 --skip 6 --seconds 120 --segment 5 --wavs runs/collapse/base24
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEYS = ("lufs", "tonal_clarity", "flatness")
STRETCH = 2.5  # seconds per drums-alone reading (v2meow.metrics.music.drums_alone)


def segments(wav: np.ndarray, sr: int, seconds: float) -> list[dict[str, float]]:
    """Each whole ``seconds`` of ``wav``'s loudness, tonal clarity and flatness."""
    from v2meow.metrics.music import sound_descriptors

    n = int(seconds * sr)
    return [{k: float(v) for k, v in sound_descriptors(wav[i : i + n], sr).items() if k in KEYS}
            for i in range(0, len(wav) - n + 1, n)]


def summary(segs: list[dict[str, float]], drums: list[bool]) -> dict[str, float]:
    """The loudness spread (LU), the share of segments 10 LU under the median, the share under 0.4 tonal clarity;
    from ``drums`` (each 2.5 s: drums alone?), the share of drums alone and its longest run in seconds."""
    from v2meow.metrics.music import longest_run

    lufs = np.array([s["lufs"] for s in segs])
    tonal = np.array([s["tonal_clarity"] for s in segs])
    return {"spread": float(lufs.max() - lufs.min()), "quiet": float(np.mean(lufs < np.median(lufs) - 10.0)),
            "broken": float(np.mean(tonal < 0.4)), "tonal": float(tonal.mean()),
            "flatness": float(np.mean([s["flatness"] for s in segs])), "drums": float(np.mean(drums)),
            "longest": longest_run(drums) * STRETCH}


COLUMNS = (("spread", ".1f"), ("quiet", ".0%"), ("broken", ".0%"), ("tonal", ".3f"), ("flatness", ".4f"),
           ("drums", ".0%"), ("longest", ".1f"))


def long_videos(seconds: float, count: int, folder: Path = ROOT / "data_cache" / "videos") -> list[Path]:
    """The first ``count`` held-out works' videos (by name) under ``folder`` at least ``seconds`` long."""
    from v2meow.data.extract import heldout_flag
    from v2meow.io.probe import probe

    found = []
    for v in sorted(Path(folder).rglob("*.mp4")):
        if heldout_flag(v) is True and probe(str(v)).duration >= seconds:
            found.append(v)
            if len(found) == count:
                break
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded")
    p.add_argument("--videos", type=int, default=6)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--segment", type=float, default=15.0)
    p.add_argument("--seed", type=int, default=0, help="video i's soundtrack uses SEED + i")
    p.add_argument("--skip", type=int, default=0, help="leave out the first SKIP videos found (i counts them)")
    p.add_argument("--wavs", default=None, help="a folder to write each soundtrack into (VIDEO.wav)")
    p.add_argument("--reuse", action="store_true", help="read the soundtracks --wavs holds instead of generating")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import soundfile

    from v2meow.io.audio import load_audio
    from v2meow.metrics.music import drums_alone
    from v2meow.pipeline import V2Meow
    from v2meow.soundtrack import model_path

    model = V2Meow.from_pretrained(model_path(args.model))
    sr = model.sample_rate
    found = long_videos(args.seconds, args.skip + args.videos)
    rows = []
    print("| video | side | loudness spread (LU) | segments 10 LU under the median | segments under 0.4 tonal "
          "clarity | tonal clarity | flatness | drums alone | longest drums alone (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, video in enumerate(found):
        if i < args.skip:
            continue
        kept = Path(args.wavs or ".") / f"{video.stem}.wav"
        if args.reuse:
            wav = soundfile.read(str(kept), dtype="float32")[0]
        else:
            wav = model.generate(str(video), seconds=args.seconds, seed=args.seed + i).wav
            if args.wavs:
                kept.parent.mkdir(parents=True, exist_ok=True)
                soundfile.write(str(kept), wav, sr)
        real = load_audio(str(video), sample_rate=sr, duration=args.seconds)
        row = {"video": video.name}
        for side, w in (("generated", wav), ("real", real)):
            row[side] = segments(w, sr, args.segment)
            row[f"{side}_drums"] = [bool(d) for d in drums_alone(w, sr, STRETCH)]
        rows.append(row)
        for side in ("generated", "real"):
            s = summary(row[side], row[f"{side}_drums"])
            print(f"| {video.stem} | {side} | " + " | ".join(f"{s[k]:{f}}" for k, f in COLUMNS) + " |", flush=True)
    for side in ("generated", "real"):
        s = [summary(r[side], r[f"{side}_drums"]) for r in rows]
        print(f"| all {len(rows)} | {side} | " + " | ".join(
            f"{np.mean([x[k] for x in s]):{f}}" for k, f in COLUMNS) + " |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
