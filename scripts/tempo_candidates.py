"""Does one of the best-of-N candidates already have the picture's tempo? bench.rhythm's periodic-motion videos.

For every clip (video x seed) every candidate is kept and tracked: its tempo (60 / median beat interval) and its beat
F against the video's true beats. Printed: how often the kept candidate (the default pick, by beat alignment) is at the
video's tempo (acc1, within 8 %), how often any candidate is, and what a pick that prefers the candidates at the
tempo of the picture's own beat clock (what ``generate`` knows; not the true tempo) would keep: its acc1 and beat F,
paired with the default pick's.

    python scripts/tempo_candidates.py [--seeds 6] [--threads 2] [--json runs/lock/tempo_candidates.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def clip_rows(model, videos: list[dict], seconds: float, seeds: int, candidates: int) -> list[dict]:
    """Each clip's candidates: tempo, acc1, beat F against the true beats, and their alignment scores."""
    import mir_eval

    import v2meow.metrics.alignment as alignment
    from bench.rhythm import tempo_hits, tempo_of
    from v2meow.metrics.beats import BEAT_SAMPLE_RATE, F_MEASURE_WINDOW, HOP_LENGTH, to_beat_audio, track_beats
    from v2meow.metrics.onsets import envelope_tempo, onset_envelope

    score, caught = alignment.score_candidates, {}

    def keep(wavs, sr, seeds_, visual, *args, **kwargs):
        caught["wavs"], caught["visual"] = wavs, visual
        return score(wavs, sr, seeds_, visual, *args, **kwargs)

    alignment.score_candidates = keep
    rows = []
    try:
        for v in videos:
            ref = np.asarray([b for b in v["beats"] if b < seconds])
            for s in range(seeds):
                track = model.generate(v["video"], seconds=seconds, seed=s * candidates, candidates=candidates)
                cands = []
                for wav, sc in zip(caught["wavs"], track.scores):
                    beats = track_beats(wav, track.sample_rate)
                    est = tempo_of(beats)
                    f = mir_eval.beat.f_measure(ref, beats, f_measure_threshold=F_MEASURE_WINDOW)
                    env = onset_envelope(to_beat_audio(wav, track.sample_rate), BEAT_SAMPLE_RATE, HOP_LENGTH,
                                         median=True)
                    cands.append({"tempo": est, "acc1": tempo_hits(est, v["bpm"])[0], "score": sc.total, "f": float(f),
                                  "numpy_tempo": envelope_tempo(env, BEAT_SAMPLE_RATE, HOP_LENGTH)})
                rows.append({"video": Path(v["video"]).name, "kind": v["kind"], "seed": s, "chosen": track.chosen,
                             "clock_tempo": tempo_of(np.asarray(caught["visual"].times)), "candidates": cands})
                print(f"{v['kind']} {v['bpm']:g} seed {s}: clock {rows[-1]['clock_tempo']}, " + ", ".join(
                    f"{c['tempo'] or 0:.0f}/{c['f']:.2f}" for c in cands), file=sys.stderr, flush=True)
    finally:
        alignment.score_candidates = score
    return rows


def tempo_pick(row: dict, tolerance: float = 0.08, key: str = "tempo") -> int:
    """The best-scored candidate whose tempo (``key``: tracked, or ``numpy_tempo``: the onset envelope's, as
    ``generate`` could afford) lies within ``tolerance`` of the clock's; the default pick if none."""
    clock = row["clock_tempo"]
    near = [i for i, c in enumerate(row["candidates"])
            if clock and c.get(key) and abs(c[key] - clock) <= tolerance * clock]
    if not near:
        return row["chosen"]
    return max(near, key=lambda i: row["candidates"][i]["score"])


def numpy_rows(rows: list[dict], f0: np.ndarray, paired) -> list[str]:
    """The pick's row with the onset envelope's tempo in place of the tracked one, and how often the two agree."""
    if not all("numpy_tempo" in c for r in rows for c in r["candidates"]):
        return []
    picked = [r["candidates"][tempo_pick(r, key="numpy_tempo")] for r in rows]
    f1 = np.array([c["f"] for c in picked])
    pairs = [(c["tempo"], c["numpy_tempo"]) for r in rows for c in r["candidates"] if c["tempo"] and c["numpy_tempo"]]
    agree = np.mean([abs(a - b) <= 0.08 * a for a, b in pairs]) if pairs else float("nan")
    return [f"| at the clock's tempo by the onset envelope's tempo | {np.mean([c['acc1'] for c in picked]):.0%} | "
            f"{f1.mean():.3f} (paired {paired(f0, f1)}) |",
            f"the envelope's tempo within 8 % of the tracked one: {agree:.0%} of {len(pairs)} candidates"]


def summary(rows: list[dict]) -> str:
    def paired(a: np.ndarray, b: np.ndarray) -> str:
        d = b - a
        return f"{d.mean():+.3f} ± {d.std(ddof=1) / math.sqrt(len(d)):.3f}"

    chosen = [r["candidates"][r["chosen"]] for r in rows]
    picked = [r["candidates"][tempo_pick(r)] for r in rows]
    f0 = np.array([c["f"] for c in chosen])
    f1 = np.array([c["f"] for c in picked])
    any_acc = np.mean([any(c["acc1"] for c in r["candidates"]) for r in rows])
    lines = [f"{len(rows)} clips, {len(rows[0]['candidates'])} candidates each",
             "| pick | tempo acc1 | beat F (true beats) |", "|---|---|---|",
             f"| by beat alignment (the default) | {np.mean([c['acc1'] for c in chosen]):.0%} | {f0.mean():.3f} |",
             f"| at the clock's tempo, else the default | {np.mean([c['acc1'] for c in picked]):.0%} | {f1.mean():.3f} "
             f"(paired {paired(f0, f1)}) |",
             f"| any candidate at the tempo | {any_acc:.0%} | |",
             *numpy_rows(rows, f0, paired),
             f"clips whose pick changes: {sum(tempo_pick(r) != r['chosen'] for r in rows)}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default="embedded")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import torch

    from bench.rhythm import load, make_videos

    torch.set_num_threads(args.threads)
    videos = [v for v in make_videos(args.seconds + 2.0) if v["kind"] != "still"]
    rows = clip_rows(load(args.model), videos, args.seconds, args.seeds, args.candidates)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(summary(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
