"""Does the joint music-text space order music by the properties a prompt can name?

For the held-out works of the corpus (10 s from the middle of each track), each pair of opposite prompts gives a
score per crop, ``cos(audio, "fast ...") - cos(audio, "slow ...")``. Its Spearman correlation with the measured
property (the labelled tempo, RMS level, spectral centroid, onsets a second) says whether the joint model reads
that property: a prompt can only steer the stages along what the space encodes. The level test plays the same
crops at -36 and -12 dBFS and reports how far the loudness score moves.

    python scripts/joint_attributes.py --n 120
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAIRS = {  # property -> (low prompt, high prompt)
    "tempo": ("slow music", "fast music"),
    "level": ("quiet soft music", "loud powerful music"),
    "brightness": ("dark mellow music", "bright music"),
    "density": ("sparse music with few notes", "busy music with many notes"),
}


def measure(wav: np.ndarray, sr: int) -> dict[str, float]:
    import librosa

    from v2meow.metrics.beats import detect_onsets

    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
    return {"level": 20 * np.log10(max(rms, 1e-6)),
            "brightness": float(np.mean(librosa.feature.spectral_centroid(y=wav, sr=sr))),
            "density": len(detect_onsets(wav, sr)) / (len(wav) / sr)}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded", help="a joint model: 'embedded' (shipped), a run or a directory")
    p.add_argument("--music", default=str(ROOT / "data_cache" / "corpus"))
    p.add_argument("--n", type=int, default=120, help="held-out tracks")
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args(argv)

    import torch

    from v2meow.train.joint import load_joint
    from v2meow.train.joint.data import list_tracks, read_track

    joint, _ = load_joint(args.model)
    joint.eval()
    sr = joint.sample_rate
    entries = [e for e in list_tracks(args.music) if e.get("heldout")]
    rng = np.random.default_rng(0)
    entries = [entries[i] for i in sorted(rng.permutation(len(entries))[: args.n])]
    crops, props = [], []
    n = int(args.seconds * sr)
    for e in entries:
        wav = read_track(Path(args.music) / e["path"], sr)
        if len(wav) < n:
            continue
        a = (len(wav) - n) // 2
        crop = wav[a: a + n].astype(np.float32)
        crops.append(crop)
        bpm = (e.get("labels") or {}).get("bpm")
        props.append({"tempo": float(bpm) if bpm else float("nan"), **measure(crop, sr)})
    with torch.inference_mode():
        audio = torch.nn.functional.normalize(joint.embed_audio(torch.from_numpy(np.stack(crops))), dim=-1)
        texts = [t for pair in PAIRS.values() for t in pair]
        text = torch.nn.functional.normalize(joint.embed_text(texts), dim=-1)
        sims = (audio @ text.T).numpy()  # [crops, prompts]

        def level_scores(db: float) -> np.ndarray:
            x = np.stack([c * (10 ** (db / 20) / max(float(np.sqrt(np.mean(c ** 2))), 1e-6)) for c in crops])
            x = np.clip(x, -1, 1).astype(np.float32)
            a = torch.nn.functional.normalize(joint.embed_audio(torch.from_numpy(x)), dim=-1)
            s = (a @ text.T).numpy()
            i = texts.index(PAIRS["level"][0])
            return s[:, i + 1] - s[:, i]

        soft, loud = level_scores(-36.0), level_scores(-12.0)
    print(f"{len(crops)} held-out crops of {args.seconds:g} s, joint model {args.model}")
    print("| property | prompts (low / high) | Spearman of score with the measured property | score s.d. |")
    print("|---|---|---|---|")
    for j, (name, (lo, hi)) in enumerate(PAIRS.items()):
        score = sims[:, 2 * j + 1] - sims[:, 2 * j]
        v = np.array([r[name] for r in props])
        ok = np.isfinite(v)
        print(f"| {name} | {lo!r} / {hi!r} | {spearman(score[ok], v[ok]):+.2f} (n={ok.sum()}) | {score.std():.3f} |")
    d = loud - soft
    print(f"\nthe same crops at -12 against -36 dBFS: the loud-minus-quiet score moves by {d.mean():+.4f} "
          f"± {d.std(ddof=1) / np.sqrt(len(d)):.4f} (its spread across crops: {soft.std():.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
