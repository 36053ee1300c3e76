"""Text control: does the joint music-text model read prompts, and do prompts steer a V2Meow model?

1. Text→audio retrieval on the held-out tracks of a music folder (``sources.json``): every track's fixed caption
   phrasings (:func:`v2meow.text.captions.caption_variants`, from its labels, measured properties and source) are
   matched against every held-out track's whole-track embedding (the mean of its 10 s segment embeddings, as stage 1
   is conditioned). Recall@1/@5 per phrasing and over all, against chance (k/N) and against the same architecture
   untrained (same seed), measured in the same run.
2. MCC (MuLan Cycle Consistency, text task; :class:`v2meow.metrics.mcc.JointCosine`): for a V2Meow model
   (``--v2meow``), music is generated for a video with each prompt and without one (same seed); the score is the
   cosine, in this joint space, between the prompt's text embedding and the generated music's audio embedding (first
   10 s). The figure is for the model named: a model trained without the joint embedding (or untrained) is expected
   to show no difference.

    python -m bench.joint --model runs/joint --music data_cache/music [--v2meow MODEL_DIR --video clip.mp4]

``--model embedded`` uses the weights shipped in ``v2meow/assets/joint``. Without ``--model`` it says so and stops.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from v2meow.metrics.mcc import JointEmbedder

DEFAULT_PROMPTS = (
    "calm acoustic background music",
    "fast energetic electronic music at 150 BPM",
    "orchestral fantasy game soundtrack",
    "dark quiet music in a minor key",
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.joint", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="trained joint model: a run directory, an exported directory, or 'embedded'")
    p.add_argument("--music", default="data_cache/music", help="music folder with sources.json (held-out tracks)")
    p.add_argument("--cache", help="where to cache the held-out analysis (default: a temporary folder)")
    p.add_argument("--captions-of", help="word captions with this joint model's thresholds (a run, a directory or "
                   "'embedded'; default: the model's own), so two models are asked the same queries")
    p.add_argument("--v2meow", help="V2Meow model directory or preset for the MCC part (skipped when left out)")
    p.add_argument("--video", action="append", help="video(s) to score for MCC (default: a synthetic 6 s clip)")
    p.add_argument("--prompt", action="append", help=f"prompt(s) for MCC (default: {len(DEFAULT_PROMPTS)} built in)")
    p.add_argument("--seconds", type=float, default=6.0, help="seconds of music generated per video")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale with a prompt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


# -- retrieval ----------------------------------------------------------------------------------------------
def heldout_retrieval(model, meta: dict, music: str, cache: str | None) -> dict:
    from v2meow.text.captions import FORMS, Thresholds, caption_variants
    from v2meow.text.joint import JointModel
    from v2meow.train.joint import MusicSet, list_tracks, read_track, retrieval

    entries = [e for e in list_tracks(music) if e.get("heldout")]
    if len(entries) < 2:
        raise SystemExit(f"{music} lists {len(entries)} held-out track(s); retrieval needs at least 2.")
    thresholds = Thresholds.from_dict(meta["thresholds"]) if meta.get("thresholds") else Thresholds()
    with tempfile.TemporaryDirectory() as tmp:
        data = MusicSet(music, entries, model, cache or tmp, progress=False)  # measured properties for captions
    torch.manual_seed(0)
    untrained = JointModel(model.cfg.replace(weights=None)).eval()
    untrained.audio.mel_mean.copy_(model.audio.mel_mean)
    untrained.audio.mel_std.copy_(model.audio.mel_std)
    results = {}
    for name, m in (("trained", model), ("untrained", untrained)):
        t = time.perf_counter()
        audio = torch.stack([m.embed_audio_segments(torch.from_numpy(read_track(Path(music) / e["path"],
                                                                                m.sample_rate)))
                             for e in entries])
        per_form = {}
        all_text, all_truth = [], []
        for i, e in enumerate(entries):
            for form, cap in zip(FORMS, caption_variants(data.facts(i, thresholds), e["name"])):
                per_form.setdefault(form, ([], []))
                per_form[form][0].append(cap)
                per_form[form][1].append(i)
                all_text.append(cap)
                all_truth.append(i)
        res = {"all": retrieval(m.embed_text(all_text), audio, all_truth)}
        for form, (texts, truth) in per_form.items():
            res[form] = retrieval(m.embed_text(texts), audio, truth)
        res["seconds"] = time.perf_counter() - t
        results[name] = res
    results["tracks"] = [e["name"] for e in entries]
    results["example_captions"] = caption_variants(data.facts(0, thresholds), entries[0]["name"])
    return results


def print_retrieval(r: dict) -> None:
    n = len(r["tracks"])
    print(f"text→audio retrieval on {n} held-out tracks ({', '.join(r['tracks'][:3])}, ...)")
    print(f"  captions per track: {len(r['example_captions'])} phrasings, e.g. {r['example_captions'][0]!r}")
    print(f"  {'phrasing':<12} {'queries':>7} {'R@1':>6} {'R@5':>6} {'rank':>6}   {'untrained R@1/R@5':>18}   "
          f"{'chance R@1/R@5':>15}")
    for form in [k for k in r["trained"] if k not in ("seconds",)]:
        a, b = r["trained"][form], r["untrained"][form]
        print(f"  {form:<12} {a['queries']:>7} {a['recall@1']:>6.3f} {a['recall@5']:>6.3f} {a['mean_rank']:>6.2f}"
              f"   {b['recall@1']:>8.3f} / {b['recall@5']:.3f}   {a['chance@1']:>7.3f} / {a['chance@5']:.3f}")
    a = r["trained"]["all"]
    print(f"  trained / chance: R@1 {a['recall@1'] / a['chance@1']:.2f}x, R@5 {a['recall@5'] / a['chance@5']:.2f}x "
          f"(N = {n} tracks, {a['queries']} queries)")


# -- MCC ----------------------------------------------------------------------------------------------------
class _Embedder(JointEmbedder):
    """The joint model as :class:`v2meow.metrics.mcc.JointEmbedder` (one 10 s crop, as audiocraft's CLAP score)."""

    def __init__(self, model, name: str):
        self.model, self.name = model, name
        self.sample_rate = model.sample_rate
        self.crop_seconds = model.cfg.segment_seconds

    def embed_audio(self, wav: np.ndarray) -> np.ndarray:
        return self.model.embed_audio(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)))[0].numpy()

    def embed_text(self, text: str) -> np.ndarray:
        return self.model.embed_text([text])[0].numpy()


def synthetic_video(path: Path, seconds: float) -> str:
    """A small video with sound: a square that moves on a beat, 12 fps, 96 x 64."""
    import av

    fps, (w, h) = 12, (96, 64)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = out.add_stream("aac", rate=16000)
        for i in range(int(seconds * fps)):
            img = np.full((h, w, 3), 20, dtype=np.uint8)
            x = int((w - 16) * (0.5 + 0.5 * np.sin(2 * np.pi * i / fps)))
            img[24:40, x: x + 16] = 230 if (i // (fps // 2)) % 2 else 120
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        t = np.arange(int(seconds * 16000)) / 16000
        wav = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(wav, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for p in a.encode(frame):
            out.mux(p)
        for p in a.encode():
            out.mux(p)
    return str(path)


def mcc_with_and_without_prompt(joint, joint_name: str, args: argparse.Namespace) -> dict:
    from v2meow.errors import UserError
    from v2meow.metrics.mcc import JointCosine
    from v2meow.pipeline import V2Meow

    model = V2Meow.from_pretrained(args.v2meow)
    prompts = list(args.prompt or DEFAULT_PROMPTS)
    embedder = _Embedder(joint, joint_name)
    with_p, without_p = JointCosine(embedder, target="text"), JointCosine(embedder, target="text")
    controllable = model.text is not None and model.cfg.semantic.joint_dim > 0
    texts = np.stack([np.asarray(embedder.embed_text(p), dtype=np.float64).reshape(-1) for p in prompts])  # [P, D]
    units = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    # cosine of each generated clip with every prompt: [video, generated with prompt i (or none), prompt j]
    cross_with, cross_without = [], []

    def embed(wav: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
        """A clip's joint embedding (embedded once) and its cosine with every prompt."""
        a = np.asarray(with_p.embed_clip(wav, sr), dtype=np.float64).reshape(-1)
        return a, units @ (a / np.linalg.norm(a))

    with tempfile.TemporaryDirectory() as tmp:
        videos = list(args.video or [synthetic_video(Path(tmp) / "clip.mp4", args.seconds)])
        t = time.perf_counter()
        for vi, video in enumerate(videos):
            base = model.generate(video, seconds=args.seconds, seed=args.seed + vi)
            base_emb, base_cos = embed(base.wav, base.sample_rate)
            cross_without.append(base_cos)
            rows = []
            for pi, prompt in enumerate(prompts):
                without_p.update(base_emb[None], texts[pi][None])
                if controllable:
                    try:
                        g = model.generate(video, prompt=prompt, seconds=args.seconds, seed=args.seed + vi,
                                           guidance=args.guidance)
                    except UserError as e:
                        print(f"  cannot prompt this model: {e}")
                        controllable = False
                        continue
                    g_emb, g_cos = embed(g.wav, g.sample_rate)
                    with_p.update(g_emb[None], texts[pi][None])
                    rows.append(g_cos)
            if controllable:
                cross_with.append(np.stack(rows))
        took = time.perf_counter() - t
    out = {"model": str(args.v2meow), "text_backend": model.cfg.text.backend if model.cfg.text else None,
           "controllable": controllable, "videos": len(videos), "prompts": len(prompts),
           "without": without_p.compute(), "seconds": took}
    if controllable:
        out["with"] = with_p.compute()
        out["paired"] = paired_difference(with_p.scores(), without_p.scores())
        if len(prompts) > 1:
            out["specificity"] = prompt_specificity(np.stack(cross_with), np.stack(cross_without))
    return out


def _summary(d: np.ndarray) -> dict:
    """Mean, standard error, share above 0 and count of per-pair differences ``d``."""
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {"mean": float(d.mean()), "se": se, "win_rate": float((d > 0).mean()), "n": int(len(d))}


def paired_difference(with_scores: np.ndarray, without_scores: np.ndarray) -> dict:
    """Per (video, prompt) pair, MCC with the prompt minus without it: mean, standard error, share above 0."""
    return _summary(np.asarray(with_scores, dtype=np.float64) - np.asarray(without_scores, dtype=np.float64))


def prompt_specificity(cross_with: np.ndarray, cross_without: np.ndarray) -> dict:
    """Does a prompt pull the music towards itself rather than towards prompts in general?

    ``cross_with [V, P, P]``: cosine of the music generated for video v with prompt i to prompt j;
    ``cross_without [V, P]``: the same for the unprompted music. Per (video, prompt i): the gain in cosine to
    prompt i, minus the mean gain to the other prompts j != i (0 when prompting only shifts music in general).
    """
    v, p, _ = cross_with.shape
    gain = cross_with - cross_without[:, None, :]  # [V, i, j]
    own = np.einsum("vii->vi", gain)
    others = (gain.sum(axis=2) - own) / (p - 1)
    return _summary((own - others).reshape(-1))


def print_mcc(r: dict, args: argparse.Namespace) -> None:
    print(f"MCC (text) for V2Meow model {r['model']} (text backend {r['text_backend']}), joint space "
          f"{r['without']['model']}: {r['videos']} video(s) x {r['prompts']} prompts, {args.seconds:g} s each")
    def fmt(m: dict) -> str:
        spread = f" ± {m['mcc_std']:.3f}" if m["n"] > 1 else ""
        return f"MCC {m['mcc']:.3f}{spread}  (N = {m['n']})"

    w = r["without"]
    print(f"  without prompt:            {fmt(w)}")
    if "with" in r:
        p = r["with"]
        print(f"  with prompt, guidance {args.guidance:g}:  {fmt(p)}   difference {p['mcc'] - w['mcc']:+.3f}")
        d = r["paired"]
        print(f"  paired (same video, prompt, seed): with - without {d['mean']:+.3f} ± {d['se']:.3f} s.e., "
              f"higher in {d['win_rate']:.0%} of {d['n']} pairs")
        if "specificity" in r:
            sp = r["specificity"]
            print(f"  specificity (gain towards the prompt used - mean gain towards the other prompts): "
                  f"{sp['mean']:+.3f} ± {sp['se']:.3f} s.e., above 0 in {sp['win_rate']:.0%} of {sp['n']}")
    else:
        print("  this model takes no prompt (no joint text conditioning): only the unprompted figure exists")
    print("  (the figure is for this model; an untrained or debug model is not expected to follow prompts)")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if not args.model:
        print("bench.joint: no trained joint model given; pass --model RUN_OR_DIR (a joint training run, an "
              "exported joint model, or 'embedded') and --music data_cache/music.")
        return 2
    torch.set_num_threads(max(1, args.threads))
    from v2meow.errors import UserError
    from v2meow.train.joint import load_joint

    try:
        joint, meta = load_joint(args.model)
    except UserError as e:
        print(f"bench.joint: {e}")
        return 2
    steps = (meta.get("training") or {}).get("steps")
    name = f"v2meow-joint ({args.model}{f', {steps} steps' if steps else ''})"
    print(f"joint model {name}: {sum(p.numel() for p in joint.parameters()) / 1e6:.2f} M trained parameters, "
          f"{joint.dim}-d")
    if not Path(args.music).is_dir():
        print(f"bench.joint: no music folder at {args.music}; skipping retrieval.")
    else:
        try:
            captions = load_joint(args.captions_of)[1] if args.captions_of else meta
            print_retrieval(heldout_retrieval(joint, {**meta, "thresholds": captions.get("thresholds")}, args.music,
                                              args.cache))
        except UserError as e:
            print(f"bench.joint: {e}")
    if args.v2meow:
        try:
            print_mcc(mcc_with_and_without_prompt(joint, name, args), args)
        except UserError as e:
            print(f"bench.joint: {e}")
            return 2
    else:
        print("MCC: skipped (pass --v2meow MODEL_DIR to generate with and without prompts)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
