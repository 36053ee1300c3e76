"""How far the loudness limiter should go: soundtracks brought to -16 LUFS with ``limit_db`` from 0 to 12.

For each budget: how many soundtracks end within 1 LU of the target and more than 4 dB below it, and what the
limiter changed (the energy of the output minus the input at the plain gain it is closest to, in dB below the
music's). The table of docs/embedded-model.md ("Levels") comes from

    python scripts/limiter_study.py runs/embedded/eval6/evaluate_trained_best4/audio
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from v2meow.io.audio import match_loudness
from v2meow.io.loudness import integrated_loudness


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", help="a folder of generated .wav soundtracks (e.g. an evaluation's audio/)")
    p.add_argument("--target", type=float, default=-16.0, help="LUFS")
    p.add_argument("--limits", type=float, nargs="+", default=[0.0, 3.0, 6.0, 9.0, 12.0])
    args = p.parse_args(argv)
    files = sorted(Path(args.folder).glob("*.wav"))
    if not files:
        print(f"No .wav files in {args.folder}.", file=sys.stderr)
        return 2
    ceiling = 10 ** (-1 / 20)
    print(f"{len(files)} soundtracks, target {args.target} LUFS")
    for limit in args.limits:
        lufs, change = [], []
        for f in files:
            x, sr = sf.read(f, dtype="float32")
            y = match_loudness(x, sr, args.target, limit_db=limit)
            assert np.abs(y).max() <= ceiling + 1e-6
            lufs.append(integrated_loudness(y, sr))
            g = float(np.dot(y, x) / np.dot(x, x))
            change.append(10 * np.log10(np.sum((g * x) ** 2) / max(float(np.sum((y - g * x) ** 2)), 1e-20)))
        lufs, change = np.array(lufs), np.array(change)
        within = int(np.sum(np.abs(lufs - args.target) <= 1.0))
        print(f"limit {limit:4.1f} dB: within 1 LU {within}/{len(files)}, more than 4 dB below "
              f"{int(np.sum(lufs < args.target - 4))}, median {np.median(lufs):.1f} / lowest {lufs.min():.1f} LUFS; "
              f"limiter's change {np.median(change):.1f} dB (median) / {change.min():.1f} dB (worst) below the music")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
