"""How much of two models' soundtracks of the same videos is drums playing alone, paired soundtrack by soundtrack.

Each folder holds one WAV per video under the same names (an `eval_embedded.py` run's `evaluate_trained_best4/audio`,
or `scripts/long_form.py --wavs`). For each soundtrack: the share of its whole 2.5 s stretches that are drums alone
(:func:`v2meow.metrics.music.drums_alone`) and the longest run of them; then both models' means, the paired
difference with its standard error, and how many soundtracks are mostly drums alone.

    python scripts/drums_gap.py runs/gate240/shipped/evaluate_trained_best4/audio runs/X/evaluate_trained_best4/audio
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STRETCH = 2.5  # seconds per reading, as scripts/long_form.py reads them


def reading(path: Path) -> tuple[float, float]:
    """The drums-alone share of ``path``'s 2.5 s stretches and its longest run in seconds."""
    import soundfile

    from v2meow.metrics.music import drums_alone, longest_run

    wav, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    d = drums_alone(wav.mean(axis=1), sr, STRETCH)
    return float(np.mean(d)) if len(d) else 0.0, longest_run(d) * STRETCH


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", help="the committed model's soundtracks (a folder of WAVs)")
    p.add_argument("candidate", help="the candidate's soundtracks of the same videos, under the same names")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    base, cand = Path(args.base), Path(args.candidate)
    names = sorted(n.name for n in base.glob("*.wav") if (cand / n.name).is_file())
    if len(names) < 2:
        print(f"error: fewer than 2 soundtracks under the same names in {base} and {cand}.", file=sys.stderr)
        return 2
    rows = {n: {"base": reading(base / n), "candidate": reading(cand / n)} for n in names}
    share = {s: np.array([rows[n][s][0] for n in names]) for s in ("base", "candidate")}
    longest = {s: np.array([rows[n][s][1] for n in names]) for s in ("base", "candidate")}
    d = share["candidate"] - share["base"]
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    print(f"{len(names)} soundtracks | base | candidate")
    print(f"drums alone | {share['base'].mean():.1%} | {share['candidate'].mean():.1%} | "
          f"paired {d.mean():+.3f} ± {se:.3f} ({d.mean() / se if se > 0 else 0.0:+.1f} s.e.)")
    print(f"longest run (s) | {longest['base'].mean():.1f} | {longest['candidate'].mean():.1f}")
    mostly = {s: int((share[s] > 0.5).sum()) for s in share}
    print(f"mostly drums alone (over half) | {mostly['base']} | {mostly['candidate']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"rows": rows, "paired": float(d.mean()), "se": se}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
