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
4. Rhythm, harmony and context (docs/semantic-tokens.md): onset lift (how much likelier a token change is within
   one frame of a detected onset than elsewhere), chroma R² (the share of the frames' chroma variance the token id
   explains, means taken on the first crops and scored on the second), and a bigram's bits a token and a second
   (fitted on the first crops, scored on the second).

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


def crop_key(chroma: np.ndarray) -> int:
    """The key (0-11 major, 12-23 minor, by tonic) whose profile best correlates with the mean of ``chroma [T, 12]``
    (:func:`v2meow.text.captions.key_scores`)."""
    from v2meow.text.captions import key_scores

    return int(np.nanargmax(key_scores(chroma.mean(0))))


def onset_lift(tokens: list[Tensor], onsets: list[np.ndarray], rate: float) -> float:
    """How much likelier a token change is at a frame boundary within one frame of a detected onset than at any
    other boundary (1 = changes ignore the onsets; pooled over crops)."""
    counts = np.zeros((2, 2))  # [far from / near an onset, unchanged / changed]
    for tok, on in zip(tokens, onsets):
        t = tok.numpy()
        changed = t[1:] != t[:-1]
        times = np.arange(1, len(t)) / rate
        near = (np.abs(times[:, None] - on[None, :]).min(axis=1) <= 1.0 / rate if len(on)
                else np.zeros(len(times), bool))
        np.add.at(counts, (near.astype(int), changed.astype(int)), 1)
    p_far, p_near = (counts[:, 1] + 0.5) / (counts.sum(1) + 1.0)  # half a count each: finite when none change
    return float(p_near / p_far)


def chroma_r2(fit_tokens: list[Tensor], fit_chroma: list[np.ndarray], test_tokens: list[Tensor],
              test_chroma: list[np.ndarray], vocab: int) -> float:
    """Share of the frames' chroma variance that the token id explains, out of sample: each token's mean chroma
    is taken on the ``fit`` crops and predicts the ``test`` crops' frames (an unseen token predicts the mean)."""
    ft, fc = torch.cat(fit_tokens).numpy(), np.concatenate(fit_chroma)
    tt, tc = torch.cat(test_tokens).numpy(), np.concatenate(test_chroma)
    sums, counts = np.zeros((vocab, fc.shape[1])), np.zeros(vocab)
    np.add.at(sums, ft, fc)
    np.add.at(counts, ft, 1)
    means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], fc.mean(0))
    return float(1.0 - np.square(tc - means[tt]).sum() / np.square(tc - tc.mean(0)).sum())


def key_accuracy(tokens: list[Tensor], keys: list[int], tracks: list[int], vocab: int) -> float:
    """Each crop's key guessed as that of its nearest bag of tokens (cosine) among the other tracks' crops."""
    h = torch.stack([torch.bincount(t, minlength=vocab).double() for t in tokens])
    h = h / h.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sim = h @ h.T
    same = torch.tensor(tracks)[:, None] == torch.tensor(tracks)[None, :]
    sim[same] = -2.0
    guess = sim.argmax(dim=1)
    return float(np.mean([keys[int(g)] == k for g, k in zip(guess, keys)]))


def context_scores(train: list[Tensor], test: list[Tensor], vocab: int, rate: float, prior: float = 5.0
                   ) -> dict[str, float]:
    """How predictable the tokens are from the one before: cross-entropies (bits a token) on ``test`` of a
    unigram and of a bigram fitted on ``train`` (the bigram smoothed towards the unigram with ``prior`` pseudo
    counts), the share of bits the context saves, the bigram's bits a second, and token changes a second."""
    tr = [t.numpy() for t in train]
    uni = np.bincount(np.concatenate(tr), minlength=vocab) + 0.5
    uni = uni / uni.sum()
    pairs = np.zeros((vocab, vocab))
    for t in tr:
        np.add.at(pairs, (t[:-1], t[1:]), 1)
    big = (pairs + prior * uni[None, :]) / (pairs.sum(1, keepdims=True) + prior)
    h_uni, h_big, changes, n = 0.0, 0.0, 0, 0
    for t in (x.numpy() for x in test):
        h_uni -= float(np.log2(uni[t[1:]]).sum())
        h_big -= float(np.log2(big[t[:-1], t[1:]]).sum())
        changes += int((t[1:] != t[:-1]).sum())
        n += len(t) - 1
    return {"bits_unigram": h_uni / n, "bits_bigram": h_big / n, "context_saves": 1 - h_big / h_uni,
            "bits_per_second": h_big / n * rate, "changes_per_second": changes / n * rate}


def two_crops(files: list[Path], root: Path, sample_rate: int, seconds: float) -> tuple[list[Tensor], list[Tensor],
                                                                                    list[str]]:
    """Two crops of ``seconds`` from each file long enough for two that do not overlap (at 1/3 and 2/3 of it):
    first crops, second crops, and the files' names relative to ``root``."""
    from v2meow.io.audio import load_audio

    n = round(seconds * sample_rate)
    first, second, names = [], [], []
    for f in files:
        wav = load_audio(f, sample_rate)
        if wav.shape[0] < 2 * n:
            continue
        starts = (round((wav.shape[0] - n) / 3), round(2 * (wav.shape[0] - n) / 3))
        if starts[1] - starts[0] < n:  # the two crops must not overlap
            starts = (0, wav.shape[0] - n)
        first.append(torch.from_numpy(wav[starts[0] : starts[0] + n].copy()))
        second.append(torch.from_numpy(wav[starts[1] : starts[1] + n].copy()))
        names.append(str(f.relative_to(root)))
    return first, second, names


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
    from v2meow.tokenizers.default import windowed_semantic_tokens
    from v2meow.train.tokenizers import SOURCES_FILE, list_audio

    tok, info = load_semantic(model)
    sr, vocab = tok.sample_rate, tok.vocab_size
    has_sources = (data / SOURCES_FILE).is_file() and not source
    files = list_audio(data, "heldout") if has_sources else list_audio(data, "all")
    if max_tracks:
        files = files[:max_tracks]
    first, second, names = two_crops(files, data, sr, seconds)
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
    from v2meow.metrics.beats import detect_onsets
    from v2meow.tokenizers.semantic import chroma_of_frames

    chroma = chroma_of_frames(tok.encoder)
    with torch.no_grad():
        chromas = [chroma(w[None])[0].T.numpy() for w in first + second]  # [T, 12] at the tokens' frames
    onsets = [detect_onsets(w.numpy(), sr) for w in first + second]
    rows = {}
    for name, fn in tokenizers.items():
        a = [fn(w) for w in first]
        b = [fn(w) for w in second]
        s = {r: [fn(w) for w in ws] for r, ws in stretched.items()}
        rows[name] = {**usage(a + b, vocab), **identity_scores(a, b, vocab), **tempo_scores(a, s),
                      "onset_lift": onset_lift(a + b, onsets, tok.frame_rate),
                      "chroma_r2": chroma_r2(a, chromas[: len(a)], b, chromas[len(a):], vocab),
                      # the bigram is fitted on the first crops and scored on the second (no training crops here)
                      **context_scores(a, b, vocab, tok.frame_rate)}
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
    print()
    print(f"| {'rhythm, harmony, context':<{w}} | onset lift | chroma R² | bits/token (bigram) | bits/s | changes/s |")
    print(f"|{'-' * (w + 2)}|------------|-----------|---------------------|--------|-----------|")
    for k, r in rows.items():
        print(f"| {k:<{w}} | {r['onset_lift']:>10.2f} | {r['chroma_r2']:>9.2f} | {r['bits_bigram']:>19.2f} | "
              f"{r['bits_per_second']:>6.0f} | {r['changes_per_second']:>9.1f} |")


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
