"""Rhythm: does the generated music follow what moves on screen?

    python -m bench.rhythm                                   # the shipped model against its untrained stages
    python -m bench.rhythm --model runs/embedded/model --against embedded-untrained --json rhythm.json

Periodic-motion videos (written under ``data_cache/bench_rhythm/``, out of git), each with its true beats beside
it in ``<stem>.beats.json`` (not a ``<stem>.json`` sidecar, which ``generate`` would read): ``pulse`` (the picture
flashes on every beat and fades), ``bounce`` (a ball lands on the floor on every beat), ``figure`` (a stick
figure steps on every beat: its feet change and its body bobs), at 80, 100, 120 and 150 BPM, each with its own
phase; and ``still`` controls (nothing moves). For each model every video is scored ``--seeds`` times
(``--seconds`` from its start), and the music's beats are tracked (librosa's beat tracker):

- beat F-measure (mir_eval, ±70 ms) against the video's own beats (*matched*) and against the beats of every
  other periodic video (*mismatched*, the mean over them): music that follows the video scores matched above
  mismatched, music that ignores it scores them alike;
- tempo: the music's tempo (60 / median interval of its tracked beats) within 8 % of the video's (*acc1*), or
  of half, double, a third or three times it (*acc2*, octave errors forgiven);
- on the still controls, the music's tempo and how many beats were found (there are no visual beats).

With ``--candidates N`` each clip is the best of N (``generate --candidates``: the one whose onsets best meet the
visual beats it finds in the picture, the ``beat`` encoder's clock).

``embedded-untrained`` names the embedded preset's random stages with the shipped codec and tokenizers: the
reference every trained release must beat.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from v2meow.metrics.beats import beats_tempo as tempo_of  # the music's tempo from its tracked beats

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "data_cache" / "bench_rhythm"
KINDS = ("pulse", "bounce", "figure")
TEMPI = (80.0, 100.0, 120.0, 150.0)
FPS, SIZE = 24.0, (128, 72)


def beat_times(bpm: float, phase: float, seconds: float) -> np.ndarray:
    period = 60.0 / bpm
    return np.arange(phase, seconds, period)


def _frame(kind: str, t: float, bpm: float, phase: float, size: tuple[int, int]) -> np.ndarray:
    """One RGB frame of ``kind`` at time ``t``: each beat falls at ``phase + k * 60 / bpm``."""
    w, h = size
    period = 60.0 / bpm
    u = ((t - phase) / period) % 1.0  # position in the beat: 0 on the beat
    img = np.full((h, w, 3), 24, np.uint8)
    if kind == "pulse":
        level = int(24 + 220 * math.exp(-u * period / 0.12))  # a flash that fades in ~0.1 s
        img[:] = (level, int(level * 0.8), int(level * 0.5))
    elif kind == "bounce":
        floor = h - 8
        y = int(floor - (h - 24) * math.sin(math.pi * u))  # on the floor at every beat
        img[floor:, :] = 90
        img[max(0, y - 10): y, w // 2 - 5: w // 2 + 5] = (240, 200, 60)
    elif kind == "figure":
        beat = int(math.floor((t - phase) / period))
        cx = w // 2 + (4 if beat % 2 else -4)
        bob = int(6 * math.sin(math.pi * u))
        top = h // 2 - 22 - bob
        img[top: top + 8, cx - 4: cx + 4] = 230  # head
        img[top + 8: top + 26, cx - 1: cx + 2] = 230  # body
        arm = 8 if beat % 2 else -8
        img[top + 12: top + 14, min(cx, cx + arm): max(cx, cx + arm)] = 230
        foot = (beat % 2) * 2 - 1  # which foot is forward changes on every beat
        for side in (-1, 1):
            x = cx + side * (6 if side == foot else 2)
            img[top + 26: top + 38, min(x, cx): max(x, cx) + 1] = 230
    return img


def make_video(path: Path, kind: str, bpm: float, phase: float, seconds: float) -> Path:
    """A periodic-motion video (``kind`` ``still``: nothing moves) with its beats in ``<stem>.beats.json``."""
    from v2meow.io.mux import write_video

    # The true beats lie beside the video as <stem>.beats.json, not as the <stem>.json sidecar that
    # generate --candidates would read its visual beats from: the reranker must find them in the picture.
    sidecar = path.with_name(path.stem + ".beats.json")
    path.with_suffix(".json").unlink(missing_ok=True)  # where an older bench.rhythm kept them
    if path.exists() and sidecar.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * FPS))
    if kind == "still":
        frames = (_frame("bounce", phase, bpm, phase, SIZE) for _ in range(n))
        beats: list[float] = []
    else:
        frames = (_frame(kind, i / FPS, bpm, phase, SIZE) for i in range(n))
        beats = beat_times(bpm, phase, seconds).round(4).tolist()
    tmp = path.with_suffix(".part.mp4")
    write_video(str(tmp), frames, SIZE, FPS, np.zeros((1, int(seconds * 16000)), np.float32), 16000, crf=23)
    os.replace(tmp, path)
    sidecar.write_text(json.dumps({"kind": kind, "bpm": bpm if kind != "still" else None, "beats": beats}))
    return path


def make_videos(seconds: float) -> list[dict]:
    """Every periodic video (3 kinds x 4 tempi, phases spread over the beat) and two still controls."""
    out = []
    rng = np.random.default_rng(0)
    for kind in KINDS:
        for bpm in TEMPI:
            phase = float(rng.uniform(0.1, 60.0 / bpm))
            p = make_video(CACHE / f"{kind}_{int(bpm)}.mp4", kind, bpm, round(phase, 3), seconds)
            beats = json.loads(p.with_name(p.stem + ".beats.json").read_text())["beats"]
            out.append({"video": str(p), "kind": kind, "bpm": bpm, "beats": beats})
    for i, bpm in enumerate((90.0, 130.0)):
        p = make_video(CACHE / f"still_{i}.mp4", "still", bpm, 0.3, seconds)
        out.append({"video": str(p), "kind": "still", "bpm": None, "beats": []})
    return out


def tempo_hits(est: float | None, bpm: float) -> tuple[bool, bool]:
    """(acc1, acc2): within 8 % of ``bpm``; or of 1/3, 1/2, 2 or 3 times it."""
    if est is None:
        return False, False
    close = [abs(est - bpm * f) <= 0.08 * bpm * f for f in (1.0, 0.5, 2.0, 1 / 3, 3.0)]
    return close[0], any(close)


def load(name: str):
    from v2meow.pipeline import V2Meow

    if name == "embedded-untrained":
        return V2Meow.from_preset("embedded")
    from v2meow.soundtrack import model_path

    return V2Meow.from_pretrained(model_path(name))


def score_model(model, videos: list[dict], seconds: float, seeds: int, candidates: int = 1,
                lock_tempo: bool | None = None, sound: bool = False, first_seed: int = 0) -> dict:
    """Beat F (matched and mismatched), tempo accuracy per clip and in all, over ``seeds`` draws per video (draw
    ``s`` from ``first_seed`` on: seed ``s * candidates``); with ``sound``, each periodic clip's
    :func:`v2meow.metrics.music.sound_descriptors` too (``clips[i]["sound"]``)."""
    import mir_eval

    from v2meow.metrics.beats import F_MEASURE_WINDOW, track_beats

    periodic = [v for v in videos if v["kind"] != "still"]
    rows, still = [], []
    t0 = time.time()
    for v in videos:
        for s in range(first_seed, first_seed + seeds):
            track = model.generate(v["video"], seconds=seconds, seed=s * candidates, candidates=candidates,
                                   lock_tempo=lock_tempo)
            beats = track_beats(track.wav, track.sample_rate)
            est = tempo_of(beats)
            if v["kind"] == "still":
                still.append({"tempo": est, "beats": len(beats)})
                continue
            ref = np.asarray(v["beats"])
            ref = ref[ref < seconds]
            matched = mir_eval.beat.f_measure(ref, beats, f_measure_threshold=F_MEASURE_WINDOW)
            others = [mir_eval.beat.f_measure(np.asarray([b for b in o["beats"] if b < seconds]), beats,
                                              f_measure_threshold=F_MEASURE_WINDOW)
                      for o in periodic if o is not v]
            a1, a2 = tempo_hits(est, v["bpm"])
            rows.append({"video": Path(v["video"]).name, "kind": v["kind"], "bpm": v["bpm"], "seed": s, "tempo": est,
                         "f_matched": matched, "f_mismatched": float(np.mean(others)), "acc1": a1, "acc2": a2})
            if sound:
                from v2meow.metrics.music import sound_descriptors

                rows[-1]["sound"] = sound_descriptors(track.wav, track.sample_rate)
    seconds_taken = time.time() - t0
    fm = np.array([r["f_matched"] for r in rows])
    fx = np.array([r["f_mismatched"] for r in rows])
    gap = fm - fx
    return {
        "f_matched": float(fm.mean()), "f_mismatched": float(fx.mean()),
        "gap": float(gap.mean()), "gap_se": float(gap.std(ddof=1) / math.sqrt(len(gap))) if len(gap) > 1 else 0.0,
        "gap_positive": float((gap > 0).mean()),
        "acc1": float(np.mean([r["acc1"] for r in rows])), "acc2": float(np.mean([r["acc2"] for r in rows])),
        "by_kind": {k: {"f_matched": float(np.mean([r["f_matched"] for r in rows if r["kind"] == k])),
                        "f_mismatched": float(np.mean([r["f_mismatched"] for r in rows if r["kind"] == k])),
                        "acc2": float(np.mean([r["acc2"] for r in rows if r["kind"] == k]))} for k in KINDS},
        "still_tempo": [s["tempo"] for s in still], "still_beats": [s["beats"] for s in still],
        "generation_s": seconds_taken, "clips": rows,
    }


def table(results: dict[str, dict]) -> str:
    lines = ["| model | beat F matched | beat F mismatched | gap (± s.e.) | clips with gap > 0 | tempo acc1 | "
             "tempo acc2 | still: beats found |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['f_matched']:.3f} | {r['f_mismatched']:.3f} | {r['gap']:+.3f} ± {r['gap_se']:.3f} "
                     f"| {100 * r['gap_positive']:.0f} % | {100 * r['acc1']:.0f} % | {100 * r['acc2']:.0f} % | "
                     f"{', '.join(str(b) for b in r['still_beats'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded", help="model directory or preset (default: the shipped model)")
    p.add_argument("--against", default="embedded-untrained", help="a second model to score beside it ('' for none)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--candidates", type=int, default=1,
                   help="generate N per clip and keep the one whose onsets best meet the visual beats the picture "
                        "shows (generate --candidates; the true beats stay hidden from it)")
    p.add_argument("--lock-tempo", action=argparse.BooleanOptionalAction, default=None,
                   help="lock the music onto a picture's steady pulse, or not (default: each model's own setting)")
    p.add_argument("--json", default=None, help="write every figure (and each clip's) here")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    videos = make_videos(args.seconds + 2.0)
    names = [args.model] + ([args.against] if args.against else [])
    results = {}
    for name in names:
        try:
            model = load(name)
        except Exception as e:  # e.g. no shipped model yet: say so and score the rest
            print(f"{name}: not scored ({e})", file=sys.stderr)
            continue
        label = name if args.candidates == 1 else f"{name}, best of {args.candidates}"
        results[label] = score_model(model, videos, args.seconds, args.seeds, args.candidates, args.lock_tempo)
    print(f"{sum(v['kind'] != 'still' for v in videos)} periodic-motion videos ({', '.join(KINDS)} at "
          f"{', '.join(str(int(t)) for t in TEMPI)} BPM) and 2 still ones; {args.seconds:g} s each, "
          f"{args.seeds} seed(s); beats by librosa, F-measure ±70 ms (mir_eval)")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
