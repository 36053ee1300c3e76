"""Time stretch without a change of pitch: a phase vocoder with identity phase locking and fresh phases at attacks.

The short-time spectrum is read at fractional frame positions ``k * rate`` (magnitudes interpolated between
the two nearest analysis frames) and written at the analysis hop, so the music plays ``rate`` times as fast.
Each output frame's phases are built so that the partials keep their frequencies:

- at each peak of its magnitude spectrum the phase advances from the previous output frame by the peak's
  measured frequency (the analysis phase advance over one hop);
- every other bin takes the phase of the peak whose region it lies in, shifted by the difference of the two bins'
  analysis phases (identity phase locking, Laroche and Dolson 1999): the bins around a partial stay coherent, which
  keeps the "phasiness" of a plain phase vocoder away;
- where the analysis frame's energy rises by ``reset_db`` or more over the previous one (an attack), the output
  frame takes the analysis phases as they are, so drums and note starts keep their shape instead of smearing.

Why not librosa's ``effects.time_stretch``: it locks no phases and resets none (attacks smear, which is what
the stretch is for: beats), and importing librosa costs seconds on every ``generate``.
"""

from __future__ import annotations

import numpy as np

N_FFT = 1024
HOP = 256
RESET_DB = 6.0
BLOCK = 1024  # output frames the vocoder computes at a time (16 s at the default hop and 16 kHz)


def _window(n_fft: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann


def _wrap(x: np.ndarray) -> np.ndarray:
    return (x + np.pi) % (2.0 * np.pi) - np.pi


def _peak_owners(mag: np.ndarray) -> np.ndarray:
    """For each frame of ``mag [T, F]`` and each bin, the index of the local maximum whose region (up to the
    midpoints to the neighbouring maxima) it lies in; a frame without one has its largest bin own all."""
    n, f = mag.shape
    peak = np.zeros((n, f), dtype=bool)
    peak[:, 1:-1] = (mag[:, 1:-1] >= mag[:, :-2]) & (mag[:, 1:-1] > mag[:, 2:])
    none = ~peak.any(axis=1)
    peak[none, np.argmax(mag[none], axis=1)] = True
    idx = np.arange(f)
    left = np.maximum.accumulate(np.where(peak, idx, -1), axis=1)  # the nearest maximum at or below each bin
    right = np.minimum.accumulate(np.where(peak, idx, f)[:, ::-1], axis=1)[:, ::-1]  # at or above
    left = np.where(left < 0, right, left)
    right = np.where(right >= f, left, right)
    return np.where(idx - left < right - idx, left, right)


def time_stretch(wav: np.ndarray, rate: float, n_fft: int = N_FFT, hop: int = HOP,
                 reset_db: float = RESET_DB) -> np.ndarray:
    """``wav [N]`` played ``rate`` times as fast (``rate`` > 1 shortens it) at the same pitch:
    ``round(N / rate)`` samples, float32."""
    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    y = np.asarray(wav, dtype=np.float64).reshape(-1)
    n_out = int(round(y.size / rate))
    if rate == 1.0 or y.size == 0 or n_out == 0:
        return y[:n_out].astype(np.float32)
    frames = int(np.ceil((n_out + n_fft // 2) / hop)) + 1
    return _vocode(y, np.arange(frames) * rate, n_out, n_fft, hop, reset_db)


def time_warp(wav: np.ndarray, out_times: np.ndarray, in_times: np.ndarray, samples: int, sample_rate: int,
              n_fft: int = N_FFT, hop: int = HOP, reset_db: float = RESET_DB) -> np.ndarray:
    """``samples`` samples (float32) in which the moment ``in_times[k]`` (s) of ``wav [N]`` sounds at
    ``out_times[k]``, at the same pitch: time maps linearly between those anchors (both increasing) and with the
    end segments' rates beyond them; past ``wav``'s end its last frame holds."""
    y = np.asarray(wav, dtype=np.float64).reshape(-1)
    t_out, t_in = np.asarray(out_times, dtype=float), np.asarray(in_times, dtype=float)
    if t_out.size < 2 or np.any(np.diff(t_out) <= 0) or np.any(np.diff(t_in) <= 0):
        raise ValueError("a warp needs two or more anchors, increasing in both times")
    if y.size == 0 or samples == 0:
        return np.zeros(samples, np.float32)
    frames = int(np.ceil((samples + n_fft // 2) / hop)) + 1
    at = np.arange(frames) * hop / sample_rate  # each output frame's centre, s
    first = (t_in[1] - t_in[0]) / (t_out[1] - t_out[0])
    last = (t_in[-1] - t_in[-2]) / (t_out[-1] - t_out[-2])
    src = np.interp(at, t_out, t_in)
    src = np.where(at < t_out[0], t_in[0] + (at - t_out[0]) * first, src)
    src = np.where(at > t_out[-1], t_in[-1] + (at - t_out[-1]) * last, src)
    return _vocode(y, np.maximum(src, 0.0) * sample_rate / hop, samples, n_fft, hop, reset_db)


def _vocode(y: np.ndarray, pos: np.ndarray, n_out: int, n_fft: int, hop: int, reset_db: float) -> np.ndarray:
    """The phase vocoder: output frame ``t`` (at ``t * hop``) reads the analysis spectrum at fractional frame
    ``pos[t]`` (non-decreasing); ``n_out`` samples. It runs in blocks of :data:`BLOCK` output frames, each computing
    only the analysis frames it reads, so memory stays flat with length."""
    window = _window(n_fft)
    pad = n_fft // 2
    step = n_fft // hop  # frames this far apart do not overlap
    yp = np.pad(y, (pad, pad + n_fft + hop))
    frames = np.lib.stride_tricks.sliding_window_view(yp, n_fft)[::hop]
    n_frames = frames.shape[0]
    expected = 2.0 * np.pi * hop * np.arange(n_fft // 2 + 1) / n_fft  # each bin's phase advance over one hop
    pos = np.minimum(pos, n_frames - 2)
    a = pos.astype(int)
    w = pos - a
    out_frames = pos.size
    length = hop * (out_frames - 1) + n_fft
    buf = np.zeros(length + n_fft)
    norm = np.zeros(length + n_fft)
    energy_db = np.zeros(n_frames)  # each analysis frame's, filled as the blocks read them
    acc = np.angle(np.fft.rfft(frames[0] * window))
    for t0 in range(0, out_frames, BLOCK):
        t1 = min(out_frames, t0 + BLOCK)
        lo = a[t0 - 1] if t0 else a[0]  # from the last block's last frame on: the attack test looks back to it
        hi = a[t1 - 1] + 2
        spec = np.fft.rfft(frames[lo:hi] * window, axis=-1)
        mag, phase = np.abs(spec), np.angle(spec)
        energy_db[lo:hi] = 10.0 * np.log10(np.sum(mag**2, axis=-1) + 1e-12)
        k = a[t0:t1] - lo
        m = w[t0:t1, None]
        mags = (1.0 - m) * mag[k] + m * mag[k + 1]
        owner = _peak_owners(mags)
        relative = phase[k] - phase[k][np.arange(t1 - t0)[:, None], owner]  # each bin's phase from its peak's
        advance = expected + _wrap(phase[k + 1] - phase[k] - expected)  # each bin's measured advance
        # an attack (reset_db more energy than the frame before) since the previous output frame's analysis frame
        attack = np.concatenate([[False], np.diff(energy_db[lo:hi]) >= reset_db])
        crossed = np.concatenate([[0], np.cumsum(attack)])
        before = np.concatenate([[a[t0 - 1] - lo if t0 else k[0]], k[:-1]])  # the first frame: none before it
        fresh = crossed[k + 1] > crossed[before + 1]
        phases = np.empty_like(mags)
        for i in range(t1 - t0):
            acc = phase[k[i]].copy() if fresh[i] else acc[owner[i]] + relative[i]
            phases[i] = acc
            acc = acc + advance[i]
        chunks = np.fft.irfft(mags * np.exp(1j * phases), n=n_fft, axis=-1) * window
        for j in range(min(step, t1 - t0)):  # overlap-add, frames a whole window apart laid end to end
            at = (t0 + j) * hop
            part = chunks[j::step]
            buf[at : at + part.size] += part.reshape(-1)
            norm[at : at + part.size] += np.tile(window**2, part.shape[0])
    buf /= np.maximum(norm, 1e-3)
    out_wav = buf[pad : pad + n_out]
    return np.pad(out_wav, (0, n_out - out_wav.size)).astype(np.float32)
