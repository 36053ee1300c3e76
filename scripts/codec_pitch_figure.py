"""Fine power spectra (1 s windows, 1 Hz) of a held-out work's crop, of an A3 tone and of the low band of a crop
of the held-out source (the game music, where the shipped codec's 50 Hz excess was): the input, the shipped codec
and another codec (a run or a tokenizer directory), to see where each puts the partials.

    python scripts/codec_pitch_figure.py runs/codec_freq/decoder_frequency -o docs/codec-pitch-spectra.png
    python scripts/codec_pitch_figure.py runs/codec_lowmlp/frequency_low_mlp --label "low-band frequency head" \
        -o docs/codec-lowband-spectra.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fine_spectrum(x: torch.Tensor, lo: float, hi: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean power spectrum of 1 s Hann windows (half overlapping) in [lo, hi) Hz, in dB below its peak."""
    x = x[0].numpy()
    frames = [x[i : i + sr] * np.hanning(sr) for i in range(0, len(x) - sr + 1, sr // 2)]
    p = np.mean([np.abs(np.fft.rfft(f)) ** 2 for f in frames], 0)
    f = np.fft.rfftfreq(sr, 1 / sr)
    s = (f >= lo) & (f < hi)
    return f[s], 10 * np.log10(p[s] / p[s].max() + 1e-10)


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.codec import heldout_crops, load_codec
    from v2meow.metrics.sound import harmonic_tone

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("codec", help="the codec to compare with the shipped one: a codec run or a tokenizer directory")
    p.add_argument("--label", default="frequency head")
    p.add_argument("--data", default=str(ROOT / "data_cache" / "corpus"))
    p.add_argument("--crop", type=int, default=3, help="which held-out crop (one 5 s crop per track, 16 tracks)")
    p.add_argument("--source", default=str(ROOT / "data_cache" / "music"), help="the held-out source ('' for none)")
    p.add_argument("--source-crop", type=int, default=0, help="which crop of the source (one per track, 16 tracks)")
    p.add_argument("-o", "--out", default="codec-pitch-spectra.png")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    codecs = {"shipped codec": load_codec(None)[0].eval(), args.label: load_codec(args.codec)[0].eval()}
    sr = next(iter(codecs.values())).sample_rate
    wav, names, _ = heldout_crops(Path(args.data), sr, 1, 5.0, 16, "heldout")
    panels = [(wav[args.crop][None], 40, 700, f"held-out work {names[args.crop]}", []),
              (harmonic_tone(220.0, 3.0, sr)[None], 150, 950, "A3 tone (220 Hz, 4 partials)",
               [220.0 * k for k in (1, 2, 3, 4)])]
    if args.source:
        game, game_names, _ = heldout_crops(Path(args.source), sr, 1, 5.0, 16, "all")
        panels.append((game[args.source_crop][None], 25, 300, f"held-out source {game_names[args.source_crop]}", []))
    fig, ax = plt.subplots(len(panels), 1, figsize=(12, 3.5 * len(panels)))
    for a, (x, lo, hi, title, partials) in zip(ax, panels):
        a.plot(*fine_spectrum(x, lo, hi, sr), "k", lw=1.2, label="input")
        for (name, c), colour in zip(codecs.items(), ("tab:red", "tab:blue")):
            with torch.no_grad():
                y = c.decode(c.encode(x))[:, : x.shape[-1]]
            a.plot(*fine_spectrum(y, lo, hi, sr), colour, lw=0.8, alpha=0.85, label=name)
        for f in partials:
            a.axvline(f, color="gray", ls=":", lw=0.8)
        a.set(xlim=(lo, hi), ylim=(-60, 2), xlabel="Hz", ylabel="dB",
              title=f"{title}: power spectrum, 1 s windows (1 Hz)")
        a.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
