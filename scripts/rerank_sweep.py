"""Best of N with a noise penalty, swept: every candidate soundtrack of N held-out videos is generated once (as
`evaluate` generates them: best of the model's N, seed = SEED + 1000 i), then each penalty picks its own soundtrack
per video (total = beat score + text score − penalty × noise score, `v2meow.metrics.alignment.noise_score`) and the
picks are scored as the release gate scores them: FAD with its paired bootstrap, KLD and MCC paired by clip, beat F
against the video's beats and the other videos'; every penalty is paired with the first.

    python scripts/rerank_sweep.py --model M --videos 48 [--skip-videos 0] --out runs/rerank --penalties 0,1,2,4

OUT/picks_P/audio holds penalty P's soundtracks (links), as `evaluate` folders do, so the other scripts read them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def generate_candidates(model_dir: str, videos: list[Path], out: Path, seconds: float = 10.0, seed: int = 0) -> list:
    """Every candidate of every video (wav files under OUT/candidates) and their scores; resumes from scores.json."""
    import v2meow.metrics.alignment as alignment
    from v2meow.io.audio import save_audio
    from v2meow.pipeline import V2Meow

    path = out / "scores.json"
    done = json.loads(path.read_text()) if path.is_file() else []
    model = V2Meow.from_pretrained(model_dir)
    score = alignment.score_candidates
    caught = {}

    def keep(wavs, sr, seeds, visual, tower=None, joint=None, noise_penalty=0.0):
        caught["wavs"] = wavs
        caught["scores"] = score(wavs, sr, seeds, visual, tower, joint, noise_penalty=1.0)  # every noise score
        return caught["scores"]

    (out / "candidates").mkdir(parents=True, exist_ok=True)
    alignment.score_candidates = keep
    try:
        for i, video in enumerate(videos):
            if i < len(done):
                continue
            model.generate(str(video), seconds=seconds, seed=seed + 1000 * i)
            rows = []
            for c, (wav, s) in enumerate(zip(caught["wavs"], caught["scores"])):
                f = out / "candidates" / f"{i:04d}_{c}_{video.stem}.wav"
                save_audio(str(f), wav, model.sample_rate)
                rows.append({"file": f.name, "beat": s.beat, "text": s.text, "noise": s.noise})
            done.append(rows)
            path.write_text(json.dumps(done))
            print(f"{i + 1}/{len(videos)} {video.stem}: " + ", ".join(f"{r['beat']:.2f}/{r['noise']:.3f}"
                                                                    for r in rows), file=sys.stderr, flush=True)
    finally:
        alignment.score_candidates = score
    return done


def picks(scores: list, penalty: float) -> list[int]:
    """Each video's kept candidate at ``penalty`` (the lowest index wins a tie, as `generate` breaks them)."""
    out = []
    for rows in scores:
        totals = [r["beat"] + (r["text"] or 0.0) - penalty * r["noise"] for r in rows]
        out.append(max(range(len(rows)), key=lambda c: (totals[c], -c)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--videos", type=int, default=48)
    p.add_argument("--skip-videos", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--penalties", default="0,1,2,4")
    p.add_argument("--boot", type=int, default=500)
    p.add_argument("--measure", choices=["energy", "frames"], default="energy",
                   help="the noise weighed: noise_score (frames weighted by energy, as generate weighs it) or the "
                        "plain mean spectral flatness of the frames (its picks go to OUT/frames)")
    args = p.parse_args(argv)
    from beat_gap import clip_beats
    from eval_embedded import heldout_videos
    from paired_fad import clip_embeddings, paired_bootstrap
    from paired_joint import clip_joint

    out = Path(args.out)
    cands = out / "candidates"
    folder = heldout_videos(args.videos, out, args.skip_videos)
    videos = sorted(folder.glob("*.mp4"))
    scores = generate_candidates(args.model, videos, out)
    if args.measure == "frames":  # the plain mean over frames (librosa's spectral_flatness, as descriptors reads it)
        import librosa

        from v2meow.io.audio import load_audio

        for rows in scores:
            for r in rows:
                y = load_audio(str(cands / r["file"]), sample_rate=16000)
                r["noise"] = float(np.mean(librosa.feature.spectral_flatness(y=y, n_fft=2048, hop_length=512)))
        out = out / "frames"
    penalties = [float(x) for x in args.penalties.split(",")]
    folders = []
    for pen in penalties:
        f = out / f"picks_{pen:g}" / "audio"
        f.mkdir(parents=True, exist_ok=True)
        for i, (video, c) in enumerate(zip(videos, picks(scores, pen))):
            link = f / f"{i:04d}_{video.stem}.wav"
            link.unlink(missing_ok=True)
            link.symlink_to((cands / scores[i][c]["file"]).resolve())
        folders.append(str(f.parent))
    emb = clip_embeddings(folder, folders)
    fads = {b: paired_bootstrap(emb[b]["real"], [emb[b][f] for f in folders], args.boot) for b in emb}
    joint = clip_joint(folder, folders)
    beats = clip_beats(folder, folders)
    noise = {f: np.array([r[c]["noise"] for r, c in zip(scores, picks(scores, pen))]) for f, pen in
             zip(folders, penalties)}
    print("| penalty | FAD semantic (vs first ± s.e.) | FAD codec | KLD (paired) | MCC (paired) | "
          "beat F own (paired) | gap own − other (paired) | noise score, mean / clips over 0.05 |")
    print("|---|---|---|---|---|---|---|---|")

    def paired(a, b):
        d = b - a
        return f"{b.mean():.3f} ({d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(len(d)):.3f})"

    rows = {}
    for j, (f, pen) in enumerate(zip(folders, penalties)):
        cells = []
        for b in ("semantic", "codec"):
            full, draws = fads[b]
            d = draws[:, j] - draws[:, 0]
            cells.append(f"{full[j]:.3f}" + (f" ({full[j] - full[0]:+.3f} ± {d.std(ddof=1):.3f})" if j else ""))
        k0, m0 = joint[folders[0]]
        k, m = joint[f]
        o0, x0 = beats[folders[0]]
        o, x = beats[f]
        print(f"| {pen:g} | {cells[0]} | {cells[1]} | {paired(k0, k)} | {paired(m0, m)} | {paired(o0, o)} | "
              f"{paired(o0 - x0, o - x)} | {noise[f].mean():.4f} / {int((noise[f] > 0.05).sum())} |")
        rows[f"{pen:g}"] = {"fad": float(fads['semantic'][0][j]), "fad_codec": float(fads['codec'][0][j]),
                            "kld": float(k.mean()), "mcc": float(m.mean()), "beat_f": float(o.mean()),
                            "gap": float((o - x).mean()), "noise": float(noise[f].mean())}
    (out / "sweep.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
