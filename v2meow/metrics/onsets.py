"""librosa's onset detection (``librosa.onset.onset_detect`` with its default spectral-flux envelope) in numpy.

The same steps and the same numbers: a centred STFT (2048-point periodic Hann window, zero padding), its power
through a 128-band Slaney mel filterbank up to Nyquist, in dB (floor 1e-10, top 80 dB), the mean positive
difference to the previous frame, shifted by three frames, scaled to [0, 1], and librosa's peak picker. Why not
librosa itself: its first onset detection in a process imports ``scipy.signal`` and loads numba code, about 3 s,
which every ``generate --candidates N`` would pay. ``tests/metrics/test_onsets.py`` checks that both give the
same onsets.
"""

from __future__ import annotations

import numpy as np

from v2meow.tokenizers.mel import mel_filterbank

N_FFT = 2048
N_MELS = 128


ENVELOPE_BLOCK = 2048  # frames of spectrum at a time (47 s at the beat tracker's rate; 3 min took 240 MB at once)


def onset_envelope(y: np.ndarray, sr: int, hop_length: int, median: bool = False) -> np.ndarray:
    """The spectral-flux onset strength ``[frames]`` (float32) of mono float32 ``y``: the mean over mel bands, or with
    ``median`` their median (what ``librosa.beat.beat_track`` reads its tempo from)."""
    y = np.asarray(y, dtype=np.float32)
    pad = N_FFT // 2
    yp = np.pad(y, (pad, pad))
    n_frames = 1 + (len(yp) - N_FFT) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(yp, N_FFT)[::hop_length][:n_frames]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    bank = mel_filterbank(sr, N_FFT, N_MELS)
    blocks = []
    for a in range(0, n_frames, ENVELOPE_BLOCK):  # the spectrum a block of frames at a time: flat memory with length
        spec = np.fft.rfft(frames[a : a + ENVELOPE_BLOCK] * window, axis=-1).astype(np.complex64)  # [T, F]
        power = (np.abs(spec) ** 2).astype(np.float32)
        mel = np.einsum("tf,mf->mt", power, bank, optimize=True)  # [M, T]
        blocks.append(10.0 * np.log10(np.maximum(1e-10, mel)))
    db = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
    db = np.maximum(db, db.max() - 80.0)
    rise = np.maximum(0.0, db[:, 1:] - db[:, :-1])
    flux = np.median(rise, axis=0) if median else rise.mean(axis=0)
    env = np.pad(flux, (1 + N_FFT // (2 * hop_length), 0))[: db.shape[1]]
    return env.astype(np.float32)


def peak_pick(x: np.ndarray, pre_max: int, post_max: int, pre_avg: int, post_avg: int, delta: float,
              wait: int) -> np.ndarray:
    """Indices of the peaks of ``x`` as ``librosa.util.peak_pick`` finds them (the same walk, frame by frame)."""
    n_x = x.shape[0]
    delta = np.float32(delta)
    peaks = np.zeros(n_x, dtype=bool)
    if n_x == 0:
        return np.zeros(0, dtype=np.int64)
    peaks[0] = x[0] >= np.max(x[: min(post_max, n_x)]) and x[0] >= np.mean(x[: min(post_avg, n_x)]) + delta
    n = wait + 1 if peaks[0] else 1
    while n < n_x:
        if x[n] != np.max(x[max(0, n - pre_max): min(n + post_max, n_x)]):
            n += 1
            continue
        if not x[n] >= np.mean(x[max(0, n - pre_avg): min(n + post_avg, n_x)]) + delta:
            n += 1
            continue
        peaks[n] = True
        n += wait + 1
    return np.flatnonzero(peaks)


def onset_times(y: np.ndarray, sr: int, hop_length: int, window: int, wait: int, delta: float) -> np.ndarray:
    """Onset times in seconds of mono float32 ``y``: ``librosa.onset.onset_detect(y=y, sr=sr, hop_length=hop_length,
    units="time", wait=wait, delta=delta, pre_avg=window, post_avg=window, pre_max=window, post_max=window)``."""
    env = onset_envelope(y, sr, hop_length)
    env = env - env.min()
    env /= env.max() + np.finfo(env.dtype).tiny
    if not env.any() or not np.isfinite(env).all():
        return np.zeros(0)
    idx = peak_pick(env, window, window, window, window, delta, wait)
    return idx * hop_length / float(sr)


def envelope_tempo(env: np.ndarray, sr: int, hop_length: int, start_bpm: float = 120.0, std_octaves: float = 1.0,
                   max_bpm: float = 320.0, ac_seconds: float = 8.0) -> float | None:
    """The global tempo (BPM) of onset envelope ``env`` as ``librosa.feature.tempo`` estimates it: the mean of an
    autocorrelation tempogram (``ac_seconds`` Hann windows, centred with linear ramps, each window's autocorrelation
    scaled to a peak of 1), weighted by a log-normal prior around ``start_bpm`` (``std_octaves`` wide), its
    strongest lag under ``max_bpm``. None when the envelope is empty."""
    env = np.asarray(env, dtype=np.float64).reshape(-1)
    if env.size == 0:
        return None
    win = max(1, int(ac_seconds * sr / hop_length))
    half = win // 2
    padded = np.pad(env, (half, win - half - 1 + (win % 2 == 0)), mode="linear_ramp", end_values=0.0)
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[: env.size]  # [T, win], one per envelope frame
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)  # periodic Hann
    n_fft = 1 << int(np.ceil(np.log2(2 * win - 1)))
    spec = np.fft.rfft(frames * window, n=n_fft, axis=-1)
    ac = np.fft.irfft(np.abs(spec) ** 2, n=n_fft, axis=-1)[:, :win]
    peak = np.abs(ac).max(axis=-1, keepdims=True)
    ac = np.divide(ac, peak, out=np.zeros_like(ac), where=peak > np.finfo(np.float64).tiny)
    tg = ac.mean(axis=0)
    lags = np.arange(win, dtype=np.float64)
    with np.errstate(divide="ignore"):
        bpms = 60.0 * sr / (hop_length * lags)
        logprior = -0.5 * ((np.log2(bpms) - np.log2(start_bpm)) / std_octaves) ** 2
    logprior[bpms >= max_bpm] = -np.inf
    return float(bpms[int(np.argmax(np.log1p(1e6 * tg) + logprior))])


def track_pulse(env: np.ndarray, period: float, tightness: float = 100.0) -> np.ndarray:
    """Beat frames of onset envelope ``env`` on a pulse of about ``period`` frames, by dynamic programming as
    ``librosa.beat.beat_track`` places them (Ellis 2007): the envelope (over its standard deviation) smoothed by a
    Gaussian of a 32nd of the period; each frame's best chain of beats ending there, an interval of half to twice
    the period costing ``tightness`` times its squared log-ratio to the period; the chain from the last strong
    frame (a local maximum of the chain score of at least half their median) back; beats at either end weaker than
    half the smoothed envelope's RMS dropped. Empty for a silent envelope."""
    env = np.asarray(env, dtype=np.float64).reshape(-1)
    if env.size < 2 or period <= 1 or not np.any(env > 0):
        return np.zeros(0, dtype=int)
    taps = np.arange(-int(period), int(period) + 1)
    local = np.convolve(env / env.std(ddof=1), np.exp(-0.5 * (taps * 32.0 / period) ** 2), mode="same")
    lags = np.arange(max(1, int(round(period / 2))), int(round(2 * period)) + 1)
    cost = -tightness * np.log(lags / period) ** 2
    score = local.copy()
    back = np.full(env.size, -1)
    for t in range(lags[0], env.size):
        prev = t - lags
        ok = prev >= 0
        chained = score[prev[ok]] + cost[ok]
        k = int(np.argmax(chained))
        score[t] = local[t] + chained[k]
        back[t] = prev[ok][k]
    peaks = np.flatnonzero((score[1:-1] > score[:-2]) & (score[1:-1] >= score[2:])) + 1
    if peaks.size == 0:
        peaks = np.array([int(np.argmax(score))])
    last = int(peaks[score[peaks] >= 0.5 * np.median(score[peaks])].max())
    beats = [last]
    while back[beats[-1]] >= 0:
        beats.append(int(back[beats[-1]]))
    beats = np.asarray(beats[::-1])
    strong = local[beats] >= 0.5 * np.sqrt(np.mean(local**2))
    if not strong.any():
        return np.zeros(0, dtype=int)
    first, end = np.argmax(strong), len(strong) - np.argmax(strong[::-1])
    return beats[first:end]
