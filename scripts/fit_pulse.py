"""Stretching each candidate onto the picture's steady pulse (``generation.fit_pulse``), measured: the shipped model
with and without it, on bench.rhythm's periodic-motion and still videos, best of 4, the same seeds.

    python scripts/fit_pulse.py --seeds 6 --fit 0.15 --sound --json runs/fit/ab.json
    python scripts/fit_pulse.py --figure docs/fit-pulse-spectrograms.png bounce_100:0 figure_120:4

Prints each side's bench.rhythm table, the paired difference of the beat F gap (own video's beats minus the
others') clip by clip, beat F and tempo accuracy per kind of motion, and with ``--sound`` each side's sound
descriptors per kind (:func:`v2meow.metrics.music.sound_descriptors`). bench.rhythm's videos run two seconds past
the ten scored, and the stages' margin beyond the clip reads the picture's last frame held (as at the end of any
video): the stretch never sees motion the clip does not have.

    python scripts/fit_pulse.py --mixed [test] --seeds 3 --stretch-seconds 6 --json runs/range/mixed.json
    python scripts/fit_pulse.py --videos V.mp4 ... --seeds 4 --stretch-seconds 6
    python scripts/fit_pulse.py --mixed test --figure docs/fit-stretches-spectrograms.png mixed_5:0

Steady stretches (``generation.fit_stretch_seconds``): the shipped fit (whole clips only) against the same with each
steady stretch of a picture whose pulse changes fitted, on scripts/lock_tempo.py's 30 s mixed videos (each moving
stretch's music scored on its own) or on synth-data videos (scored against their music's beats).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def figure(model, videos: list[dict], clips: list[str], seconds: float | None, candidates: int, toggle,
           path: Path) -> None:
    """Spectrograms of each clip's kept soundtrack with ``toggle(model, on)`` off and on (the fit, or its
    stretches), its true beats marked."""
    import numpy as np
    from eval_embedded import spectrogram_png

    from v2meow.metrics.music import sound_descriptors

    rows, marks = [], []
    for clip in clips:
        stem, seed = clip.split(":")
        v = next(v for v in videos if Path(v["video"]).stem == stem)
        for side, on in (("off", False), ("on", True)):
            toggle(model, on)
            track = model.generate(v["video"], seconds=seconds, seed=int(seed), candidates=candidates)
            d = sound_descriptors(track.wav, track.sample_rate)
            how = "".join(f", {f.tempo:.0f} -> {f.tempo * f.rate:.0f} BPM" + (
                "" if f.start == 0 and f.end >= track.seconds else f" ({f.start:.0f}-{f.end:.0f} s)")
                for f in track.fits)
            rows.append((f"{stem} seed {seed}, fit {side}{how}: tonal {d['tonal_clarity']:.2f}, pulse "
                         f"{d['pulse_clarity']:.2f}, flatness {d['flatness']:.3f}, {d['lufs']:.1f} LUFS", track.wav))
            marks.append(np.asarray(v["beats"]))
            print(rows[-1][0], flush=True)
    spectrogram_png(rows, model.sample_rate, path, lines=marks)


def real_music(count: int, seconds: float, rates: list[float]) -> None:
    """The stretch's own cost, on held-out real music (the 240 gate videos' soundtracks): each clip's sound
    descriptors as it is and stretched at each rate, and the multi-scale STFT distance to the original of a round trip
    (stretched at a rate, then back), beside the same clips with random phase (the codec's reference)."""
    import numpy as np
    import torch

    from bench.codec import random_phase
    from v2meow.io.audio import load_audio
    from v2meow.io.stretch import time_stretch
    from v2meow.metrics.music import sound_descriptors
    from v2meow.metrics.sound import msstft_l1

    sr = 16000
    videos = sorted((ROOT / "runs/gate240/shipped/heldout_videos").glob("*.mp4"))[:count]
    keys = ("tonal_clarity", "pulse_clarity", "flatness", "lufs")
    rows: dict[str, list] = {"as it is": []}
    trips: dict[str, list] = {}
    for v in videos:
        x = load_audio(v, sr, duration=seconds * 1.2)
        n = int(seconds * sr)
        if x.size < n * 1.15:
            continue
        rows["as it is"].append(sound_descriptors(x[:n], sr))
        ref = torch.from_numpy(x[:n])[None]
        trips.setdefault("random phase", []).append(float(msstft_l1(random_phase(ref), ref)))
        for r in rates:
            rows.setdefault(f"stretched x{r:g}", []).append(sound_descriptors(time_stretch(x, r)[:n], sr))
            back = time_stretch(time_stretch(x[:n], r), 1.0 / r)[:n]
            back = np.pad(back, (0, n - back.size))
            trips.setdefault(f"x{r:g} and back", []).append(float(msstft_l1(torch.from_numpy(back)[None], ref)))
            if r in (rates[0], rates[-1]):  # librosa's phase vocoder (no phase locking, no fresh attacks)
                import librosa

                lib = librosa.effects.time_stretch(librosa.effects.time_stretch(x[:n], rate=r), rate=1.0 / r)[:n]
                lib = torch.from_numpy(np.pad(lib, (0, n - lib.size)).astype(np.float32))[None]
                trips.setdefault(f"x{r:g} and back, librosa", []).append(float(msstft_l1(lib, ref)))
                plain = time_stretch(time_stretch(x[:n], r, reset_db=np.inf), 1.0 / r, reset_db=np.inf)[:n]
                plain = torch.from_numpy(np.pad(plain, (0, n - plain.size)))[None]
                trips.setdefault(f"x{r:g} and back, no fresh phases at attacks", []).append(
                    float(msstft_l1(plain, ref)))
    print(f"{len(rows['as it is'])} clips of {seconds:g} s")
    print("| real music | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, items in rows.items():
        print(f"| {name} | " + " | ".join(f"{np.mean([d[k] for d in items]):.3f}" for k in keys) + " |")
    print()
    print("| | MS-STFT distance to the original |")
    print("|---|---|")
    for name, d in trips.items():
        print(f"| {name} | {np.mean(d):.3f} ± {np.std(d, ddof=1) / np.sqrt(len(d)):.3f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="draws from this one on (seed = draw x candidates)")
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fit", type=float, default=0.15, help="generation.fit_pulse on the fitted side")
    p.add_argument("--base-fit", type=float, default=0.0, help="generation.fit_pulse on the other side")
    p.add_argument("--sound", action="store_true", help="also each side's sound descriptors per kind of motion")
    p.add_argument("--json", default=None, help="write both sides' figures (and each clip's) here")
    p.add_argument("--figure", default=None, metavar="PNG",
                   help="only draw the kept soundtrack off and on for each CLIP (bench.rhythm stem:seed), the true "
                        "beats marked")
    p.add_argument("--mixed", nargs="?", const="first", choices=("first", "test"), default=None,
                   help="30 s videos whose motion changes (scripts/lock_tempo.py's), each stretch scored: the shipped "
                        "fit against the same with steady stretches fitted (--stretch-seconds)")
    p.add_argument("--videos", nargs="+", default=None, metavar="VIDEO",
                   help="synth-data videos: that A/B against their music's beats")
    p.add_argument("--stretch-seconds", type=float, default=6.0,
                   help="generation.fit_stretch_seconds on the stretches' side of --mixed / --videos")
    p.add_argument("clips", nargs="*", default=[], metavar="CLIP")
    p.add_argument("--real", type=int, default=0, metavar="N",
                   help="only measure the stretch itself on N held-out real soundtracks (descriptors, round trip)")
    p.add_argument("--rates", type=float, nargs="+", default=[0.87, 0.93, 1.07, 1.13], help="with --real")
    args = p.parse_args(argv)
    if args.real:
        real_music(args.real, args.seconds, args.rates)
        return 0
    import numpy as np
    import torch
    from lock_tempo import MIXED, MIXED_TEST, make_mixed, mixed_ab, report, shipped_model, sidecar_ab

    from bench.rhythm import make_videos, score_model

    torch.set_num_threads(args.threads)
    model = shipped_model()

    def stretches(m, on: bool) -> dict:
        m.cfg.generation.fit_stretch_seconds = args.stretch_seconds if on else 0.0
        return {}

    sets = {"first": range(len(MIXED)), "test": range(len(MIXED), len(MIXED) + len(MIXED_TEST))}
    if args.figure and args.mixed:  # CLIP: mixed_INDEX:SEED, the whole 30 s, stretches off and on
        mixed = [make_mixed(i) for i in sets[args.mixed]]
        videos = [{"video": v, "beats": np.concatenate([s["beats"] for s in st])} for v, st in mixed]
        figure(model, videos, args.clips, None, args.candidates, stretches, Path(args.figure))
        return 0
    if args.mixed or args.videos:  # the shipped fit (whole clips) against the same with steady stretches fitted
        rows = mixed_ab(model, args.seeds, args.candidates, sets[args.mixed], stretches) if args.mixed else \
            sidecar_ab(model, args.videos, args.seeds, args.candidates, args.seconds, stretches)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return 0
    videos = make_videos(args.seconds + 2.0)
    if args.figure:
        def fit_toggle(m, on: bool) -> dict:
            m.cfg.generation.fit_pulse = args.fit if on else 0.0
            return {}

        figure(model, videos, args.clips, args.seconds, args.candidates, fit_toggle, Path(args.figure))
        return 0
    res = {}
    for side, fit in (("off", args.base_fit), ("on", args.fit)):
        model.cfg.generation.fit_pulse = fit
        res[f"fit {side}"] = score_model(model, videos, args.seconds, args.seeds, args.candidates, sound=args.sound,
                                            first_seed=args.first_seed)
    report(res, args.sound, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
