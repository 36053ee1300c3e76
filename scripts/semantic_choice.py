"""Choose the semantic tokens' layer, vocabulary and rate by measurement, on held-out music.

    python scripts/semantic_choice.py --run runs/tokenizers/semantic --data data_cache/corpus

``--run``: a semantic tokenizer training run (``v2meow train semantic-tokenizer``); its latest checkpoint holds
every layer of the encoder. For each layer (0 = the encoder's input projection), vocabulary and rate (25 Hz:
the encoder's frames; 12.5 Hz: pairs of frames averaged), a k-means is fitted on the training tracks' crops and
the held-out works' crops are tokenized (two 10 s crops a track, as bench.semantic). Columns (bench/semantic.py):

- perplexity and the vocabulary used; token changes a second;
- same-track AUC (bags of tokens of two crops of one track against other tracks');
- onset lift: how much likelier a token change is within one frame of a detected note onset than elsewhere
  (rhythm: 1 = the changes ignore the onsets);
- chroma R²: the share of the frames' chroma variance the token id explains out of sample (harmony);
- key accuracy: a crop's key (Krumhansl profiles on its chroma) guessed from the nearest other track's bag;
- context: the bits a token a bigram fitted on the training crops needs on the held-out ones, the share a
  unigram's bits the context saves, and the bits a second a stage must model;
- tempo: agreement of the tokens of the music played ×0.8 / ×1.25 with the originals warped by that factor.

References in the same run, at each vocabulary and rate: the k-means of the encoder's input frames (log-mel +
chroma, what the encoder adds to) and uniformly random tokens.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.semantic import (  # noqa: E402
    RATES,
    chroma_r2,
    context_scores,
    crop_key,
    identity_scores,
    key_accuracy,
    onset_lift,
    tempo_scores,
    time_stretch,
    two_crops,
    usage,
)


def load_encoder(run: Path):
    from v2meow.tokenizers.semantic import SemanticEncoder, SemanticEncoderConfig
    from v2meow.train.checkpoint import latest_checkpoint, load_checkpoint

    path = latest_checkpoint(run)
    if path is None:
        raise SystemExit(f"{run} has no checkpoint.")
    ck = load_checkpoint(path, weights_only=True)
    enc = SemanticEncoder(SemanticEncoderConfig.from_dict(ck["state"]["train_config"]["encoder"]))
    enc.load_state_dict({k: v.float() for k, v in ck["model"].items()})
    return enc.eval(), int(ck["state"]["step"])


def pooled(x: Tensor, factor: int) -> Tensor:
    """``[T, D]`` frames averaged in groups of ``factor`` (the last group may be shorter)."""
    if factor == 1:
        return x
    pad = (-x.shape[0]) % factor
    if pad:
        x = torch.cat([x, x[-1:].expand(pad, -1)])
    return x.reshape(-1, factor, x.shape[-1]).mean(1)


@torch.no_grad()
def layer_frames(enc, wavs: list[Tensor]) -> list[list[Tensor]]:
    """``[layer][crop]`` → frames ``[T, D]`` of every layer for every crop, plus the input frames as the last
    "layer" (log-mel + chroma, the spectral reference)."""
    out: list[list[Tensor]] = [[] for _ in range(enc.config.layers + 2)]
    for w in wavs:
        feats = enc.all_features(w[None])
        for i, f in enumerate(feats):
            out[i].append(f[0])
        out[-1].append(enc.frontend(w[None])[0].T)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a semantic tokenizer training run")
    p.add_argument("--data", default=str(ROOT / "data_cache" / "corpus"), help="music with a sources.json")
    p.add_argument("--layers", type=int, nargs="+", default=None, help="default: every layer")
    p.add_argument("--vocab", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--pool", type=int, nargs="+", default=[1, 2], help="frames averaged per token (1: 25 Hz)")
    p.add_argument("--fit-crops", type=int, default=300, help="4 s training crops the k-means is fitted on")
    p.add_argument("--max-tracks", type=int, default=48, help="held-out tracks (two 10 s crops each)")
    p.add_argument("--with-chroma", type=int, nargs="*", default=[],
                   help="also each layer's frames with the 12 chroma bins appended, repeated this many times (the "
                        "k-means standardises every dimension, so repeating weighs harmony up)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-random", dest="random", action="store_false", help="leave out the random tokens row")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from v2meow.metrics.beats import detect_onsets
    from v2meow.tokenizers.kmeans import KMeans
    from v2meow.tokenizers.semantic import chroma_of_frames
    from v2meow.train.tokenizers import AudioCrops, list_audio

    data = Path(args.data)
    enc, step = load_encoder(Path(args.run))
    sr, rate = enc.sample_rate, enc.frame_rate
    first, second, names = two_crops(list_audio(data, "heldout")[: args.max_tracks], data, sr, 10.0)
    if len(first) < 4:
        raise SystemExit(f"Need held-out tracks of 20 s or more in {data}.")
    stretched = {r: [time_stretch(w, r) for w in first] for r in RATES}
    fit = list(AudioCrops(list_audio(data, "train"), sr).batch(np.random.default_rng([0, 7]), args.fit_crops,
                                                                4 * sr))
    chroma = chroma_of_frames(enc)  # the chroma the tokenizer's chroma option appends
    with torch.no_grad():
        chroma_of = [chroma(w[None])[0].T.numpy() for w in first + second]  # [T, 12] each, unit-sum frames
    onsets = [detect_onsets(w.numpy(), sr) for w in first + second]
    keys = [crop_key(c) for c in chroma_of]
    tracks = list(range(len(first))) * 2
    print(f"encoder: {args.run} step {step}; held-out: {len(first)} tracks x 2 crops of 10 s; k-means fitted on "
          f"{len(fit)} training crops of 4 s; keys found: {len(set(keys))} of 24", flush=True)

    frames_fit = layer_frames(enc, fit)
    frames_a, frames_b = layer_frames(enc, first), layer_frames(enc, second)
    frames_s = {r: layer_frames(enc, ws) for r, ws in stretched.items()}
    n_layers = enc.config.layers + 1
    layers = args.layers if args.layers is not None else list(range(n_layers))
    sources = [(f"layer {i}", i) for i in layers] + [("log-mel + chroma k-means", n_layers)]
    for w in args.with_chroma:  # a layer's frames with the frames' chroma appended, repeated w times
        for i in layers:
            for frames in [frames_fit, frames_a, frames_b, *frames_s.values()]:
                frames.append([torch.cat([f, c[:, -12:].repeat(1, w)], dim=1)
                               for f, c in zip(frames[i], frames[n_layers])])
            sources.append((f"layer {i} + chroma x{w}", len(frames_fit) - 1))

    rows = []
    head = ("| tokens | Hz | vocab | perplexity | used | changes/s | AUC | onset lift | chroma R² | key acc. | "
            "bits/token (uni → bi) | context saves | bits/s | agree ×0.8 / ×1.25 |")
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for pool in args.pool:
        r_tok = rate / pool
        chroma_p = [pooled(torch.from_numpy(c), pool).numpy() for c in chroma_of]
        for vocab in args.vocab:
            for label, li in sources + ([("random tokens", None)] if args.random else []):
                if li is None:
                    g = torch.Generator().manual_seed(vocab)
                    def tok(fs: list[Tensor]) -> list[Tensor]:  # noqa: E306
                        return [torch.randint(0, vocab, (pooled(f, pool).shape[0],), generator=g) for f in fs]
                    fit_t, a, b = tok(frames_fit[0]), tok(frames_a[0]), tok(frames_b[0])
                    s = {r: tok(frames_s[r][0]) for r in RATES}
                else:
                    x = torch.cat([pooled(f, pool) for f in frames_fit[li]])
                    km = KMeans().fit(x.numpy(), vocab, seed=0)
                    def tok(fs: list[Tensor]) -> list[Tensor]:  # noqa: E306
                        return [km.predict(pooled(f, pool)) for f in fs]
                    fit_t, a, b = tok(frames_fit[li]), tok(frames_a[li]), tok(frames_b[li])
                    s = {r: tok(frames_s[r][li]) for r in RATES}
                row = {"tokens": label, "rate": r_tok, "vocab": vocab, **usage(a + b, vocab),
                       **identity_scores(a, b, vocab), **tempo_scores(a, s),
                       "onset_lift": onset_lift(a + b, onsets, r_tok),
                       "chroma_r2": chroma_r2(a, chroma_p[: len(a)], b, chroma_p[len(a):], vocab),
                       "key_accuracy": key_accuracy(a + b, keys, tracks, vocab),
                       **context_scores(fit_t, a + b, vocab, r_tok)}
                rows.append(row)
                print(f"| {label} | {r_tok:g} | {vocab} | {row['perplexity']:.0f} | {row['used']:.0%} | "
                      f"{row['changes_per_second']:.1f} | {row['auc']:.2f} | {row['onset_lift']:.2f} | "
                      f"{row['chroma_r2']:.2f} | {row['key_accuracy']:.0%} | "
                      f"{row['bits_unigram']:.2f} → {row['bits_bigram']:.2f} | {row['context_saves']:.0%} | "
                      f"{row['bits_per_second']:.0f} | {row['x0.8_agree_true']:.2f} / {row['x1.25_agree_true']:.2f} |",
                      flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"run": args.run, "step": step, "tracks": names, "rows": rows},
                                              indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
