"""Which semantic tokens stand for drums playing alone: the ``generation.drum_tokens`` of a model.

Training tracks of the corpus (``data_cache/corpus/scores``; two thirds of them with a drum part) are cut into 2.5 s
stretches labelled by how much of their sound is pitched (:func:`v2meow.metrics.music.harmonic_shares`: drums
alone under 0.10, music over 0.20, the rest left out), and tokenized by the model's semantic tokenizer. A token is
a drum token where it is at least e^``--log-odds`` times as frequent among drums alone as among music. Then, on
held-out works' tracks (and on ``--generated`` soundtracks, if given), every 5 s window (the new part of one
stage-1 window) wholly of one label is classified as stage 1 does: drums alone when at least ``--share`` of its
tokens are drum tokens. Prints the tokens and the windows caught and flagged, and writes them to ``--json``.

    python scripts/drum_tokens.py --model embedded --files 90 --generated runs/collapse/base24 \\
        --json runs/drums/tokens.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STRETCH = 2.5  # seconds per label
WINDOW = 5.0  # seconds of new tokens per stage-1 window


def labelled(model, wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Semantic tokens of ``wav`` and each token's label: 1 drums alone, 0 music, -1 neither."""
    import torch

    from v2meow.metrics.music import DRUMS_ALONE, harmonic_shares

    sr = model.sample_rate
    with torch.inference_mode():
        tok = model.semantic_tokenizer.tokenize(torch.from_numpy(np.asarray(wav, dtype=np.float32))[None])[0].numpy()
    h = harmonic_shares(wav, sr, STRETCH)
    k = int(round(STRETCH * model.semantic_tokenizer.frame_rate))
    lab = np.full(len(tok), -1)
    for i, v in enumerate(h):
        lab[i * k : (i + 1) * k] = 1 if v < DRUMS_ALONE else 0 if v >= 0.2 else -1
    return tok, lab


def windows(model, items, tokens: set[int], share: float) -> dict[str, float]:
    """Stage-1-sized windows wholly of one label, and the share of each kind classified as drums alone."""
    k = int(round(WINDOW * model.semantic_tokenizer.frame_rate))
    caught = drums = flagged = music = 0
    for tok, lab in items:
        for a in range(0, len(tok) - k + 1, k):
            hit = np.isin(tok[a : a + k], list(tokens)).mean() >= share
            if (lab[a : a + k] == 1).all():
                drums, caught = drums + 1, caught + hit
            elif (lab[a : a + k] == 0).all():
                music, flagged = music + 1, flagged + hit
    return {"drum_windows": drums, "caught": caught / max(drums, 1), "music_windows": music,
            "flagged": flagged / max(music, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded")
    p.add_argument("--corpus", default=str(ROOT / "data_cache" / "corpus" / "scores"))
    p.add_argument("--files", type=int, default=90, help="training tracks (and as many held-out ones, at most)")
    p.add_argument("--log-odds", type=float, default=2.0)
    p.add_argument("--share", type=float, default=0.5)
    p.add_argument("--generated", default=None, help="a folder of generated soundtracks (*.wav) to classify too")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import soundfile

    from v2meow.pipeline import V2Meow
    from v2meow.soundtrack import model_path

    model = V2Meow.from_pretrained(model_path(args.model))
    files = json.loads((Path(args.corpus) / "sources.json").read_text())["files"]
    rng = np.random.default_rng(args.seed)

    def sample(heldout: bool) -> list[dict]:
        side = [f for f in files if bool(f.get("heldout")) == heldout]
        drum = [f for f in side if "drums" in f["labels"]["instruments"]]
        plain = [f for f in side if "drums" not in f["labels"]["instruments"]]
        n_d = min(len(drum), args.files * 2 // 3)
        n_p = min(len(plain), args.files - n_d)
        return [drum[i] for i in rng.choice(len(drum), n_d, replace=False)] + \
            [plain[i] for i in rng.choice(len(plain), n_p, replace=False)]

    def read(f: dict) -> np.ndarray:
        wav, sr = soundfile.read(str(Path(args.corpus) / f["path"]), dtype="float32")
        if sr != model.sample_rate:
            raise SystemExit(f"{f['path']} is at {sr} Hz; the model reads {model.sample_rate} Hz.")
        return wav

    train = [labelled(model, read(f)) for f in sample(False)]
    vocab = model.semantic_tokenizer.vocab_size
    counts = np.zeros((2, vocab))
    for tok, lab in train:
        for c in (0, 1):
            np.add.at(counts[c], tok[lab == c], 1)
    prob = (counts + 0.5) / (counts.sum(axis=1, keepdims=True) + 0.5 * vocab)
    log_odds = np.log(prob[1] / prob[0])
    tokens = sorted(int(t) for t in np.nonzero(log_odds > args.log_odds)[0])
    cover = {"drum_frames": float(counts[1, tokens].sum() / max(counts[1].sum(), 1)),
             "music_frames": float(counts[0, tokens].sum() / max(counts[0].sum(), 1))}
    print(f"{len(tokens)} drum tokens: {tokens}")
    print(f"training tracks ({len(train)}): they are {cover['drum_frames']:.1%} of the drums-alone frames and "
          f"{cover['music_frames']:.1%} of the music frames")
    out = {"tokens": tokens, "share": args.share, "log_odds": args.log_odds, "training_cover": cover,
           "training_frames": {"drums": int(counts[1].sum()), "music": int(counts[0].sum())}}
    sets = {"held-out works": [labelled(model, read(f)) for f in sample(True)]}
    if args.generated:
        sets["generated"] = [labelled(model, soundfile.read(str(w), dtype="float32")[0])
                             for w in sorted(Path(args.generated).glob("*.wav"))]
    for name, items in sets.items():
        r = windows(model, items, set(tokens), args.share)
        out[name] = r
        print(f"{name} ({len(items)} tracks): {r['drum_windows']} windows of drums alone, {r['caught']:.0%} caught; "
              f"{r['music_windows']} windows of music, {r['flagged']:.1%} flagged")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
