"""A look-ahead peak limiter: brings a waveform's peaks under a ceiling with smooth gain changes.

The gain at each sample is the mean, over a ramp of ``ramp`` samples, of a held minimum of the gain each
sample needs (``ceiling / |x|`` where ``|x|`` passes the ceiling, else 1). Every sample that enters that mean
is a minimum over a window that contains the sample itself, so no output sample passes the ceiling, and the
gain falls over one ramp before a peak (the look-ahead), holds ``hold`` samples after it and comes back over
one ramp. All of it is sliding minima and cumulative sums: linear in the length, no per-sample Python loop.
"""

from __future__ import annotations

import numpy as np


def sliding_min(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """``out[n] = min(x[n - before : n + after + 1])``, the window cut at both ends (van Herk / Gil-Werman)."""
    x = np.asarray(x)
    n, width = len(x), before + after + 1
    if n == 0 or width == 1:
        return x.copy()
    # window [n - before, n + after] = window of width `width` ending at n + after
    padded = np.concatenate([np.full(before, np.inf), x, np.full(after + (-(n + width - 1)) % width, np.inf)])
    blocks = padded.reshape(-1, width)
    prefix = np.minimum.accumulate(blocks, axis=1).ravel()
    suffix = np.minimum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    # the window of out[n] is padded[n : n + width]: the suffix minimum from its start, the prefix one to its end
    return np.minimum(suffix[:n], prefix[width - 1: width - 1 + n]).astype(x.dtype, copy=False)


def limiter_gain(wav: np.ndarray, ceiling: float, ramp: int, hold: int) -> np.ndarray:
    """The gain ``[N]`` (in (0, 1]) that keeps ``|wav * gain| <= ceiling`` (see the module docstring)."""
    mag = np.abs(np.asarray(wav, dtype=np.float64))
    need = np.minimum(1.0, ceiling / np.maximum(mag, 1e-30))
    if need.min() >= 1.0:
        return np.ones(len(mag))
    ramp = max(1, int(ramp))
    held = sliding_min(need, ramp - 1 + int(hold), 0)  # the hold looks back: the gain stays down after a peak
    # mean of held[n : n + ramp]; past the end, the last value (whose window still holds n)
    tail = np.concatenate([held, np.full(ramp - 1, held[-1])])
    sums = np.concatenate([[0.0], np.cumsum(tail)])
    return (sums[ramp:] - sums[:-ramp]) / ramp


def limit_peaks(wav: np.ndarray, ceiling: float, sample_rate: int, ramp_ms: float = 10.0,
                hold_ms: float = 40.0) -> np.ndarray:
    """``wav [N]`` with every peak above ``ceiling`` brought down to it: the gain ramps over ``ramp_ms`` before a
    peak and back after it, holding ``hold_ms`` in between."""
    wav = np.asarray(wav, dtype=np.float32)
    gain = limiter_gain(wav, ceiling, round(ramp_ms * sample_rate / 1000), round(hold_ms * sample_rate / 1000))
    # the mean of gains that each keep the sample under the ceiling keeps it there too; the clip only absorbs
    # float rounding
    return np.clip(wav * gain.astype(np.float32), -ceiling, ceiling)


FILE_CEILING = 10.0 ** (-0.1 / 20.0)  # -0.1 dBFS: a decoded peak written to a 16-bit file stays under full scale


def under_full_scale(wav: np.ndarray, sample_rate: int, ceiling: float = FILE_CEILING) -> np.ndarray:
    """``wav [N]`` as v2meow writes decoded audio: unchanged where no sample passes ``ceiling``, else with its peaks
    brought under it by :func:`limit_peaks` instead of clipped at full scale when the file is written. (A lossy
    reconstruction of music mastered to 0 dBFS overshoots it here and there.)"""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.size == 0 or float(np.max(np.abs(wav))) <= ceiling:
        return wav
    return limit_peaks(wav, ceiling, sample_rate)
