"""Semantic tokens on held-out music: codebook usage, track identity, and tempo.

    python -m bench.semantic --model v2meow/assets/tokenizers --data data_cache/music

``--model``: a tokenizer directory (default: the shipped one) or a semantic training run (``runs/.../semantic``).
``--data``: a music folder; with a ``sources.json`` only held-out tracks are read (else every file). ``--source``:
a folder of music from a source the tokenizer never heard (the game music): every file is read, and the spectral
reference is fitted on those same files (which flatters it). Printed:

1. Usage: perplexity of the token distribution over all held-out frames (exp of its entropy), the fraction
   of the vocabulary used, and the mean perplexity within one crop.
2. Track identity: two crops of each track (at 1/3 and 2/3 of it). Each crop becomes a bag of tokens (a
   normalised histogram); similarity is the cosine of two bags. Reported: mean similarity of the two crops of
   one track against crops of different tracks, the AUC (probability that a same-track pair scores above a
   different-track pair; 0.5 = chance), and top-1 retrieval (the most similar second crop is the same track's).
3. Tempo: each first crop is time-stretched (phase vocoder, pitch kept) to 0.8x and 1.25x tempo and tokenized.
   If the tokens follow the music, the stretched sequence is the original one warped by the tempo factor:
   for warps w in 0.5..2 the agreement ``mean_t [tok_stretched[t] == tok_original[round(w t)]]`` peaks at
   w = the factor. Reported: the median estimated factor, the share of crops whose estimate is within 5 %,
   and the agreement at the true warp against no warp.

Reference rows, computed in the same run on the same crops: a k-means of the log-mel + chroma frames
themselves (same vocabulary size, fitted here on the training tracks: what the encoder adds over its input
features), and uniformly random tokens (chance).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
RATES = (0.8, 1.25)


def time_stretch(wav: Tensor, rate: float, n_fft: int = 2048, hop: int = 512) -> Tensor:
    """``wav [T]`` played ``rate`` times faster at the same pitch (phase vocoder), ``≈ T / rate`` samples."""
    window = torch.hann_window(n_fft, dtype=torch.float64)
    spec = torch.stft(wav.double(), n_fft, hop, window=window, return_complex=True)  # [F, frames]
    steps = torch.arange(0, spec.shape[1] - 1, rate, dtype=torch.float64)
    expected = torch.linspace(0, math.pi * hop, spec.shape[0], dtype=torch.float64)  # phase advance per hop
    phase = spec[:, 0].angle()
    out = []
    for s in steps:
        i = int(s)
        frac = float(s - i)
        a, b = spec[:, i], spec[:, i + 1]
        out.append(torch.polar((1 - frac) * a.abs() + frac * b.abs(), phase))
        delta = b.angle() - a.angle() - expected
        delta = delta - 2 * math.pi * torch.round(delta / (2 * math.pi))
        phase = phase + expected + delta
    stretched = torch.stack(out, dim=1)
    length = round(wav.shape[0] / rate)
    return torch.istft(stretched, n_fft, hop, window=window, length=length).float()


def usage(tokens: list[Tensor], vocab: int) -> dict[str, float]:
    allt = torch.cat(tokens)
    p = torch.bincount(allt, minlength=vocab).double() / allt.numel()
    nz = p[p > 0]
    per_crop = []
    for t in tokens:
        q = torch.bincount(t, minlength=vocab).double() / t.numel()
        q = q[q > 0]
        per_crop.append(float(torch.exp(-(q * q.log()).sum())))
    return {"perplexity": float(torch.exp(-(nz * nz.log()).sum())), "used": float((p > 0).double().mean()),
            "crop_perplexity": float(np.mean(per_crop))}


def identity_scores(a: list[Tensor], b: list[Tensor], vocab: int) -> dict[str, float]:
    """Bag-of-token cosine similarities between first crops ``a`` and second crops ``b`` (row i = track i)."""
    def bags(ts: list[Tensor]) -> Tensor:
        h = torch.stack([torch.bincount(t, minlength=vocab).double() for t in ts])
        return h / h.norm(dim=1, keepdim=True).clamp_min(1e-12)

    sim = bags(a) @ bags(b).T  # [N, N]
    n = sim.shape[0]
    same = sim.diagonal()
    off = sim[~torch.eye(n, dtype=torch.bool)]
    auc = float((same[:, None] > off[None, :]).double().mean() + 0.5 * (same[:, None] == off[None, :]).double().mean())
    top1 = float((sim.argmax(dim=1) == torch.arange(n)).double().mean())
    return {"same_track": float(same.mean()), "other_tracks": float(off.mean()), "auc": auc, "top1": top1}


def warp_agreement(orig: Tensor, stretched: Tensor, w: float) -> float:
    t = torch.arange(stretched.shape[0])
    src = torch.round(t * w).long()
    keep = src < orig.shape[0]
    if int(keep.sum()) < 10:
        return float("nan")
    return float((stretched[keep] == orig[src[keep]]).double().mean())


def tempo_scores(orig: list[Tensor], stretched: dict[float, list[Tensor]]) -> dict[str, float]:
    warps = np.exp(np.linspace(math.log(0.5), math.log(2.0), 141))
    out = {}
    for rate, seqs in stretched.items():
        est, at_true, at_one = [], [], []
        for o, s in zip(orig, seqs):
            agree = np.array([warp_agreement(o, s, w) for w in warps])
            est.append(float(warps[np.nanargmax(agree)]))
            at_true.append(warp_agreement(o, s, rate))
            at_one.append(warp_agreement(o, s, 1.0))
        est_a = np.asarray(est)
        out[f"x{rate:g}_median"] = float(np.median(est_a))
        out[f"x{rate:g}_within5"] = float(np.mean(np.abs(est_a / rate - 1) <= 0.05))
        out[f"x{rate:g}_agree_true"] = float(np.nanmean(at_true))
        out[f"x{rate:g}_agree_none"] = float(np.nanmean(at_one))
    return out


def load_semantic(model: str | None):
    from v2meow.train.tokenizers import load_semantic_run

    if model and (Path(model) / "tokenizer" / "semantic.json").is_file():
        tok, info = load_semantic_run(model)
        return tok, {"source": f"run {model}", "step": info.get("step")}
    from v2meow.tokenizers.default import load_tokenizers

    t = load_tokenizers(model)
    return t.semantic, {"source": model or "shipped tokenizers",
                        "step": t.info.get("training", {}).get("semantic", {}).get("step")}


def spectral_kmeans(tok, data: Path, k: int, crops: int = 400, seconds: float = 4.0, seed: int = 0,
                    which: str = "train"):
    """Reference tokenizer: k-means of the encoder's own input frames (log-mel + chroma), fitted on ``which``
    files of ``data`` (its training tracks by default)."""
    from v2meow.tokenizers.kmeans import KMeans
    from v2meow.train.tokenizers import AudioCrops, list_audio

    frontend = tok.encoder.frontend
    src = AudioCrops(list_audio(data, which), tok.sample_rate)
    rng = np.random.default_rng([seed, 99])
    n = round(seconds * tok.sample_rate)
    feats = []
    with torch.no_grad():
        for i in range(0, crops, 50):
            wav = src.batch(rng, min(50, crops - i), n)
            f = frontend(wav).transpose(1, 2)
            feats.append(f.reshape(-1, f.shape[-1]))
    km = KMeans().fit(torch.cat(feats).numpy(), k, seed=seed)
    return lambda wav: km.predict(frontend(wav[None]).transpose(1, 2))[0]


@torch.no_grad()
def run(model: str | None, data: Path, seconds: float, max_tracks: int = 0, baseline: bool = True,
        source: bool = False) -> dict:
    from v2meow.io.audio import load_audio
    from v2meow.tokenizers.default import windowed_semantic_tokens
    from v2meow.train.tokenizers import SOURCES_FILE, list_audio

    tok, info = load_semantic(model)
    sr, vocab = tok.sample_rate, tok.vocab_size
    has_sources = (data / SOURCES_FILE).is_file() and not source
    files = list_audio(data, "heldout") if has_sources else list_audio(data, "all")
    if max_tracks:
        files = files[:max_tracks]
    n = round(seconds * sr)
    first, second, names = [], [], []
    for f in files:
        wav = load_audio(f, sr)
        if wav.shape[0] < 2 * n:
            continue
        starts = (round((wav.shape[0] - n) / 3), round(2 * (wav.shape[0] - n) / 3))
        if starts[1] - starts[0] < n:  # the two crops must not overlap
            starts = (0, wav.shape[0] - n)
        first.append(torch.from_numpy(wav[starts[0] : starts[0] + n].copy()))
        second.append(torch.from_numpy(wav[starts[1] : starts[1] + n].copy()))
        names.append(str(f.relative_to(data)))
    if len(first) < 2:
        raise SystemExit(f"Need at least two {'held-out ' if has_sources else ''}tracks of {2 * seconds:g} s in "
                         f"{data}{'' if source or not has_sources else ' (--source reads every file)'}.")
    stretched = {r: [time_stretch(w, r) for w in first] for r in RATES}

    def ours(wav: Tensor) -> Tensor:
        return windowed_semantic_tokens(tok, wav)

    tokenizers: dict[str, Callable[[Tensor], Tensor]] = {"semantic tokens (encoder + k-means)": ours}
    if baseline:
        tokenizers["k-means of log-mel + chroma frames"] = spectral_kmeans(tok, data, vocab,
                                                                           which="train" if has_sources else "all")
    g = torch.Generator().manual_seed(0)
    tokenizers["random tokens (chance)"] = lambda w: torch.randint(0, vocab, (math.ceil(w.shape[0] / tok.hop_length),),
                                                                   generator=g)
    rows = {}
    for name, fn in tokenizers.items():
        a = [fn(w) for w in first]
        b = [fn(w) for w in second]
        s = {r: [fn(w) for w in ws] for r, ws in stretched.items()}
        rows[name] = {**usage(a + b, vocab), **identity_scores(a, b, vocab), **tempo_scores(a, s)}
    return {"rows": rows, "tracks": len(first), "seconds": seconds, "vocab": vocab, "model": info,
            "identity": tok.identity(), "heldout_from_sources": has_sources, "source": source, "names": names}


def print_tables(res: dict) -> None:
    m = res["model"]
    held = ("held-out tracks of sources.json" if res["heldout_from_sources"] else
            "every file of a held-out source (spectral reference fitted on them too)" if res.get("source") else
            "all files (no sources.json)")
    print(f"semantic tokenizer: {m['source']} (step {m.get('step')}), vocabulary {res['vocab']}, "
          f"layer {res['identity']['layer']}")
    print(f"data: 2 crops of {res['seconds']:g} s from each of {res['tracks']} {held}\n")
    rows = res["rows"]
    w = max(len(k) for k in rows)
    print(f"| {'tokens':<{w}} | perplexity | vocab used | perplexity/crop | cos same track | cos other tracks | "
          f"AUC | top-1 |")
    print(f"|{'-' * (w + 2)}|" + "|".join("-" * n for n in (12, 12, 17, 16, 18, 5, 7)) + "|")
    for k, r in rows.items():
        print(f"| {k:<{w}} | {r['perplexity']:>10.1f} | {r['used']:>9.0%} | {r['crop_perplexity']:>15.1f} | "
              f"{r['same_track']:>14.3f} | {r['other_tracks']:>16.3f} | {r['auc']:.2f} | {r['top1']:>5.0%} |")
    print()
    head = " | ".join(f"{f'x{r:g}: median est.':>16} | within 5% | {f'agree@x{r:g}':>10} | agree@x1" for r in RATES)
    print(f"| {'tempo change':<{w}} | {head} |")
    print(f"|{'-' * (w + 2)}|" + "|".join("-" * (n + 2) for _ in RATES for n in (17, 9, 11, 8)) + "|")
    for k, r in rows.items():
        cells = " | ".join(f"{r[f'x{q:g}_median']:>17.3f} | {r[f'x{q:g}_within5']:>9.0%} | "
                           f"{r[f'x{q:g}_agree_true']:>11.3f} | {r[f'x{q:g}_agree_none']:>8.3f}" for q in RATES)
        print(f"| {k:<{w}} | {cells} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="tokenizer directory or semantic run (default: shipped tokenizers)")
    p.add_argument("--data", default=str(ROOT / "data_cache" / "music"))
    p.add_argument("--seconds", type=float, default=10.0, help="length of each crop")
    p.add_argument("--max-tracks", type=int, default=0)
    p.add_argument("--source", action="store_true", help="--data is a source the tokenizer never heard: read every "
                   "file, even with a sources.json")
    p.add_argument("--no-baseline", action="store_true", help="skip the spectral k-means reference (faster)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    if not data.is_dir():
        print(f"bench.semantic: no music at {data}; run scripts/get_music.py first (skipped).")
        return 0
    res = run(args.model, data, args.seconds, args.max_tracks, not args.no_baseline, args.source)
    print_tables(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
