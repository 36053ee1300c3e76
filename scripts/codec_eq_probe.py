"""Is the codec's distance from the random-phase reference a fixed level bias per frequency? A probe.

    python scripts/codec_eq_probe.py [--levels 4] [--tracks 40]

The codec's output is quieter than its input above 1 kHz (octave-band error, ``bench.codec``). This measures
whether that is a bias a fixed equaliser would remove: it calibrates a smooth gain curve (third-octave mean of
the input-over-output power ratio, clipped to ±6 dB) on crops of the corpus's training works, applies it to the
codec's round trip of the game music (``data_cache/music``, a source the codec never heard), and prints the
multi-scale STFT distance with and without it beside the random-phase reference, paired crop by crop, with the
octave-band errors.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
N_FFT = 2048


def round_trip(codec, wav: torch.Tensor, levels: int) -> torch.Tensor:
    outs = []
    with torch.no_grad():
        for i in range(0, len(wav), 8):
            x = wav[i : i + 8]
            outs.append(codec.decode(codec.encode(x)[:, :levels])[..., : x.shape[-1]].reshape(x.shape[0], -1))
    return torch.cat(outs)


def mean_power(wav: torch.Tensor) -> torch.Tensor:
    spec = torch.stft(wav, N_FFT, N_FFT // 4, window=torch.hann_window(N_FFT), return_complex=True)
    return (spec.abs() ** 2).mean((0, 2))


def third_octave_mean(db: np.ndarray, sr: int) -> np.ndarray:
    f = np.arange(len(db)) * sr / N_FFT
    lo = np.where(f < 20, 0.0, f * 2 ** (-1 / 6))
    hi = np.where(f < 20, 20.0, f * 2 ** (1 / 6))
    return np.array([db[(f >= a) & (f <= b)].mean() for a, b in zip(lo, hi)])


def equalise(wav: torch.Tensor, gain_db: np.ndarray) -> torch.Tensor:
    window = torch.hann_window(N_FFT)
    spec = torch.stft(wav, N_FFT, N_FFT // 4, window=window, return_complex=True)
    gain = torch.from_numpy(10 ** (gain_db / 20)).float()[None, :, None]
    return torch.istft(spec * gain, N_FFT, N_FFT // 4, window=window, length=wav.shape[-1])


def training_crops(folder: Path, sr: int, tracks: int) -> torch.Tensor:
    from v2meow.io.audio import load_audio

    n = 5 * sr
    files = [p.with_suffix(".flac") for p in sorted(folder.glob("*.json"))
             if not json.loads(p.read_text()).get("heldout", True) and p.with_suffix(".flac").is_file()][:tracks]
    crops = []
    for f in files:
        wav = load_audio(f, sr)
        for i in (1, 2):
            start = round(i / 3 * (len(wav) - n))
            if len(wav) >= n and np.sqrt(np.mean(wav[start : start + n] ** 2)) > 1e-3:
                crops.append(torch.from_numpy(wav[start : start + n].copy()))
    return torch.stack(crops)


def main(argv: list[str] | None = None) -> int:
    from bench.codec import heldout_crops, load_codec, random_phase
    from v2meow.metrics.sound import msstft_l1, octave_band_db

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--levels", type=int, default=4)
    p.add_argument("--tracks", type=int, default=40, help="training works to calibrate on (2 crops of 5 s each)")
    p.add_argument("--model", default=None, help="tokenizer directory (default: the shipped one)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    codec, _ = load_codec(args.model)
    sr = codec.sample_rate
    cal = training_crops(ROOT / "data_cache" / "corpus" / "scores", sr, args.tracks)
    ratio = 10 * np.log10((mean_power(cal) / mean_power(round_trip(codec, cal, args.levels)).clamp_min(1e-12)).numpy())
    gain_db = np.clip(third_octave_mean(ratio, sr), -6, 6)
    f = np.arange(len(gain_db)) * sr / N_FFT
    print(f"{len(cal)} calibration crops; gain (dB) at "
          + ", ".join(f"{x} Hz {gain_db[np.argmin(abs(f - x))]:+.1f}" for x in (60, 250, 1000, 2000, 4000, 7000)))
    ref, _, _ = heldout_crops(ROOT / "data_cache" / "music", sr, 2, 5.0, max_tracks=24)
    out = round_trip(codec, ref, args.levels)
    rows = {"codec": out, "codec + equaliser": equalise(out, gain_db), "random phase": random_phase(ref)}
    dist = {k: msstft_l1(v, ref) for k, v in rows.items()}
    for k, d in dist.items():
        bands = (octave_band_db(rows[k], sr) - octave_band_db(ref, sr)).mean(0).numpy()
        print(f"game music, {k}: MS-STFT {d.mean():.3f} ({d.mean() / dist['random phase'].mean():.3f} x random phase); "
              f"octave bands (dB) {' '.join(f'{b:+.1f}' for b in bands)}")
    diff = dist["codec + equaliser"] - dist["codec"]
    print(f"paired, with minus without the equaliser: {diff.mean():+.3f} ± {diff.std() / math.sqrt(len(diff)):.3f} "
          f"({len(diff)} crops)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
