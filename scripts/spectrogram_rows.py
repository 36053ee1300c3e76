"""Log-frequency spectrograms of several soundtracks, one row each, on one time axis: a figure for the docs.

Each row is ``LABEL=FILE`` (a WAV, FLAC or a video's audio); every row is read at 16 kHz, mono, over the same
stretch (``--start``, ``--seconds``) and drawn on one dB scale (0 dB: the loudest bin of all rows).

    python scripts/spectrogram_rows.py docs/x.png "video's music=a.mp4" "shipped=b.wav" "candidate=c.wav" \\
        --seconds 120 --title score0458
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SR = 16000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="the PNG to write")
    p.add_argument("rows", nargs="+", help="LABEL=FILE, one per row")
    p.add_argument("--start", type=float, default=0.0)
    p.add_argument("--seconds", type=float, default=None, help="default: the shortest row")
    p.add_argument("--title", default="")
    p.add_argument("--fmax", type=float, default=4000.0)
    args = p.parse_args(argv)
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from v2meow.io.audio import load_audio

    rows = []
    for r in args.rows:
        label, sep, path = r.partition("=")
        if not sep or not Path(path).is_file():
            print(f"error: a row must be LABEL=FILE of an existing file, got {r!r}.", file=sys.stderr)
            return 2
        wav = np.asarray(load_audio(path, sample_rate=SR, start=args.start, duration=args.seconds), np.float32)
        rows.append((label, wav.reshape(-1)))
    n = min(len(w) for _, w in rows)
    specs = [librosa.amplitude_to_db(np.abs(librosa.stft(w[:n], n_fft=2048, hop_length=256)) + 1e-9) for _, w in rows]
    top = max(float(s.max()) for s in specs)
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 2.2 * len(rows)), sharex=True, squeeze=False)
    for ax, (label, _), s in zip(axes[:, 0], rows, specs):
        librosa.display.specshow(s - top, sr=SR, hop_length=256, x_axis="time", y_axis="log", ax=ax, vmin=-80, vmax=0,
                                 cmap="magma")
        ax.set_ylim(32, args.fmax)
        ax.set_title(label, fontsize=9, loc="left")
        ax.set_xlabel("")
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
