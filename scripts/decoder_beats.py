"""What a codec decoder does to the beats of generated music, on the same tokens: the shipped stages write one
soundtrack per held-out video (``--candidates 1``, seed = the video's index; the tokens are kept), then each codec
renders those tokens as ``generate`` would (crop, clamp, loudness), and the evaluation's beat tracker scores each
render against its own video's beats and against the other videos' (beat F, ±70 ms: the gate's measure). Rows are
paired with the first codec clip by clip.

The gate runs the whole evaluation for each decoder; this runs the stages once and every decoder on their tokens,
so it can afford many more videos (the gate's beat F differences between decoders were within one or two
standard errors on 48).

    python scripts/decoder_beats.py --videos 240 --codecs shipped runs/codec_lowmlp/tok_reset6 -o runs/decoder_beats
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

SECONDS = 10.0


def heldout(n: int, skip: int) -> list[Path]:
    from v2meow.data.extract import heldout_flag

    found = [v for v in sorted((ROOT / "data_cache" / "videos").rglob("*.mp4")) if heldout_flag(v) is True]
    return found[skip: skip + n]


def tokens_for(model, videos: list[Path], folder: Path) -> list[np.ndarray]:
    """Each video's codes ``[N_q, T_a]`` from the model's stages, made once and kept in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, v in enumerate(videos):
        f = folder / f"{i:04d}_{v.stem}.npy"
        if not f.is_file():
            track = model.generate(str(v), seconds=SECONDS, seed=i, candidates=1)
            tmp = f.with_suffix(".tmp.npy")
            np.save(tmp, track.acoustic.cpu().numpy().astype(np.int16))
            tmp.replace(f)
        out.append(np.load(f, allow_pickle=False).astype(np.int64))
    return out


def render(model, codec, codes: np.ndarray) -> np.ndarray:
    """``codes`` as ``V2Meow.generate`` renders them, through ``codec``."""
    import torch

    from v2meow.io.audio import match_loudness

    g = model.cfg.generation
    model.codec = codec
    wav = model.decode(torch.from_numpy(codes)[None])[:, : int(round(SECONDS * model.sample_rate))]
    wav = wav.float().clamp(-1.0, 1.0).cpu().numpy()[0]
    return match_loudness(wav, model.sample_rate, g.loudness_lufs, limit_db=g.limit_db) if g.loudness_lufs else wav


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded")
    p.add_argument("--videos", type=int, default=240)
    p.add_argument("--skip-videos", type=int, default=0)
    p.add_argument("--codecs", nargs="+", default=["shipped"],
                   help="tokenizer directories or codec runs ('shipped': the shipped one); the first is the baseline")
    p.add_argument("-o", "--out", default=str(ROOT / "runs" / "decoder_beats"))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch

    from bench.codec import load_codec
    from v2meow.metrics.alignment import video_beats
    from v2meow.metrics.beats import beat_f_own_and_others, track_beats
    from v2meow.pipeline import V2Meow

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.model == "embedded":
        from importlib import resources

        model = V2Meow.from_pretrained(str(resources.files("v2meow") / "assets" / "embedded"))
    else:
        model = V2Meow.from_pretrained(args.model)
    videos = heldout(args.videos, args.skip_videos)
    t = time.perf_counter()
    with torch.inference_mode():
        codes = tokens_for(model, videos, out / "tokens")
    print(f"{len(videos)} videos' tokens in {time.perf_counter() - t:.0f} s")
    beats = [video_beats(str(v), SECONDS, curve=False).times for v in videos]
    rows = {}
    for name in args.codecs:
        codec = load_codec(None if name == "shipped" else name)[0].eval()
        own, other = [], []
        with torch.inference_mode():
            for i, c in enumerate(codes):
                wav = render(model, codec, c)
                o, m = beat_f_own_and_others(track_beats(wav, model.sample_rate), beats[i],
                                             [b for j, b in enumerate(beats) if j != i])
                own.append(o)
                other.append(m)
        rows[name] = {"own": own, "other": other}
        print(f"{name}: beat F own {np.mean(own):.3f}, other videos' {np.mean(other):.3f}")
    base = args.codecs[0]
    lines = [f"{len(videos)} held-out videos (after the first {args.skip_videos}), one soundtrack each from "
             f"{args.model}'s stages, rendered by each codec", "",
             "| codec | beat F own ↑ | other videos' | gap own − other | own against the first, paired | same F |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        own, other = np.array(r["own"]), np.array(r["other"])
        gap = own - other
        d = own - np.array(rows[base]["own"])
        se = lambda x: x.std(ddof=1) / np.sqrt(len(x))  # noqa: E731
        paired = "" if name == base else f"{d.mean():+.4f} ± {se(d):.4f}"
        same = "" if name == base else f"{np.mean(d == 0):.0%}"
        lines.append(f"| {name} | {own.mean():.4f} | {other.mean():.4f} | {gap.mean():+.4f} ± {se(gap):.4f} | "
                     f"{paired} | {same} |")
    text = "\n".join(lines)
    print(text)
    (out / "table.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"videos": [v.name for v in videos], "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
