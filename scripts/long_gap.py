"""Two or more models' long soundtracks of the same videos, paired: FAD against the videos' own music and beat F
against their visual beats, over the same span of each soundtrack.

Each folder holds `scripts/long_form.py --wavs` soundtracks (VIDEO.wav) of the same held-out works' videos (chosen
as long_form.py chooses them: ``--videos`` after ``--skip``, at least ``--seconds`` long). For the span
``[--start, --seconds)`` of every soundtrack and of the video's own music:
- FAD with the encoders `v2meow evaluate` uses (the pinned semantic encoder and the codec's), each folder against the
  same real music, with a paired bootstrap over the videos (`scripts/paired_fad.py`) for the standard error of each
  folder's difference from the first;
- beat F of the soundtrack's tracked beats against the video's visual beats in the span, video by video, and the
  paired difference from the first folder with its standard error.

    python scripts/long_gap.py runs/contdrums/long_shipped runs/contdrums/long_cont --videos 17 --skip 30 --start 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

SR = 16000  # the FAD encoders' and the beat tracker's reading rate


def beat_f(wav: np.ndarray, beats: np.ndarray) -> float:
    """F-measure of ``wav``'s tracked beats (at :data:`SR`) against ``beats`` (seconds from its start)."""
    from v2meow.metrics.beats import F_MEASURE_WINDOW, beat_f_measure, track_beats

    return float(beat_f_measure(beats, np.asarray(track_beats(wav, SR)), F_MEASURE_WINDOW))


def paired_se(d: np.ndarray) -> float:
    return float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="soundtrack folders (VIDEO.wav), the first the base")
    p.add_argument("--videos", type=int, default=6)
    p.add_argument("--skip", type=int, default=0)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--start", type=float, default=0.0, help="score each soundtrack from here (s)")
    p.add_argument("--video-dir", default=str(ROOT / "data_cache" / "videos"),
                   help="where the held-out works' videos are (`python scripts/train_embedded.py prepare` makes them)")
    p.add_argument("--boot", type=int, default=500, help="bootstrap resamples of the videos for FAD")
    args = p.parse_args(argv)

    from long_form import long_videos
    from paired_fad import paired_bootstrap

    from v2meow.errors import UserError
    from v2meow.io.audio import load_audio
    from v2meow.metrics.evaluate import EvalOptions, _fad_embedder, visual_beats
    from v2meow.metrics.fad import embed_audio

    if not 0 <= args.start < args.seconds:
        print(f"--start must lie in [0, --seconds), got {args.start}.", file=sys.stderr)
        return 2
    videos = long_videos(args.seconds, args.skip + args.videos, Path(args.video_dir))[args.skip:]
    if len(videos) < 2:
        print(f"{args.video_dir} holds {len(videos)} held-out works' videos of at least {args.seconds:g} s after the "
              f"first {args.skip}; a pairing needs two.", file=sys.stderr)
        return 2
    a, b = int(args.start * SR), int(args.seconds * SR)
    try:
        real = [load_audio(str(v), sample_rate=SR, duration=args.seconds)[a:b] for v in videos]
        sets = {f: [load_audio(str(Path(f) / f"{v.stem}.wav"), sample_rate=SR)[a:b] for v in videos]
                for f in args.folders}
    except UserError as e:
        print(f"{e}", file=sys.stderr)
        return 2
    short = [(f, v.stem) for f, ws in sets.items() for v, w in zip(videos, ws) if len(w) < b - a - SR // 10]
    if short:
        print(f"{short[0][0]}/{short[0][1]}.wav is shorter than --seconds: not a soundtrack of the whole span.",
              file=sys.stderr)
        return 2

    names = list(sets)
    print(f"{len(videos)} videos ({videos[0].stem} .. {videos[-1].stem}), {args.start:g}-{args.seconds:g} s of each")
    print("| measure | " + " | ".join(names) + " | paired difference from the first |")
    print("|---|" + "---|" * len(names) + "---|")
    for backend in ("semantic", "codec"):
        emb = _fad_embedder(backend, EvalOptions())
        e_real = [embed_audio(emb, w, SR) for w in real]
        e_sets = [[embed_audio(emb, w, SR) for w in sets[n]] for n in names]
        full, draws = paired_bootstrap(e_real, e_sets, args.boot)
        diffs = [f"{full[i] - full[0]:+.3f} ± {float(np.std(draws[:, i] - draws[:, 0])):.3f}"
                 for i in range(1, len(names))]
        print(f"| FAD, {backend} encoder ↓ | " + " | ".join(f"{x:.3f}" for x in full) + " | " + "; ".join(diffs) + " |")
    beats = []
    for v in videos:
        vb = np.asarray(visual_beats(str(v), args.seconds)[0], dtype=np.float64)
        beats.append(vb[(vb >= args.start) & (vb < args.seconds)] - args.start)
    f = np.array([[beat_f(w, vb) for w, vb in zip(sets[n], beats)] for n in names])
    diffs = [f"{(f[i] - f[0]).mean():+.4f} ± {paired_se(f[i] - f[0]):.4f}" for i in range(1, len(names))]
    print("| beat F against the visual beats ↑ | " + " | ".join(f"{x:.4f}" for x in f.mean(1)) + " | "
          + "; ".join(diffs) + " |")
    own = np.mean([beat_f(w, vb) for w, vb in zip(real, beats)])
    print(f"\nThe videos' own music over the same span: beat F {own:.4f} against the same visual beats.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
