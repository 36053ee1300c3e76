"""Locking the music onto a picture's steady pulse, measured: the shipped model with and without it.

    python scripts/lock_tempo.py --seeds 6 --json runs/lock/ab.json          # bench.rhythm's videos, best of 4
    python scripts/lock_tempo.py --firing data_cache/videos/scores/*.mp4      # which videos it fires on
    python scripts/lock_tempo.py --videos V1.mp4 V2.mp4 ... --agreement 0.75 --seeds 4   # synth-data videos
    python scripts/lock_tempo.py --mixed --seeds 3 --stretch-seconds 6   # 30 s videos whose motion changes
    python scripts/lock_tempo.py --mixed test --seeds 4 --stretch-seconds 6   # the set that decides stretches
    python scripts/lock_tempo.py --seeds 6 --clock-only --sound   # a lock that sets the clock alone; sound descriptors

The A/B scores bench.rhythm's periodic-motion and still videos with ``lock_tempo`` off and on, the same seeds, and
reports each side's table, the paired difference of the beat F gap (own video's beats minus the others') clip by
clip, and beat F and tempo accuracy per kind of motion. ``--firing`` lists, for each video, the steady pulse
(:func:`v2meow.features.tempo.steady_pulse`) found in its first ``--seconds`` and, where a sidecar holds the
music's beats (synth-data videos), their tempo. ``--videos`` runs the A/B on synth-data videos instead, scored
against the music's beats in each one's sidecar (and, as chance, the other videos'), with the steady-pulse test's
agreement set to ``--agreement``. ``--mixed`` writes 30 s videos that change what moves and at which tempo (a still
stretch, bench.rhythm's kinds at two tempi; ``data_cache/bench_rhythm/mixed_*.mp4``) and scores each moving
stretch's music on its own: beats tracked in that stretch, beat F against its true beats and, as chance, against a
pulse at another stretch's tempo, and tempo accuracy.
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


def shipped_model(stretch_seconds: float = 0.0, clock_only: bool = False, mix: float = 1.0):
    """The shipped model, with ``generation.lock_stretch_seconds`` set for the lock-on side (--stretch-seconds);
    with ``clock_only`` (--clock-only) its locks replace only the beat stream's clock (generation imposes pulses
    through :func:`v2meow.features.tempo.impose_pulses` with ``clock_only``); ``mix`` below 1 (--mix) blends the
    pulse's streams with the picture's own at that weight."""
    import functools

    import v2meow.pipeline
    from v2meow.features.tempo import impose_pulses
    from v2meow.pipeline import V2Meow

    if clock_only or mix != 1.0:
        v2meow.pipeline.impose_pulses = functools.partial(impose_pulses, clock_only=clock_only, mix=mix)
    model = V2Meow.from_pretrained("embedded")
    model.cfg.generation.lock_stretch_seconds = stretch_seconds
    return model


SOUND = ("lufs", "boom_db", "tonal_clarity", "pulse_clarity", "flatness")


def sound_table(res: dict) -> str:
    """Each side's mean sound descriptors per kind of motion (bench.rhythm's clips scored with ``sound``)."""
    lines = ["| kind | lock | LUFS | 31-62 minus 250-500 Hz (dB) | tonal clarity | pulse clarity | flatness |",
             "|---|---|---|---|---|---|---|"]
    for kind in ("bounce", "figure", "pulse"):
        for side, r in res.items():
            clips = [c["sound"] for c in r["clips"] if c["kind"] == kind]
            m = {k: float(np.mean([c[k] for c in clips])) for k in SOUND}
            lines.append(f"| {kind} | {side} | {m['lufs']:.1f} | {m['boom_db']:+.1f} | {m['tonal_clarity']:.3f} | "
                         f"{m['pulse_clarity']:.3f} | {m['flatness']:.3f} |")
    return "\n".join(lines)


def music_beats(video: str, seconds: float) -> np.ndarray:
    """The beats in a video's sidecar (a synth-data video's music) before ``seconds``; none without one."""
    from v2meow.metrics.alignment import _sidecar_beats

    beats = _sidecar_beats(video)
    return np.zeros(0) if beats is None else beats[beats < seconds]


def paired(off: dict, on: dict) -> str:
    a, b = off["clips"], on["clips"]
    d = np.array([(y["f_matched"] - y["f_mismatched"]) - (x["f_matched"] - x["f_mismatched"]) for x, y in zip(a, b)])
    lines = [f"paired beat F gap, on - off: {d.mean():+.3f} ± {d.std(ddof=1) / math.sqrt(len(d)):.3f} "
             f"({len(d)} clips: {(d > 0).sum()} better, {(d < 0).sum()} worse)", "",
             "| kind | beat F off | beat F on | tempo acc1 off | tempo acc1 on |", "|---|---|---|---|---|"]
    for kind in ("pulse", "bounce", "figure"):
        i = [j for j, c in enumerate(a) if c["kind"] == kind]
        f_off, f_on = (np.mean([side[j]["f_matched"] for j in i]) for side in (a, b))
        acc_off, acc_on = (100 * np.mean([side[j]["acc1"] for j in i]) for side in (a, b))
        lines.append(f"| {kind} | {f_off:.3f} | {f_on:.3f} | {acc_off:.0f} % | {acc_on:.0f} % |")
    return "\n".join(lines)


def firing(videos: list[str], seconds: float) -> None:
    from v2meow.features.registry import extract_features
    from v2meow.features.tempo import steady_pulse
    from v2meow.io.video import probe
    from v2meow.metrics.beats import beats_tempo

    model = shipped_model()
    rate = next(e.rate for e in model.encoders if e.name == "beat")
    fired = 0
    for v in videos:
        length = min(seconds, probe(v).duration)
        found = steady_pulse(extract_features(v, model.encoders, 0.0, length)["beat"], rate, length)
        beats = music_beats(v, length)
        bpm = beats_tempo(beats)
        music = f"; the music's beats: {bpm:.0f} BPM" if bpm is not None else ""
        fired += found is not None
        print(f"{Path(v).name}: {f'steady pulse at {found[0]:.0f} BPM' if found else 'no steady pulse'}{music}")
    print(f"a steady pulse in {fired} of {len(videos)} videos")


def lock_toggle(model, on: bool) -> dict:
    """What ``generate`` takes for the lock's off and on sides: the A/Bs' default ``toggle``."""
    return {"lock_tempo": on}


def sidecar_ab(model, videos: list[str], seeds: int, candidates: int, seconds: float,
               toggle=lock_toggle) -> list[dict]:
    """Each video's soundtracks with ``toggle(model, on)`` off and on (it sets the model and returns ``generate``'s
    keywords), beat F against the video's music's beats, and the gap over other videos' music's."""
    import mir_eval

    from v2meow.metrics.beats import F_MEASURE_WINDOW, track_beats

    rows = []
    for v in videos:
        ref, others = music_beats(v, seconds), [music_beats(o, seconds) for o in videos if o != v]
        for s in range(seeds):
            row = {"video": Path(v).name, "seed": s * candidates}
            for on in (False, True):
                track = model.generate(v, seconds=seconds, seed=s * candidates, candidates=candidates,
                                       **toggle(model, on))
                beats = track_beats(track.wav, track.sample_rate)
                f = [mir_eval.beat.f_measure(r, beats, f_measure_threshold=F_MEASURE_WINDOW) for r in [ref, *others]]
                row["on" if on else "off"] = {"f": f[0], "gap": f[0] - float(np.mean(f[1:])), "tempo": track.tempo,
                                              "fits": [[x.start, x.end, x.tempo, x.rate] for x in track.fits]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    d = np.array([r["on"]["gap"] - r["off"]["gap"] for r in rows])
    print(f"paired beat F gap, on - off: {d.mean():+.3f} ± {d.std(ddof=1) / math.sqrt(len(d)):.3f} ({len(d)} pairs, "
          f"{int((d != 0).sum())} changed)")
    return rows


MIXED = (  # (kind, bpm, seconds) per stretch; "still": nothing moves
    (("still", 0, 8.0), ("bounce", 100.0, 11.0), ("figure", 140.0, 11.0)),
    (("figure", 90.0, 11.0), ("still", 0, 8.0), ("pulse", 120.0, 11.0)),
    (("bounce", 130.0, 11.0), ("bounce", 85.0, 11.0), ("still", 0, 8.0)),
    (("pulse", 110.0, 10.0), ("figure", 75.0, 10.0), ("bounce", 150.0, 10.0)),
)
# a second set, written after the first had been used to develop the stretch lock: the test that decides it
MIXED_TEST = (
    (("figure", 100.0, 12.0), ("bounce", 120.0, 10.0), ("still", 0, 8.0)),
    (("still", 0, 6.0), ("pulse", 95.0, 12.0), ("bounce", 140.0, 12.0)),
    (("bounce", 70.0, 10.0), ("figure", 110.0, 10.0), ("pulse", 135.0, 10.0)),
    (("figure", 125.0, 15.0), ("still", 0, 5.0), ("figure", 85.0, 10.0)),
)


def make_mixed(index: int) -> tuple[str, list[dict]]:
    """The ``index``-th mixed video (written once; 0-3 the first set, 4-7 the test set) and its stretches with
    their true beats."""
    from bench.rhythm import CACHE, FPS, SIZE, _frame
    from v2meow.io.mux import write_video

    stretches, t0 = [], 0.0
    for kind, bpm, seconds in (MIXED + MIXED_TEST)[index]:
        phase = 0.13 * (len(stretches) + 1)
        beats = np.arange(t0 + phase, t0 + seconds, 60.0 / bpm) if bpm else np.zeros(0)
        stretches.append({"kind": kind, "bpm": bpm, "start": t0, "end": t0 + seconds, "phase": phase, "beats": beats})
        t0 += seconds
    path = CACHE / f"mixed_{index}.mp4"
    if not path.exists():
        def frames():
            for i in range(int(round(t0 * FPS))):
                t = i / FPS
                st = next(s for s in stretches if s["start"] <= t < s["end"]) if t < t0 else stretches[-1]
                if st["kind"] == "still":
                    yield _frame("bounce", st["phase"], 100.0, st["phase"], SIZE)
                else:
                    yield _frame(st["kind"], t - st["start"], st["bpm"], st["phase"], SIZE)

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part.mp4")
        write_video(str(tmp), frames(), SIZE, FPS, np.zeros((1, int(t0 * 16000)), np.float32), 16000, crf=23)
        tmp.replace(path)
    return str(path), stretches


def mixed_ab(model, seeds: int, candidates: int, indices: range, toggle=lock_toggle) -> list[dict]:
    """The mixed videos' soundtracks with ``toggle(model, on)`` off and on (as :func:`sidecar_ab`), each moving
    stretch's music tracked on its own and scored against that stretch's beats and a pulse at another tempo."""
    import mir_eval

    from bench.rhythm import tempo_hits, tempo_of
    from v2meow.metrics.beats import F_MEASURE_WINDOW, track_beats
    from v2meow.metrics.music import sound_descriptors

    rows = []
    for index in indices:
        video, stretches = make_mixed(index)
        moving = [s for s in stretches if s["bpm"]]
        for seed in range(seeds):
            for on in (False, True):
                track = model.generate(video, seed=seed * candidates, candidates=candidates, **toggle(model, on))
                sr = track.sample_rate
                for st in moving:
                    a, b = round(st["start"] * sr), round(st["end"] * sr)
                    beats = track_beats(track.wav[a:b], sr) + st["start"]
                    other = next(o for o in moving if o is not st) if len(moving) > 1 else None
                    chance_bpm = other["bpm"] if other else st["bpm"] * 1.3
                    chance = np.arange(st["start"] + 0.21, st["end"], 60.0 / chance_bpm)
                    f = mir_eval.beat.f_measure(st["beats"], beats, f_measure_threshold=F_MEASURE_WINDOW)
                    fx = mir_eval.beat.f_measure(chance, beats, f_measure_threshold=F_MEASURE_WINDOW)
                    est = tempo_of(beats)
                    sound = sound_descriptors(track.wav[a:b], sr)
                    rows.append({"video": index, "seed": seed, "on": on, "kind": st["kind"], "bpm": st["bpm"],
                                 "f": f, "gap": f - fx, "tempo": est, "acc1": tempo_hits(est, st["bpm"])[0],
                                 "pulses": [[p.start, p.end, p.bpm] for p in track.pulses],
                                 "fits": [[x.start, x.end, x.tempo, x.rate] for x in track.fits],
                                 "sound": {k: sound[k] for k in SOUND}})
            print(json.dumps(rows[-1]), flush=True)
    off = [r for r in rows if not r["on"]]
    on = [r for r in rows if r["on"]]
    d = np.array([y["gap"] - x["gap"] for x, y in zip(off, on)])
    for name, side in (("off", off), ("on", on)):
        f, gap, acc = (np.mean([r[k] for r in side]) for k in ("f", "gap", "acc1"))
        print(f"{name}: beat F {f:.3f}, gap {gap:+.3f}, tempo acc1 {100 * acc:.0f} % ({len(side)} stretches); " +
              ", ".join(f"{k} {np.mean([r['sound'][k] for r in side]):.3f}" for k in SOUND))
    print(f"paired gap, on - off: {d.mean():+.3f} ± {d.std(ddof=1) / math.sqrt(len(d)):.3f}")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write both sides' figures (and each clip's) here")
    p.add_argument("--firing", nargs="+", default=None, metavar="VIDEO", help="only list where a steady pulse is")
    p.add_argument("--videos", nargs="+", default=None, metavar="VIDEO",
                   help="synth-data videos: the A/B against their music's beats instead of bench.rhythm's videos")
    p.add_argument("--agreement", type=float, default=None, help="the steady-pulse test's STEADY_AGREEMENT")
    p.add_argument("--mixed", nargs="?", const="first", choices=("first", "test"), default=None,
                   help="30 s videos whose motion changes, each stretch scored: the first set (0-3) or the test set")
    p.add_argument("--clock-only", action="store_true",
                   help="the lock-on side sets only the beat stream's clock (the picture's motion and novelty kept)")
    p.add_argument("--mix", type=float, default=1.0,
                   help="the lock-on side writes this weight of the pulse's streams and the rest of the picture's own")
    p.add_argument("--sound", action="store_true", help="also each side's sound descriptors per kind of motion")
    p.add_argument("--stretch-seconds", type=float, default=0.0,
                   help="generation.lock_stretch_seconds for the lock-on side (0, as shipped: the whole clip only)")
    args = p.parse_args(argv)
    if args.firing:
        firing(args.firing, args.seconds)
        return 0
    import torch

    import v2meow.features.tempo as tempo

    if args.agreement is not None:
        tempo.STEADY_AGREEMENT = args.agreement
    torch.set_num_threads(args.threads)
    model = shipped_model(args.stretch_seconds, args.clock_only, args.mix)
    if args.videos or args.mixed:
        sets = {"first": range(len(MIXED)), "test": range(len(MIXED), len(MIXED) + len(MIXED_TEST))}
        rows = mixed_ab(model, args.seeds, args.candidates, sets[args.mixed]) if args.mixed else \
            sidecar_ab(model, args.videos, args.seeds, args.candidates, args.seconds)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return 0

    from bench.rhythm import make_videos, score_model

    videos = make_videos(args.seconds + 2.0)
    res = {f"lock {side}": score_model(model, videos, args.seconds, args.seeds, args.candidates, lock_tempo=lock,
                                       sound=args.sound)
           for side, lock in (("off", False), ("on", True))}
    report(res, args.sound, args.json)
    return 0


def report(res: dict, sound: bool, json_path: str | None) -> None:
    """The two sides' bench.rhythm tables (``res``: off side first), their paired difference, with ``sound`` their
    sound descriptors; and all of it written to ``json_path`` when given."""
    from bench.rhythm import table

    off, on = res.values()
    print(table(res))
    print()
    print(paired(off, on))
    if sound:
        print()
        print(sound_table(res))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
