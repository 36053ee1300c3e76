"""Where a codec's pitch error comes from: the strongest output partial near each of a few bass and middle tones'
fundamentals, and an oracle that gives the decoder's own magnitudes the input's true instantaneous frequencies
(peak-locked integration), beside the learned phase and random phase, on held-out works and the game music.

    python scripts/codec_phase_oracle.py                # the shipped codec
    python scripts/codec_phase_oracle.py --model runs/codec_freq/decoder_frequency
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def true_advance(codec, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The input's STFT in the codec's frames and each bin's observed phase turn per frame (radians)."""
    from v2meow.tokenizers.codec.spectral import observed_deviation, stft_same

    dec = codec.decoder
    spec = stft_same(wav, dec.n_fft, dec.hop, dec.window)
    k = torch.arange(spec.shape[1])[None, :, None]
    turn = 2 * math.pi * k * dec.hop / dec.n_fft + observed_deviation(spec, dec.n_fft, dec.hop)
    return spec, torch.cat([turn[:, :, :1], turn], 2)


@torch.no_grad()
def variants(codec, wav: torch.Tensor) -> dict[str, torch.Tensor]:
    from v2meow.tokenizers.codec.spectral import across_bins, floored_log_mag, locked_phase

    dec = codec.decoder
    w = F.pad(wav, (0, -wav.shape[-1] % dec.hop))
    mag, phase = dec.spectrum(codec.quantizer.decode(codec.encode(w)))
    spec, turn = true_advance(codec, w)

    def with_true_frequencies(m: torch.Tensor) -> torch.Tensor:
        log_mag = floored_log_mag(m)
        return dec.waveform(m, locked_phase(log_mag, turn, across_bins(log_mag, dec.n_fft, dec.hop)))

    out = {"codec (its own phase)": dec.waveform(mag, phase),
           "decoded magnitudes + true frequencies": with_true_frequencies(mag),
           "exact magnitudes + true frequencies": with_true_frequencies(spec.abs())}
    return {k: v[:, : wav.shape[-1]] for k, v in out.items()}


def strongest_near(x: np.ndarray, f0: float, sr: int) -> float:
    n = 8 * len(x)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    f = np.fft.rfftfreq(n, 1 / sr)
    s = (f > 0.7 * f0) & (f < 1.3 * f0)
    return float(f[s][np.argmax(spec[s])])


def main(argv: list[str] | None = None) -> int:
    from bench.codec import Scores, heldout_crops, load_codec, random_phase
    from v2meow.metrics.sound import harmonic_tone

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a codec run or tokenizer directory (default: the shipped codec)")
    p.add_argument("--data", default=str(ROOT / "data_cache" / "corpus"))
    p.add_argument("--source", default=str(ROOT / "data_cache" / "music"))
    p.add_argument("--tracks", type=int, default=16)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    codec, _ = load_codec(args.model)
    codec.eval()
    sr = codec.sample_rate
    print("| tone | strongest output partial near the fundamental, Hz |\n|---|---|")
    for f0 in (41.2, 55.0, 82.4, 110.0, 220.0, 440.0):
        x = harmonic_tone(f0, 3.0, sr)[None]
        with torch.no_grad():
            y = codec.decode(codec.encode(x))[0, sr : 2 * sr].numpy()
        print(f"| {f0:g} Hz | {strongest_near(y, f0, sr):.1f} |")
    for label, folder, split in (("held-out works", args.data, "heldout"), ("held-out source", args.source, "all")):
        if not Path(folder).is_dir():
            continue
        wav, _, _ = heldout_crops(Path(folder), sr, 1, 5.0, args.tracks, split)
        scores = Scores(sr)
        for s in range(0, wav.shape[0], 8):
            ref = wav[s : s + 8]
            for name, y in variants(codec, ref).items():
                scores.update(name, y, ref)
            scores.update("exact STFT magnitude, random phase", random_phase(ref, seed=s), ref)
        print(f"\n### {label}: {wav.shape[0]} crops of 5 s\n")
        print("| reconstruction | MS-STFT | fine dB | hum × in |\n|---|---|---|---|")
        for name in scores.rows:
            r = scores.summary(name)
            print(f"| {name} | {r['stft']:.2f} | {r['fine_db']:.2f} | {r['hum_ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
