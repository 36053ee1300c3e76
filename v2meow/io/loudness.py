"""Integrated loudness of a mono signal, ITU-R BS.1770-4, with numpy alone.

``generate`` brings every soundtrack to one loudness, so this runs once per call; written here so that it does not
import ``scipy.signal`` (about a second of every process start on a laptop). The measurement:

1. K-weighting: a high shelf (+4 dB above about 1.5 kHz, the head's effect) followed by a high pass (the RLB
   curve, about 38 Hz), each a second-order section designed for the signal's own rate from its analogue
   prototype (gain, centre frequency, Q), as the standard's 48 kHz coefficients are.
2. Mean square of the weighted signal in 400 ms blocks every 100 ms.
3. Blocks below -70 LUFS are dropped, then blocks more than 10 LU below the mean of the rest.
4. Loudness = -0.691 + 10 log10(mean square of the blocks kept).

The filters are applied in the frequency domain (their full complex response, so phase is kept), block by block
with the blocks' tails overlap-added: the same output as running the two recursions over the signal, up to the
impulse responses' tails, which decay within a few milliseconds and are given a quarter of a second to die out in.
"""

from __future__ import annotations

import math

import numpy as np

BLOCK_SECONDS = 0.4
STEP_SECONDS = 0.1
ABSOLUTE_GATE = -70.0  # LUFS
RELATIVE_GATE = -10.0  # LU below the absolutely gated mean
OFFSET = -0.691  # dB: a full-scale 997 Hz sine reads about -3 LUFS
TAIL_SECONDS = 0.25
BLOCK_FFT = 1 << 18  # samples filtered per FFT (16 s at 16 kHz)

# (kind, gain dB, centre Hz, Q) of the two K-weighting sections
SECTIONS = (("shelf", 4.0, 1500.0, 1.0 / math.sqrt(2.0)), ("highpass", 0.0, 38.0, 0.5))


def _section(kind: str, gain_db: float, fc: float, q: float, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Numerator and denominator ``[3]`` of one biquad at ``rate`` (bilinear transform of its prototype)."""
    w = 2.0 * math.pi * fc / rate
    cos_w, alpha = math.cos(w), math.sin(w) / (2.0 * q)
    if kind == "shelf":
        a = 10.0 ** (gain_db / 40.0)
        root = 2.0 * math.sqrt(a) * alpha
        b = [a * ((a + 1) + (a - 1) * cos_w + root), -2 * a * ((a - 1) + (a + 1) * cos_w),
             a * ((a + 1) + (a - 1) * cos_w - root)]
        den = [(a + 1) - (a - 1) * cos_w + root, 2 * ((a - 1) - (a + 1) * cos_w), (a + 1) - (a - 1) * cos_w - root]
    else:
        b = [(1 + cos_w) / 2, -(1 + cos_w), (1 + cos_w) / 2]
        den = [1 + alpha, -2 * cos_w, 1 - alpha]
    return np.asarray(b) / den[0], np.asarray(den) / den[0]


def k_weighting_response(rate: int, n_fft: int) -> np.ndarray:
    """The K-weighting filter's complex response at the ``n_fft // 2 + 1`` bins of a real FFT of size ``n_fft``."""
    z = np.exp(-1j * np.linspace(0.0, math.pi, n_fft // 2 + 1))  # e^{-jω}
    h = np.ones_like(z)
    for kind, gain, fc, q in SECTIONS:
        b, a = _section(kind, gain, fc, q, rate)
        h *= (b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z)
    return h


def k_weight(wav: np.ndarray, rate: int) -> np.ndarray:
    """``wav [N]`` through the K-weighting filter (causal, as the recursions would give it). Long signals go in
    blocks of about ``BLOCK_FFT`` samples, their tails overlap-added, so memory stays a few MB at any length."""
    wav = np.asarray(wav, dtype=np.float64)
    tail = int(TAIL_SECONDS * rate)
    n_fft = 1 << max(1, (min(len(wav), BLOCK_FFT) + tail - 1).bit_length())
    hop = n_fft - tail  # each block and its filtered tail fit one FFT
    response = k_weighting_response(rate, n_fft)
    out = np.zeros(len(wav) + n_fft)
    for start in range(0, len(wav), hop):
        out[start: start + n_fft] += np.fft.irfft(np.fft.rfft(wav[start: start + hop], n_fft) * response, n_fft)
    return out[: len(wav)]


def integrated_loudness(wav: np.ndarray, rate: int) -> float:
    """Gated integrated loudness of mono ``wav [N]`` in LUFS; ``-inf`` when shorter than one block or when every
    block is below the absolute gate."""
    block, step = int(BLOCK_SECONDS * rate), int(round(STEP_SECONDS * rate))
    if len(wav) < block:
        return -math.inf
    power = k_weight(wav, rate)
    np.square(power, out=power)
    cum = np.concatenate([[0.0], np.cumsum(power)])
    starts = np.arange(0, len(wav) - block + 1, step)
    z = (cum[starts + block] - cum[starts]) / block  # mean square per block
    with np.errstate(divide="ignore"):
        lk = OFFSET + 10.0 * np.log10(z)
    kept = z[lk >= ABSOLUTE_GATE]
    if kept.size == 0:
        return -math.inf
    gate = OFFSET + 10.0 * math.log10(kept.mean()) + RELATIVE_GATE
    kept = z[(lk >= ABSOLUTE_GATE) & (lk > gate)]
    return OFFSET + 10.0 * math.log10(kept.mean()) if kept.size else -math.inf
