"""The ``motion`` encoder: how much and how rhythmically the picture moves (no weights).

The embedded counterpart of the paper's optical-flow I3D features. It looks at every decoded frame
(``decode_fps=None``; at most ~30 frames per second are used, so 60 fps input costs no more than 30 fps)
as small grayscale pictures (64×36), and computes for each consecutive pair:

- frame-difference energy ``E`` (mean |Δ|) and on a 4×4 grid of cells,
- global brightness level and signed brightness change ``B`` (flashes, cuts to black),
- global motion (dx, dy) by phase correlation, with its peak height as a coherence score (how much of
  the picture moves as one: camera pans, a large moving object).

These per-pair signals are summarised per output window ``[i/rate, (i+1)/rate)``. Rhythm needs a longer
view than one window, so periodicity is measured over a context of ``context`` seconds (default 5)
centred on each window: the per-pair signals are put on a uniform grid (the video's frame rate) and the
autocorrelation of E, B, dx and dy (mean removed per channel, summed over channels, normalised by lag 0
plus a noise floor) gives a periodicity strength, a dominant period and a coarse tempogram. Summing the
signed channels (B, dx, dy) with the unsigned energy makes the full cycle win over its half: a flash
or a left-right oscillation changes E twice per cycle but B or dx only once with each sign.
At 1 feature/s each vector thus still tells stage 1 the tempo of the motion in its neighbourhood.

Feature layout (``dim = 38``, same at every rate; all finite, roughly in [-5, 5]). ``c(x, s)`` means
``log1p(x / s)``, ``cs(x, s)`` its sign-preserving version ``sign(x) log1p(|x| / s)``:

====== ===== ===============================================================================
index  count  feature (over the window's frame pairs unless said otherwise)
====== ===== ===============================================================================
0      1     energy mean, c(E, 0.01) with E = mean |Δgray| in [0, 1] per frame pair
1      1     energy std, c(std E, 0.01)
2      1     energy max, c(max E, 0.01)
3      1     brightness level: mean gray value in [0, 1]
4      1     mean signed brightness change per pair, cs(B, 0.01)
5      1     flash strength: c(max |B|, 0.01)
6      2     global motion vx, vy: cs(v, 0.1) with v in frame widths / heights per second
8      1     global speed, c(mean |v|, 0.1)
9      1     motion coherence: mean phase-correlation peak height in [0, 1]
10     16    4×4 grid of energy, c(E_cell, 0.01), row-major from the top-left
26     1     periodicity strength in [0, 1] (context autocorrelation at the dominant period)
27     1     dominant period in seconds, in [0.2, 2]; 0 when there is no positive autocorrelation peak
28     8     tempogram: max autocorrelation in 8 log-spaced lag bands from 0.2 s to 2 s (context)
36     1     onset rate: energy onsets per second over the context, / 4
37     1     onset strength: c(max positive energy jump, 0.01)
====== ===== ===============================================================================
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from v2meow.features.base import EncoderState, VisualEncoder, fill_empty_windows, finite_float32, window_index
from v2meow.features.filters import gaussian_smooth, running_max
from v2meow.features.registry import register
from v2meow.timebase import units_in

_DIM = 38
_GRID = 4
_MAX_FPS = 30.0
_CHUNK = 64  # frames processed together (vectorised), bounding memory
_E_SCALE = 0.01  # typical frame-difference energy of moderate motion
_V_SCALE = 0.1  # frame widths per second: a slow pan
_COHERENCE_MIN = 0.15  # phase-correlation peaks below this are noise: no global motion
_LAG_MIN, _LAG_MAX = 0.2, 2.0  # seconds: 300 down to 30 cycles per minute
_TEMPO_BANDS = 8
_AC_FLOOR = 2e-3  # per-sample signal level treated as noise in the autocorrelation normaliser
_PEAK_KEEP = 0.85  # a period's autocorrelation peak within this fraction of the best counts (see _periodicity)
_SMOOTH = 0.04  # seconds: Gaussian smoothing of the signals before the context analysis
_ONSET_FLOOR = 3e-3  # smallest energy jump counted as an onset
_ONSET_RELATIVE = 0.3  # and at least this fraction of the largest jump in the context


def _compress(x: np.ndarray, scale: float) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x) / scale)


def _to_gray(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` → float32 gray ``[h, w]`` in [0, 1] at ``size = (w, h)``."""
    w, h = size
    if frame.shape[0] != h or frame.shape[1] != w:
        # Frames from iter_frames already have the right size; others (encode() on arbitrary arrays) are
        # subsampled by nearest pixel, which is plenty for motion statistics.
        ys = ((np.arange(h) + 0.5) * frame.shape[0] / h).astype(np.int64)
        xs = ((np.arange(w) + 0.5) * frame.shape[1] / w).astype(np.int64)
        frame = frame[ys][:, xs]
    f = frame.astype(np.float32)
    return (f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114) * (1.0 / 255.0)


def _parabolic(left: np.ndarray, mid: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Sub-sample offset in [-0.5, 0.5] of a peak from its value and its two neighbours."""
    den = left - 2.0 * mid + right
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(np.abs(den) > 1e-12, 0.5 * (left - right) / den, 0.0)
    return np.clip(off, -0.5, 0.5)


def pair_signals(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Signals of each consecutive pair of gray frames ``[n+1, H, W]`` → arrays of ``[n]`` (``grid``: ``[n, 16]``).

    Keys: ``E`` mean |Δ|, ``B`` mean Δ, ``L`` mean gray of the second frame, ``grid`` cell energies,
    ``dx``/``dy`` phase-correlation shift in frame widths/heights (0 when incoherent), ``coh`` peak height.
    """
    n1, h, w = frames.shape
    diff = frames[1:] - frames[:-1]
    absdiff = np.abs(diff)
    gh, gw = h // _GRID, w // _GRID
    grid = absdiff[:, : gh * _GRID, : gw * _GRID].reshape(n1 - 1, _GRID, gh, _GRID, gw).mean(axis=(2, 4))
    # Phase correlation: mean removed (a uniform frame has no position) and a Hann window (no wrap-around
    # edge); the normalised cross-power spectrum of a pure shift is a delta at the shift.
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    z = (frames - frames.mean(axis=(1, 2), keepdims=True)) * win
    spec = np.fft.rfft2(z)
    cross = spec[1:] * np.conj(spec[:-1])
    mag = np.abs(cross)
    eps = 1e-3 * mag.mean(axis=(1, 2), keepdims=True) + 1e-12
    corr = np.fft.irfft2(cross / (mag + eps), s=(h, w))
    flat = corr.reshape(n1 - 1, -1)
    peak = flat.argmax(axis=1)
    py, px = np.divmod(peak, w)
    rows = np.arange(n1 - 1)
    coh = flat[rows, peak]
    ox = _parabolic(corr[rows, py, (px - 1) % w], coh, corr[rows, py, (px + 1) % w])
    oy = _parabolic(corr[rows, (py - 1) % h, px], coh, corr[rows, (py + 1) % h, px])
    sx = np.where(px > w // 2, px - w, px) + ox  # circular index → signed shift
    sy = np.where(py > h // 2, py - h, py) + oy
    coherent = coh >= _COHERENCE_MIN
    return {
        "E": absdiff.mean(axis=(1, 2)),
        "B": diff.mean(axis=(1, 2)),
        "L": frames[1:].mean(axis=(1, 2)),
        "grid": grid.reshape(n1 - 1, -1),
        "dx": np.where(coherent, sx / w, 0.0),
        "dy": np.where(coherent, sy / h, 0.0),
        "coh": np.clip(coh, 0.0, 1.0),
    }


class _MotionState(EncoderState):
    def __init__(self, encoder: MotionEncoder, duration: float) -> None:
        self.enc = encoder
        self.duration = duration
        self.count = encoder.num_frames(duration)
        self.buffer: list[np.ndarray] = []  # gray frames waiting to be processed, preceded by the last one
        self.buffer_t: list[float] = []
        self.last_t: float | None = None
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, t: float, frame: np.ndarray) -> None:
        # Cap the frame rate: a frame closer than 1/30 s (with a little slack) to the last kept one is
        # skipped, so 50/60 fps input is analysed at 25/30 fps.
        if self.last_t is not None and t - self.last_t < 1.0 / _MAX_FPS - 0.004:
            return
        self.last_t = t
        self.buffer.append(_to_gray(frame, self.enc.frame_size))
        self.buffer_t.append(t)
        if len(self.buffer) > _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if len(self.buffer) < 2:
            return
        times = np.asarray(self.buffer_t)
        sig = pair_signals(np.stack(self.buffer))
        sig["t"] = times[1:]
        sig["dt"] = np.diff(times)
        self.parts.append(sig)
        # Keep the last frame: it is the first of the next pair.
        self.buffer = self.buffer[-1:]
        self.buffer_t = self.buffer_t[-1:]

    def finish(self) -> np.ndarray:
        self._flush()
        T = self.count
        if not self.parts:
            out = np.zeros((T, _DIM), dtype=np.float32)
            if self.buffer:
                out[:, 3] = float(self.buffer[0].mean())  # one frame: its brightness is all we know
            return out
        sig = {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}
        return _features(sig, self.enc.rate, T, self.duration, self.enc.context)


def _window_stats(values: np.ndarray, win: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-window mean, std, max of ``values`` ``[P]`` and the pair counts ``[T]``."""
    counts = np.bincount(win, minlength=T).astype(np.float64)
    total = np.bincount(win, weights=values, minlength=T)
    sq = np.bincount(win, weights=values * values, minlength=T)
    mean = total / np.maximum(counts, 1)
    std = np.sqrt(np.maximum(sq / np.maximum(counts, 1) - mean * mean, 0.0))
    mx = np.full(T, -np.inf)
    np.maximum.at(mx, win, values)
    mx = np.where(counts > 0, mx, 0.0)
    return mean, std, mx, counts


def _uniform_grid(t: np.ndarray, values: np.ndarray, fs: float, m: int) -> np.ndarray:
    """Average the per-pair ``values`` ``[P, C]`` into ``m`` bins of ``1/fs`` s; empty bins interpolated."""
    idx = np.clip(np.floor(t * fs + 1e-9).astype(np.int64), 0, m - 1)
    counts = np.bincount(idx, minlength=m)
    out = np.zeros((m, values.shape[1]))
    np.add.at(out, idx, values)
    filled = counts > 0
    out[filled] /= counts[filled, None]
    if not filled.all():
        centres = np.arange(m)
        for c in range(values.shape[1]):
            out[~filled, c] = np.interp(centres[~filled], centres[filled], out[filled, c])
    return out


def _periodicity(
    x: np.ndarray, fs: float, centres: np.ndarray, context: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Periodicity of the channels ``x`` ``[M, C]`` (uniform at ``fs``) around each window centre.

    Returns strength ``[T]``, period in seconds ``[T]`` and tempogram ``[T, 8]``.
    """
    m, channels = x.shape
    length = max(4, int(round(context * fs)))
    nfft = 1 << int(math.ceil(math.log2(2 * length)))
    max_lag = min(length - 2, int(math.floor(_LAG_MAX * fs)) + 1)
    min_lag = max(1, int(math.ceil(_LAG_MIN * fs)))
    edges = np.geomspace(_LAG_MIN, _LAG_MAX, _TEMPO_BANDS + 1) * fs
    # Each band reads the autocorrelation at every whole lag inside it plus its two edges (interpolated),
    # so that a band narrower than one lag (low frame rates) still has a value.
    band_lags = []
    for b in range(_TEMPO_BANDS):
        inner = np.arange(math.ceil(edges[b]), math.floor(edges[b + 1]) + 1, dtype=np.float64)
        band_lags.append(np.clip(np.concatenate([[edges[b]], inner, [edges[b + 1]]]), 0.0, length - 1.0))
    T = len(centres)
    strength = np.zeros(T)
    period = np.zeros(T)
    tempogram = np.zeros((T, _TEMPO_BANDS))
    offsets = np.arange(length) - length // 2
    for s in range(0, T, 256):  # chunks of windows bound the memory of the [T, C, nfft] spectra
        c = centres[s : s + 256]
        idx = np.floor(c * fs).astype(np.int64)[:, None] + offsets[None, :]
        valid = (idx >= 0) & (idx < m)
        seg = np.where(valid[..., None], x[np.clip(idx, 0, m - 1)], 0.0)  # [t, L, C]
        nvalid = np.maximum(valid.sum(axis=1), 1)[:, None]
        mean = seg.sum(axis=1) / nvalid  # [t, C] over the valid samples only
        seg = np.where(valid[..., None], seg - mean[:, None, :], 0.0)
        spec = np.fft.rfft(seg, n=nfft, axis=1)
        ac = np.fft.irfft((spec * np.conj(spec)).real, n=nfft, axis=1)[:, :length].sum(axis=2)  # [t, L]
        # The floor keeps noise-level signals (a static shot's compression noise) from looking periodic.
        norm = ac[:, :1] + nvalid * channels * _AC_FLOOR**2
        r = ac / norm
        lags = np.arange(length)
        for b in range(_TEMPO_BANDS):
            lo = np.floor(band_lags[b]).astype(np.int64).clip(0, length - 2)  # interpolate between lo, lo + 1
            frac = np.clip(band_lags[b] - lo, 0.0, 1.0)
            tempogram[s : s + len(c), b] = (r[:, lo] * (1 - frac) + r[:, lo + 1] * frac).max(axis=1)
        if max_lag <= min_lag:
            continue
        # Dominant period: the shortest lag whose positive local maximum reaches _PEAK_KEEP of the highest
        # one (as in McLeod's pitch method). A periodic signal also peaks at every multiple of its period,
        # and jitter (12.5-frame cycles sampled on whole frames) can make a multiple slightly higher.
        cand = lags[min_lag:max_lag]
        rc = r[:, cand]
        peaks = (rc > r[:, cand - 1]) & (rc >= r[:, cand + 1]) & (rc > 0)
        top = np.where(peaks, rc, -np.inf).max(axis=1, keepdims=True)
        keep = peaks & (rc >= _PEAK_KEEP * top)
        best_i = keep.argmax(axis=1)  # first True
        has = keep.any(axis=1)
        best = cand[best_i]
        rows = np.arange(len(c))
        off = _parabolic(r[rows, best - 1], r[rows, best], r[rows, best + 1])
        strength[s : s + len(c)] = np.where(has, np.clip(r[rows, best], 0.0, 1.0), 0.0)
        period[s : s + len(c)] = np.where(has, np.clip((best + off) / fs, _LAG_MIN, _LAG_MAX), 0.0)
    return strength, period, np.clip(tempogram, -1.0, 1.0)


def _onsets(energy: np.ndarray, fs: float, centres: np.ndarray, context: float) -> np.ndarray:
    """Energy onsets per second over the context around each centre (``energy`` ``[M]`` uniform at ``fs``)."""
    m = len(energy)
    nov = np.maximum(np.diff(energy, prepend=energy[:1]), 0.0)
    length = max(3, int(round(context * fs)))
    local_max = running_max(nov, size=length)
    left = np.concatenate([[np.inf], nov[:-1]])
    right = np.concatenate([nov[1:], [-np.inf]])
    onset = (nov > left) & (nov >= right) & (nov > np.maximum(_ONSET_FLOOR, _ONSET_RELATIVE * local_max))
    cum = np.concatenate([[0], np.cumsum(onset)])
    first = np.floor(centres * fs).astype(np.int64) - length // 2
    lo = np.clip(first, 0, m)
    hi = np.clip(first + length, 0, m)
    span = np.maximum(hi - lo, 1) / fs
    return (cum[hi] - cum[lo]) / span


def _features(sig: dict[str, np.ndarray], rate: float, T: int, duration: float, context: float) -> np.ndarray:
    t = sig["t"]
    win = window_index(t, rate, T)
    out = np.zeros((T, _DIM))
    e_mean, e_std, e_max, counts = _window_stats(sig["E"], win, T)
    out[:, 0] = _compress(e_mean, _E_SCALE)
    out[:, 1] = _compress(e_std, _E_SCALE)
    out[:, 2] = _compress(e_max, _E_SCALE)
    out[:, 3] = _window_stats(sig["L"], win, T)[0]
    out[:, 4] = _compress(_window_stats(sig["B"], win, T)[0], _E_SCALE)
    out[:, 5] = _compress(_window_stats(np.abs(sig["B"]), win, T)[2], _E_SCALE)
    dt = np.maximum(sig["dt"], 1e-3)
    vx, vy = sig["dx"] / dt, sig["dy"] / dt
    out[:, 6] = _compress(_window_stats(vx, win, T)[0], _V_SCALE)
    out[:, 7] = _compress(_window_stats(vy, win, T)[0], _V_SCALE)
    out[:, 8] = _compress(_window_stats(np.hypot(vx, vy), win, T)[0], _V_SCALE)
    out[:, 9] = _window_stats(sig["coh"], win, T)[0]
    for c in range(_GRID * _GRID):
        out[:, 10 + c] = _compress(_window_stats(sig["grid"][:, c], win, T)[0], _E_SCALE)
    jumps = np.maximum(np.diff(sig["E"], prepend=sig["E"][:1]), 0.0)
    out[:, 37] = _compress(_window_stats(jumps, win, T)[2], _E_SCALE)
    # Empty windows (feature rate above the frame rate) repeat the previous window's summary.
    out = fill_empty_windows(out, counts > 0)

    # Context features on a uniform grid at the video's own frame rate.
    fs = float(np.clip(1.0 / max(float(np.median(dt)), 1e-3), 4.0, _MAX_FPS))
    m = max(1, units_in(duration, fs))
    channels = np.stack([sig["E"], sig["B"], sig["dx"], sig["dy"]], axis=1)
    # Light smoothing (about one frame): events one frame apart still correlate, so a flash every 12.5
    # frames is periodic at 12.5 and not only at 25 frames; it also stops pixel-step jitter making onsets.
    grid = gaussian_smooth(_uniform_grid(t, channels, fs, m), sigma=max(0.75, _SMOOTH * fs), axis=0)
    centres = (np.arange(T) + 0.5) / rate
    strength, period, tempogram = _periodicity(grid, fs, centres, context)
    out[:, 26] = strength
    out[:, 27] = period
    out[:, 28:36] = tempogram
    out[:, 36] = _onsets(grid[:, 0], fs, centres, context) / 4.0
    return finite_float32(out)


@register("motion")
class MotionEncoder(VisualEncoder):
    """Motion energy, global motion and rhythm per window (see the module docstring for the layout)."""

    dim = _DIM
    decode_fps = None

    def __init__(self, rate: float = 1.0, frame_size: tuple[int, int] = (64, 36), context: float = 5.0) -> None:
        self.rate = float(rate)
        w, h = int(frame_size[0]), int(frame_size[1])
        if w < _GRID * 2 or h < _GRID * 2:
            raise ValueError(f"motion frame size must be at least {_GRID * 2} pixels each way, got {frame_size}")
        self.frame_size = (w, h)
        self.context = float(context)

    def params(self) -> dict[str, Any]:
        return {"context": self.context, "max_fps": _MAX_FPS, "grid": _GRID}

    def begin(self, duration: float) -> EncoderState:
        return _MotionState(self, duration)
