"""Spectrograms (linear frequency, up to 1.25 kHz) of generated music rendered by two codec decoders from the same
tokens: those `scripts/decoder_beats.py` kept, clip by clip, one row per decoder.

    python scripts/decoder_figure.py runs/decoder_beats/tokens --codecs OLD NEW --clips 0 7 -o docs/fig.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

TOP_HZ = 1250.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tokens", help="a folder of .npy codes written by scripts/decoder_beats.py")
    p.add_argument("--codecs", nargs=2, required=True, metavar=("FIRST", "SECOND"),
                   help="tokenizer directories or codec runs ('shipped': the package's)")
    p.add_argument("--labels", nargs=2, default=None)
    p.add_argument("--clips", nargs="+", type=int, default=[0, 1])
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("-o", "--out", required=True)
    args = p.parse_args(argv)

    import matplotlib
    import torch

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from decoder_beats import render

    from bench.codec import load_codec
    from v2meow.pipeline import V2Meow

    model = V2Meow.from_pretrained("embedded")
    files = sorted(Path(args.tokens).glob("*.npy"))
    codecs = [load_codec(None if c == "shipped" else c)[0].eval() for c in args.codecs]
    labels = args.labels or args.codecs
    sr = model.sample_rate
    n = int(args.seconds * sr)
    fig, axes = plt.subplots(len(codecs), len(args.clips), figsize=(5.5 * len(args.clips), 2.6 * len(codecs)),
                             squeeze=False, sharey=True)
    for j, clip in enumerate(args.clips):
        codes = np.load(files[clip], allow_pickle=False).astype(np.int64)
        for i, (codec, label) in enumerate(zip(codecs, labels)):
            with torch.inference_mode():
                wav = render(model, codec, codes)[:n]
            spec = np.abs(np.fft.rfft(np.lib.stride_tricks.sliding_window_view(wav, 2048)[::160] * np.hanning(2048)))
            f = np.fft.rfftfreq(2048, 1 / sr)
            keep = f <= TOP_HZ
            db = 20 * np.log10(spec[:, keep].T + 1e-6)
            ax = axes[i, j]
            ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=db.max() - 70, vmax=db.max(),
                      extent=(0, len(wav) / sr, 0, f[keep][-1]))
            ax.set_title(f"{files[clip].stem}: {label}", fontsize=9)
            ax.set_ylabel("Hz")
    for ax in axes[-1]:
        ax.set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
