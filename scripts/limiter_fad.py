"""FAD of generated soundtracks with and without the loudness limiter (docs/embedded-model.md, "Levels").

    python scripts/limiter_fad.py   # the 48 shipped soundtracks of runs/embedded/eval6 against their videos' music

The saved soundtracks (one gain) are post-processed by match_loudness with each limit; a last row applies the
limiter's gain without limiting (float, peaks past full scale) to separate the level from the limiting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def main(argv: list[str] | None = None) -> int:
    from eval_embedded import fad_table

    from v2meow.io.audio import load_audio, match_loudness

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", default=str(ROOT / "runs" / "embedded" / "eval6"), help="an eval_embedded output")
    p.add_argument("--system", default="evaluate_trained_best4")
    p.add_argument("--limits", type=float, nargs="+", default=[0.0, 3.0, 6.0])
    args = p.parse_args(argv)
    ev = Path(args.eval)
    videos = sorted((ev / "heldout_videos").glob("*.mp4"))
    files = sorted((ev / args.system / "audio").glob("*.wav"))
    if not videos or len(files) != len(videos):
        print(f"{ev} does not hold one soundtrack per held-out video.", file=sys.stderr)
        return 2
    refs = [load_audio(str(v), sample_rate=16000, duration=10.0) for v in videos]
    gen = [sf.read(f, dtype="float32")[0] for f in files]
    systems = {f"--limit {lim:g}": [match_loudness(g, 16000, -16.0, limit_db=lim) for g in gen] for lim in args.limits}

    def gain_only(g: np.ndarray, lim: float) -> np.ndarray:
        y = match_loudness(g, 16000, -16.0, limit_db=lim)
        return g * float(np.dot(y, g) / np.dot(g, g))

    top = max(args.limits)
    systems[f"the gain of --limit {top:g}, not limited"] = [gain_only(g, top) for g in gen]
    for name, row in fad_table(systems, refs).items():
        print(f"{name}: FAD semantic {row['fad']:.2f}, codec {row['fad_codec']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
