"""Choose the embedded stages' sampling settings by measurement on held-out works' videos.

    python scripts/sweep_sampling.py --model runs/embedded/model            # -> runs/embedded/sweep.json

Each setting (stage temperatures, stage 2's top-k and video guidance) generates 10 s for the same held-out
synth-data videos with the same seeds, and is scored on what the ship gate asks of the music:

- MCC: the cosine, in the shipped joint model's space, of the generated music and the video's own music;
- beat F (±70 ms) of the music's onsets against the video's visual beats (its sidecar: the beats its picture
  was made to), and the same against another video's (*mismatched*): music that follows the picture scores
  the first above the second;
- pulse clarity and spectral flatness (scripts/eval_embedded.py's descriptors) and the level.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

# name -> (stage 1 temperature, stage 2 temperature, stage 2 top-k, stage 2 video guidance)
SETTINGS = {
    "defaults (1.0 / 0.95)": (1.0, 0.95, 0, 1.0),
    "stage 2 at 1.0": (1.0, 1.0, 0, 1.0),
    "stage 2 top-k 50": (1.0, 1.0, 50, 1.0),
    "stage 1 at 0.8": (0.8, 0.95, 0, 1.0),
    "stage 1 at 0.7": (0.7, 0.95, 0, 1.0),
    "stage 1 at 0.9": (0.9, 0.95, 0, 1.0),
    "video guidance 2": (1.0, 0.95, 0, 2.0),
    "video guidance 3": (1.0, 0.95, 0, 3.0),
    # the second round: the best of the first round together
    "stage 1 at 0.8 + top-k 50": (0.8, 1.0, 50, 1.0),
    "stage 1 at 0.6 + top-k 50": (0.6, 1.0, 50, 1.0),
    "stage 1 at 0.8 + top-k 50 + guidance 3": (0.8, 1.0, 50, 3.0),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--only", default="", help="comma-separated setting names (default: all)")
    p.add_argument("--baseline", default="stage 1 at 0.8",
                   help="the setting the others are compared with, video by video (run it first)")
    p.add_argument("--out", default=str(ROOT / "runs" / "embedded" / "sweep.json"))
    args = p.parse_args(argv)
    import torch
    from eval_embedded import descriptors, heldout_videos

    from v2meow.io.audio import load_audio
    from v2meow.metrics.alignment import video_beats
    from v2meow.metrics.beats import BeatFMeasure, track_beats
    from v2meow.pipeline import V2Meow

    model = V2Meow.from_pretrained(args.model)
    sr = model.sample_rate
    videos = sorted(heldout_videos(args.videos, ROOT / "runs" / "embedded" / "eval").glob("*.mp4"))[: args.videos]
    refs = [load_audio(str(v), sample_rate=sr, duration=args.seconds) for v in videos]
    ref_emb = [model.text.embed_audio(torch.from_numpy(r)[None], sr)[0] for r in refs]
    beats = [video_beats(str(v), args.seconds, curve=False).times for v in videos]  # their sidecars' beats
    out = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    only = set(filter(None, args.only.split(",")))
    for name, (t1, t2, k2, g) in SETTINGS.items():
        if only and name not in only:
            continue
        model.cfg.semantic.sampling = model.cfg.semantic.sampling.replace(temperature=t1)
        model.cfg.coarse.sampling = model.cfg.coarse.sampling.replace(temperature=t2, top_k=k2)
        model.cfg.coarse.video_guidance = g
        rows, t0 = [], time.time()
        for i, v in enumerate(videos):
            wav = model.generate(str(v), seconds=args.seconds, seed=i).wav
            emb = model.text.embed_audio(torch.from_numpy(wav)[None], sr)[0]
            mcc = float(torch.nn.functional.cosine_similarity(emb, ref_emb[i], dim=0))

            found = track_beats(wav, sr)

            def beat_f(visual: np.ndarray) -> float:
                m = BeatFMeasure()
                m.update_beats(found, visual)
                return float(m.compute()["beat_f"])

            other = beats[(i + 1) % len(videos)]
            rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
            rows.append({"mcc": mcc, "beat_f": beat_f(beats[i]), "beat_f_mismatched": beat_f(other),
                         "dbfs": 20 * np.log10(rms + 1e-12), **descriptors(wav, sr)})
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        base = out.get(args.baseline, {}).get("rows")
        if base and name != args.baseline and len(base) == len(rows):  # same videos and seeds: paired differences
            for key in ("mcc", "beat_f"):
                d = np.array([r[key] - b[key] for r, b in zip(rows, base)])
                mean[f"{key}_vs_baseline"] = float(d.mean())
                mean[f"{key}_vs_baseline_se"] = float(d.std(ddof=1) / np.sqrt(len(d)))
        gap = np.array([r["beat_f"] - r["beat_f_mismatched"] for r in rows])
        mean["beat_gap_se"] = float(gap.std(ddof=1) / np.sqrt(len(gap))) if len(gap) > 1 else 0.0
        mean["mcc_se"] = float(np.std([r["mcc"] for r in rows], ddof=1) / np.sqrt(len(rows))) if len(rows) > 1 else 0.0
        out[name] = {**mean, "videos": len(rows), "seconds": time.time() - t0, "rows": rows}
        Path(args.out).write_text(json.dumps(out, indent=1))
        print(f"{name:<24} MCC {mean['mcc']:.3f} ± {mean['mcc_se']:.3f}  beat F {mean['beat_f']:.3f} (mismatched "
              f"{mean['beat_f_mismatched']:.3f}, gap ± {mean['beat_gap_se']:.3f})"
              f"  pulse {mean['pulse_clarity']:.3f}  flatness {mean['flatness']:.4f}"
              f"  {mean['dbfs']:.1f} dBFS  ({time.time() - t0:.0f} s)", flush=True)
        if "mcc_vs_baseline" in mean:
            print(f"{'':<24} against {args.baseline!r}, video by video: MCC {mean['mcc_vs_baseline']:+.3f} ± "
                  f"{mean['mcc_vs_baseline_se']:.3f}, beat F {mean['beat_f_vs_baseline']:+.3f} ± "
                  f"{mean['beat_f_vs_baseline_se']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
