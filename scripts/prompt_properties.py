"""Does a prompt that names tempo, loudness or instruments move those measured properties of the music?

For each held-out video, one soundtrack with each of two opposite prompts and one without, same seed, at the
stages' own level (``loudness=0``: the default brings every soundtrack to -16 LUFS, which would hide loudness).
Measured: integrated loudness (LUFS), tempo from the tracked beats (BPM), onsets a second, and spectral centroid
(Hz, brass and drums are brighter than a piano). The table gives the mean of each and the paired difference
between the prompts with its standard error.

    python scripts/prompt_properties.py --model embedded --videos runs/embedded/eval6/heldout_videos --n 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eval_embedded import PROMPTS  # noqa: E402  (the prompts of the embedded model's evaluation)

QUIET, LOUD = PROMPTS


def properties(wav: np.ndarray, sr: int) -> dict[str, float]:
    import librosa

    from v2meow.io.loudness import integrated_loudness
    from v2meow.metrics.beats import detect_onsets, track_beats

    beats = track_beats(wav, sr)
    tempo = 60.0 / float(np.median(np.diff(beats))) if len(beats) > 2 else float("nan")
    seconds = len(wav) / sr
    centroid = float(np.mean(librosa.feature.spectral_centroid(y=wav.astype(np.float32), sr=sr)))
    return {"loudness_lufs": float(integrated_loudness(wav, sr)), "tempo_bpm": tempo,
            "onsets_per_s": len(detect_onsets(wav, sr)) / seconds, "centroid_hz": centroid}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded")
    p.add_argument("--videos", default=str(ROOT / "runs" / "embedded" / "eval6" / "heldout_videos"))
    p.add_argument("--n", type=int, default=8, help="videos")
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args(argv)

    from v2meow.pipeline import V2Meow
    from v2meow.soundtrack import model_path

    model = V2Meow.from_pretrained(model_path(args.model))
    rows = {QUIET: [], LOUD: [], None: []}
    for i, v in enumerate(sorted(Path(args.videos).glob("*.mp4"))[: args.n]):
        for prompt in rows:
            wav = model.generate(str(v), prompt=prompt, seconds=args.seconds, seed=i, candidates=1, loudness=0).wav
            rows[prompt].append(properties(wav, model.sample_rate))
    keys = list(rows[None][0])
    print(f"{args.n} videos, one soundtrack per prompt, seed = video index, the stages' own level")
    print("| property | " + " | ".join(f"{p or 'no prompt'}" for p in rows) + " | loud − quiet (± s.e.) |")
    print("|---|---|---|---|---|")
    for k in keys:
        means = [np.nanmean([r[k] for r in rows[p]]) for p in rows]
        d = np.array([a[k] - b[k] for a, b in zip(rows[LOUD], rows[QUIET])])
        d = d[np.isfinite(d)]
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        print(f"| {k} | " + " | ".join(f"{m:.3g}" for m in means) + f" | {d.mean():+.3g} ± {se:.2g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
