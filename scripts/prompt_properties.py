"""Does a prompt that names tempo, loudness or instruments move those measured properties of the music?

For each held-out video, one soundtrack with each of two opposite prompts and one without, same seed, at the
stages' own level (``loudness=0``: the default brings every soundtrack to -16 LUFS, which would hide loudness).
Measured: integrated loudness (LUFS), tempo from the tracked beats (BPM), onsets a second, and spectral centroid
(Hz, brass and drums are brighter than a piano). The table gives the mean of each and the paired difference
between the prompts with its standard error.

    python scripts/prompt_properties.py --model embedded --videos runs/embedded/eval6/heldout_videos --n 8
    python scripts/prompt_properties.py --n 16 --guidance 1 3   # one table per classifier-free guidance scale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eval_embedded import PROMPTS, descriptors  # noqa: E402  (the prompts of the embedded model's evaluation)


def properties(wav: np.ndarray, sr: int) -> dict[str, float]:
    import librosa

    from v2meow.io.loudness import integrated_loudness
    from v2meow.metrics.beats import beats_tempo, detect_onsets, track_beats

    beats = track_beats(wav, sr)
    tempo = beats_tempo(beats)
    tempo = float("nan") if tempo is None else tempo
    seconds = len(wav) / sr
    centroid = float(np.mean(librosa.feature.spectral_centroid(y=wav.astype(np.float32), sr=sr)))
    return {"loudness_lufs": float(integrated_loudness(wav, sr)), "tempo_bpm": tempo,
            "onsets_per_s": len(detect_onsets(wav, sr)) / seconds, "centroid_hz": centroid,
            **descriptors(wav, sr)}  # tonal and pulse clarity, flatness: does guidance cost the music its quality?


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded")
    p.add_argument("--videos", default=str(ROOT / "runs" / "embedded" / "eval6" / "heldout_videos"))
    p.add_argument("--n", type=int, default=8, help="videos")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--prompts", nargs=2, default=list(PROMPTS), metavar=("LOW", "HIGH"),
                   help="two opposite prompts (default: the evaluation's quiet and loud prompts)")
    p.add_argument("--gains", action="store_true",
                   help="also the MCC gain of the evaluation's prompts (scripts/eval_embedded.py) at each guidance")
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0],
                   help="classifier-free guidance scales for the prompt (one table each; 1 = off)")
    p.add_argument("--joint", default=None,
                   help="--gains: score MCC with this joint model (e.g. 'embedded', the shipped one) instead of the "
                        "model's own, so that a candidate shipping another joint model compares with the release")
    args = p.parse_args(argv)

    from v2meow.pipeline import V2Meow
    from v2meow.soundtrack import model_path

    model = V2Meow.from_pretrained(model_path(args.model))
    low, high = args.prompts
    videos = sorted(Path(args.videos).glob("*.mp4"))[: args.n]
    plain = [properties(model.generate(str(v), seconds=args.seconds, seed=i, candidates=1, loudness=0).wav,
                        model.sample_rate) for i, v in enumerate(videos)]
    for guidance in args.guidance:
        rows = {low: [], high: [], None: plain}
        for i, v in enumerate(videos):
            for prompt in (low, high):
                wav = model.generate(str(v), prompt=prompt, seconds=args.seconds, seed=i, candidates=1, loudness=0,
                                     guidance=guidance).wav
                rows[prompt].append(properties(wav, model.sample_rate))
        keys = list(plain[0])
        if args.gains:
            from eval_embedded import prompt_gains

            for prompt, r in prompt_gains(model, videos, args.seconds, guidance, args.joint).items():
                print(f"guidance {guidance:g}, {prompt!r}: MCC {r['mcc_with']:.3f} with, {r['mcc_without']:.3f} "
                      f"without, paired gain {r['paired_gain']:+.3f} ± {r['gain_se']:.3f}", flush=True)
        print(f"\n{len(videos)} videos, one soundtrack per prompt, seed = video index, the stages' own level, "
              f"guidance {guidance:g}")
        print("| property | " + " | ".join(f"{p or 'no prompt'}" for p in rows) + " | second − first (± s.e.) |")
        print("|---|---|---|---|---|")
        for k in keys:
            means = [np.nanmean([r[k] for r in rows[p]]) for p in rows]
            d = np.array([a[k] - b[k] for a, b in zip(rows[high], rows[low])])
            d = d[np.isfinite(d)]
            se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
            print(f"| {k} | " + " | ".join(f"{m:.3g}" for m in means) + f" | {d.mean():+.3g} ± {se:.2g} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
