"""Does a named tempo (``generate(tempo=BPM)``, or "... at 120 BPM" in the prompt) set the music's tempo?

For each video (held-out works' videos, and bench.rhythm's still controls) and each named tempo, one soundtrack
(best of ``--candidates``) with the tempo and one without, same seed. Measured on the music: its tempo from the
tracked beats (acc1: within 8 % of the named tempo; acc2: or of half, double, a third or three times it), and the
beat F-measure (±70 ms) of its tracked beats against the named tempo's pulse (the beats the stages were given)
and, as chance, against the pulses of the other named tempi on the same video. Without the tempo, the same
measures against the same pulses say what the video alone gives.

    python scripts/tempo_steer.py --model embedded --n 8 --tempi 70 100 130 160 --candidates 1
    python scripts/tempo_steer.py --n 16 --tempi 70 150 --prompt "music at {bpm:g} BPM"   # named in the prompt
    python scripts/tempo_steer.py --n 8 --candidates 4 --features keep --fit 0.3 --sound   # other ways to name it
    python scripts/tempo_steer.py --n 8 --first 8 --candidates 4 --features model --named-fit 0.3 --sound
    python scripts/tempo_steer.py --candidates 4 --named-fit 0.3 --figure docs/named-tempo-spectrograms.png \
        score0023:100:9 score0047:130:12

``--features`` says what the stages read with a named tempo: the rhythm streams of a picture flashing on it
(``impose``), the picture's own (``keep``: only the pick and the fit move the music), a blend (``--mix``), or
whatever the model's config says (``model``: with ``generation.named_fit`` > 0, the picture's own first and the
pulse's where no candidate is then at the tempo; ``--named-fit`` sets it); ``--fit`` sets ``generation.fit_pulse``;
``--sound`` adds the music's descriptors per way. ``--first`` skips that many held-out videos (and offsets every
seed by it), for a set of clips that earlier runs did not see.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from lock_tempo import SOUND  # noqa: E402  (the descriptors every rhythm A/B reports)


def named_way(features: str, mix: float) -> None:
    """Make ``generate``'s named tempo (with ``generation.named_fit`` 0: its pulse imposed at once) keep the
    picture's own rhythm streams (``keep``: the pulse's beats still score and fit the candidates) or blend the
    pulse's in at ``mix``, in place of imposing them."""
    import v2meow.pipeline
    from v2meow.features import tempo

    def named(feats, encoders, pulses):
        if features == "impose":
            return tempo.impose_pulses(feats, encoders, pulses, mix=mix)
        return dict(feats), np.concatenate([p.beats() for p in pulses])

    v2meow.pipeline.impose_pulses = named


def figure(model, videos: Path, clips: list[str], seconds: float, candidates: int, path: Path) -> None:
    """Spectrograms of each clip (``STEM:BPM:SEED``, a held-out video) named that tempo, the pulse imposed at once
    (``named_fit`` 0) and the picture's own rhythm first (the model's ``named_fit``), the named pulse ticked."""
    from eval_embedded import spectrogram_png

    from v2meow.metrics.music import sound_descriptors

    named_fit, rows, marks = model.cfg.generation.named_fit, [], []
    for clip in clips:
        stem, bpm, seed = clip.split(":")
        for way, fit in (("imposed", 0.0), (f"own first (named_fit {named_fit:g})", named_fit)):
            model.cfg.generation.named_fit = fit
            track = model.generate(str(videos / f"{stem}.mp4"), seconds=seconds, seed=int(seed),
                                   candidates=candidates, tempo=float(bpm))
            d = sound_descriptors(track.wav, track.sample_rate)
            how = "".join(f", {f.tempo:.0f} -> {f.tempo * f.rate:.0f} BPM" for f in track.fits)
            rows.append((f"{stem} seed {seed}, {bpm} BPM named, {way}{' (made again)' if track.remade else ''}{how}: "
                         f"tonal {d['tonal_clarity']:.2f}, flatness {d['flatness']:.3f}, {d['lufs']:.1f} LUFS",
                         track.wav))
            marks.append(track.visual.times)
            print(rows[-1][0], flush=True)
    model.cfg.generation.named_fit = named_fit
    spectrogram_png(rows, model.sample_rate, path, lines=marks)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded")
    p.add_argument("--videos", default=str(ROOT / "runs" / "embedded" / "eval6" / "heldout_videos"))
    p.add_argument("--n", type=int, default=8, help="held-out videos (plus bench.rhythm's two still controls)")
    p.add_argument("--tempi", type=float, nargs="+", default=[70.0, 100.0, 130.0, 160.0])
    p.add_argument("--candidates", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--prompt", default=None, metavar="TEMPLATE",
                   help='name the tempo in a prompt instead of tempo=, e.g. "music at {bpm:g} BPM"; the run without '
                        "a tempo then has no prompt either")
    p.add_argument("--out", default=None, help="JSON with every row")
    p.add_argument("--first", type=int, default=0, help="skip this many held-out videos; seeds start here")
    p.add_argument("--features", choices=("impose", "keep", "model"), default="impose",
                   help="what the stages read with a named tempo (see above)")
    p.add_argument("--named-fit", type=float, default=None,
                   help="with --features model: generation.named_fit (default: the model's)")
    p.add_argument("--mix", type=float, default=1.0, help="with --features impose: this weight of the pulse's streams")
    p.add_argument("--fit", type=float, default=None, help="generation.fit_pulse (default: the model's)")
    p.add_argument("--sound", action="store_true", help="also the named-tempo music's sound descriptors")
    p.add_argument("--figure", nargs="+", default=None, metavar=("PNG", "STEM:BPM:SEED"),
                   help="only write spectrograms of these held-out clips, imposed and the model's named_fit")
    args = p.parse_args(argv)

    from bench.rhythm import make_videos, tempo_hits, tempo_of
    from v2meow.metrics.beats import beat_f_measure, track_beats
    from v2meow.metrics.music import sound_descriptors
    from v2meow.pipeline import V2Meow
    from v2meow.soundtrack import model_path

    model = V2Meow.from_pretrained(model_path(args.model))
    if args.fit is not None:
        model.cfg.generation.fit_pulse = args.fit
    if args.figure:
        if args.named_fit is not None:
            model.cfg.generation.named_fit = args.named_fit
        figure(model, Path(args.videos), args.figure[1:], args.seconds, args.candidates, Path(args.figure[0]))
        return 0
    if args.features != "model":
        model.cfg.generation.named_fit = 0.0
    elif args.named_fit is not None:
        model.cfg.generation.named_fit = args.named_fit
    if args.features == "keep" or args.mix != 1.0:
        named_way(args.features, args.mix)
    videos = sorted(Path(args.videos).glob("*.mp4"))[args.first : args.first + args.n]
    videos += [Path(v["video"]) for v in make_videos(args.seconds + 2.0) if v["kind"] == "still"]
    rows = []
    for i, video in enumerate(videos, start=args.first):
        pulses = {}
        for bpm in args.tempi:
            named = {"tempo": bpm} if args.prompt is None else {"prompt": args.prompt.format(bpm=bpm)}
            track = model.generate(str(video), seconds=args.seconds, seed=i, candidates=args.candidates, score=True,
                                   **named)
            assert track.visual.source == "tempo"
            pulses[bpm] = track.visual.times
            rows.append({"video": video.name, "bpm": bpm, "tempo": True, "remade": track.remade,
                         "beats": track_beats(track.wav, track.sample_rate).tolist()})
            if args.sound:
                d = sound_descriptors(track.wav, track.sample_rate)
                rows[-1]["sound"] = {k: float(d[k]) for k in SOUND}
        plain = model.generate(str(video), seconds=args.seconds, seed=i, candidates=args.candidates)
        plain_beats = track_beats(plain.wav, plain.sample_rate).tolist()
        for bpm in args.tempi:
            rows.append({"video": video.name, "bpm": bpm, "tempo": False, "beats": plain_beats})
        for r in rows[-2 * len(args.tempi):]:
            beats = np.asarray(r["beats"])
            r["music_bpm"] = tempo_of(beats)
            r["acc1"], r["acc2"] = tempo_hits(r["music_bpm"], r["bpm"])
            r["f_named"] = beat_f_measure(pulses[r["bpm"]], beats)
            r["f_other"] = float(np.mean([beat_f_measure(pulses[b], beats) for b in args.tempi if b != r["bpm"]]))
        print(f"{video.name}: " + ", ".join(f"{r['bpm']:g}{'' if r['tempo'] else ' (none)'} -> "
                                            f"{r['music_bpm'] or float('nan'):.0f}"
                                            for r in rows[-2 * len(args.tempi):]), flush=True)

    def mean_se(x: list[float]) -> str:
        a = np.asarray(x, dtype=np.float64)
        return f"{a.mean():.3f} ± {a.std(ddof=1) / np.sqrt(len(a)):.3f}"

    remade = [r["remade"] for r in rows if r["tempo"]]
    print(f"\n{len(videos)} videos × {len(args.tempi)} named tempi, best of {args.candidates}, seed = video index; "
          f"made again on the named pulse for {sum(remade)} of {len(remade)}")
    print("| | acc1 | acc2 | beat F, named pulse | beat F, other tempi's pulses | gap (± s.e.) |")
    print("|---|---|---|---|---|---|")
    for use in (True, False):
        sel = [r for r in rows if r["tempo"] is use]
        gap = [r["f_named"] - r["f_other"] for r in sel]
        print(f"| {'tempo named' if use else 'no tempo (the video alone)'} | "
              f"{np.mean([r['acc1'] for r in sel]):.0%} | {np.mean([r['acc2'] for r in sel]):.0%} | "
              f"{np.mean([r['f_named'] for r in sel]):.3f} | {np.mean([r['f_other'] for r in sel]):.3f} | "
              f"{mean_se(gap)} |")
    if args.sound:
        named = [r for r in rows if r["tempo"]]
        print("\n| named tempo, the music's | " + " | ".join(SOUND) + " |")
        print("|---|" + "---|" * len(SOUND))
        for grp, sel in (("held-out videos", [r for r in named if not r["video"].startswith("still")]),
                         ("still controls", [r for r in named if r["video"].startswith("still")])):
            if not sel:
                continue
            print(f"| {grp} | " + " | ".join(f"{np.mean([r['sound'][k] for r in sel]):.3f}" for k in SOUND) + " |")
    print("\n| named tempo | music's median tempo, named | acc2, named | music's median tempo, none |")
    print("|---|---|---|---|")
    for bpm in args.tempi:
        named = [r for r in rows if r["tempo"] and r["bpm"] == bpm]
        none = [r for r in rows if not r["tempo"] and r["bpm"] == bpm]
        med = [np.nanmedian([r["music_bpm"] or np.nan for r in s]) for s in (named, none)]
        print(f"| {bpm:g} | {med[0]:.0f} | {np.mean([r['acc2'] for r in named]):.0%} | {med[1]:.0f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
