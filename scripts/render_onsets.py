"""How two renders of the same music differ for the beat tracker: per clip, the onset envelope that
``librosa.beat.beat_track`` reads (positive dB flux of a 128-band mel spectrogram, 22050 Hz, hop 512), split below
and above 300 Hz, its correlation between the two renders, and the tracker's tempo on each. For two `evaluate`
folders of one model's tokens rendered by two decoders (``--candidates 1``: the same tokens).

    python scripts/render_onsets.py runs/gate_low/one_shipped_a/evaluate_trained/audio \
        runs/gate_low/one_reset6_a/evaluate_trained/audio
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOW_HZ = 300.0


def flux(y: np.ndarray) -> np.ndarray:
    import librosa

    from v2meow.metrics.beats import BEAT_SAMPLE_RATE, HOP_LENGTH

    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=BEAT_SAMPLE_RATE, hop_length=HOP_LENGTH))
    return np.maximum(0.0, np.diff(mel, axis=1))  # [128, T - 1]


def main(argv: list[str] | None = None) -> int:
    import librosa
    import soundfile as sf

    from v2meow.metrics.beats import BEAT_SAMPLE_RATE, HOP_LENGTH, to_beat_audio

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("first")
    p.add_argument("second")
    args = p.parse_args(argv)
    names = sorted(f.name for f in Path(args.first).glob("*.wav"))
    low = librosa.mel_frequencies(128, fmax=BEAT_SAMPLE_RATE / 2) < LOW_HZ
    rows = []
    for name in names:
        ys = []
        for folder in (args.first, args.second):  # as the evaluation's beat tracker reads it
            y, sr = sf.read(Path(folder) / name, dtype="float32", always_2d=True)
            ys.append(to_beat_audio(y.T, sr))
        fa, fb = flux(ys[0]), flux(ys[1])
        tempo = [float(np.atleast_1d(librosa.beat.beat_track(y=y, sr=BEAT_SAMPLE_RATE, hop_length=HOP_LENGTH)[0])[0])
                 for y in ys]
        rows.append([fa[low].mean(), fb[low].mean(), fa[~low].mean(), fb[~low].mean(),
                     np.corrcoef(fa[low].mean(0), fb[low].mean(0))[0, 1], np.corrcoef(fa.mean(0), fb.mean(0))[0, 1],
                     abs(tempo[0] - tempo[1]) < 1.0])
    r = np.array(rows, dtype=float)
    print(f"{len(r)} clips. Onset flux below {LOW_HZ:g} Hz: {r[:, 0].mean():.3f} / {r[:, 1].mean():.3f} dB a frame; "
          f"above: {r[:, 2].mean():.3f} / {r[:, 3].mean():.3f}. Correlation of the two onset envelopes: "
          f"{r[:, 4].mean():.2f} below, {r[:, 5].mean():.2f} over all bands. Same tempo on {int(r[:, 6].sum())} clips.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
