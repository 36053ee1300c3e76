"""The ``beat`` encoder: a clock that ticks on the picture's beats (no weights).

The music a video wants puts its beats where the picture's motion pulses: a flash, a landing, a step. The
``motion`` encoder says how much and how periodically the picture moves; this one says *where in the beat* each
moment is, so a stage can place onsets on the visual beats at its own token rate rather than infer the phase
from summaries. It looks at every decoded frame (as ``motion`` does, at most ~30 a second, as 64×36 gray
pictures; it shares ``motion``'s decode) and:

1. measures per frame pair the mean absolute difference ``E`` and the signed brightness change ``B``, and
   from them a novelty curve on a uniform grid at the video's frame rate: the rise of the frame-difference
   energy plus its flash strength, weighted up when the picture brightens (a flash changes the picture twice per
   cycle: the brightening is the beat, not the fade back);
2. finds around each window the dominant period ``P`` of the motion and how periodic it is (``motion``'s
   autocorrelation over a ``context`` of 5 s, with its noise floor: a still shot has strength 0);
3. demodulates the novelty at ``1 / P`` under a Hann window of the same context: the angle of that sum is the
   phase of the visual pulse, so the clock ``θ(t) = 2π t / P + angle`` is 0 on the visual beats.

Feature layout (``dim = 4``): ``cos θ · s``, ``sin θ · s`` (the clock, faded out where the motion is not
periodic), ``s`` (periodicity strength in [0, 1]), and the window's strongest novelty, ``log1p(n)``. The
clock's beats (each turn of θ where ``s`` is high) meet the true beats of the periodic-motion evaluation videos:
``bench.rhythm`` measures it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from v2meow.features.base import EncoderState, finite_float32, window_index
from v2meow.features.filters import gaussian_smooth
from v2meow.features.motion import (
    _E_SCALE,
    _MAX_FPS,
    _SMOOTH,
    MotionEncoder,
    _compress,
    _periodicity,
    _to_gray,
    _uniform_grid,
)
from v2meow.features.registry import register
from v2meow.timebase import units_in

_DIM = 4


class _BeatState(EncoderState):
    def __init__(self, encoder: BeatEncoder, duration: float) -> None:
        self.enc = encoder
        self.duration = duration
        self.count = encoder.num_frames(duration)
        self.last: np.ndarray | None = None
        self.last_t: float | None = None
        self.rows: list[tuple[float, float, float, float]] = []  # (t, dt, E, B) per frame pair

    def add(self, t: float, frame: np.ndarray) -> None:
        if self.last_t is not None and t - self.last_t < 1.0 / _MAX_FPS - 0.004:  # as motion: at most ~30 fps
            return
        gray = _to_gray(frame, self.enc.frame_size)
        if self.last is not None and self.last_t is not None:
            diff = gray - self.last
            self.rows.append((t, t - self.last_t, float(np.abs(diff).mean()), float(diff.mean())))
        self.last, self.last_t = gray, t

    def finish(self) -> np.ndarray:
        if len(self.rows) < 2:
            return np.zeros((self.count, _DIM), dtype=np.float32)
        t, dt, e, b = (np.asarray(c, dtype=np.float64) for c in zip(*self.rows))
        return beat_features(t, dt, e, b, self.enc.rate, self.count, self.duration, self.enc.context)


def novelty_curve(t: np.ndarray, dt: np.ndarray, e: np.ndarray, b: np.ndarray,
                  duration: float) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Per-pair ``E`` and ``B`` at times ``t`` → on a uniform grid: the novelty (the weighted rise of the energy),
    the pulse (the weighted energy itself, whose phase the clock follows), their rate fs, and the gridded [E, B]."""
    fs = float(np.clip(1.0 / max(float(np.median(dt)), 1e-3), 4.0, _MAX_FPS))
    m = max(1, units_in(duration, fs))
    grid = _uniform_grid(t, np.stack([e, b], axis=1), fs, m)
    energy = _compress(grid[:, 0], _E_SCALE) + _compress(np.abs(grid[:, 1]), _E_SCALE)
    weight = 1.0 + np.tanh(_compress(grid[:, 1], _E_SCALE))  # the brightening is the beat, not the fade back
    nov = np.maximum(np.diff(energy, prepend=energy[:1]), 0.0) * weight
    return nov, energy * weight, fs, grid


def beat_features(t: np.ndarray, dt: np.ndarray, e: np.ndarray, b: np.ndarray, rate: float, T: int,
                  duration: float, context: float) -> np.ndarray:
    nov, pulse, fs, grid = novelty_curve(t, dt, e, b, duration)
    m = len(nov)
    smooth = gaussian_smooth(grid, sigma=max(0.75, _SMOOTH * fs), axis=0)
    centres = (np.arange(T) + 0.5) / rate
    strength, period, _ = _periodicity(smooth, fs, centres, context)
    # Demodulate the novelty at each window's own period, under a Hann window of the context around it.
    length = max(4, int(round(context * fs)))
    offsets = np.arange(length) - length // 2
    hann = np.hanning(length + 2)[1:-1]
    theta = np.zeros(T)
    for s in range(0, T, 1024):  # chunks bound the [t, L] memory on long videos
        c = centres[s : s + 1024]
        p = period[s : s + 1024]
        idx = np.floor(c * fs).astype(np.int64)[:, None] + offsets[None, :]
        valid = (idx >= 0) & (idx < m)
        n = np.where(valid, pulse[np.clip(idx, 0, m - 1)], 0.0)
        n = (n - n.mean(axis=1, keepdims=True)) * hann[None, :]
        times = idx / fs  # a grid cell's pairs start at its left edge (a pair's time is its second frame's)
        with np.errstate(divide="ignore", invalid="ignore"):
            freq = np.where(p > 0, 1.0 / p, 0.0)[:, None]
        z = (n * np.exp(-2j * np.pi * freq * times)).sum(axis=1)
        theta[s : s + len(c)] = 2 * np.pi * freq[:, 0] * c + np.angle(z)
    # A flash's beat is the frame it appears in: the pair ending there. A symmetric movement (a ball landing)
    # peaks over the pairs either side of the beat frame, so its clock runs half a frame late (42 ms at 12 fps).
    s_eff = np.where(period > 0, strength, 0.0)
    win = window_index(t, rate, T)
    peak = np.zeros(T)
    nov_pair = np.interp(t, np.arange(m) / fs, nov)
    np.maximum.at(peak, win, nov_pair)
    out = np.stack([np.cos(theta) * s_eff, np.sin(theta) * s_eff, s_eff, np.log1p(peak)], axis=1)
    return finite_float32(out)


def clock_beats(features: np.ndarray, rate: float, min_strength: float = 0.3) -> np.ndarray:
    """Beat times (s) read off a ``beat`` feature array ``[T, 4]``: where the clock's phase turns past 0 while
    the motion is periodic (strength >= ``min_strength``), placed by linear interpolation of the phase."""
    if len(features) < 2:
        return np.zeros(0)
    theta = np.unwrap(np.arctan2(features[:, 1], features[:, 0]))
    centres = (np.arange(len(features)) + 0.5) / rate
    turns = np.floor(theta / (2 * np.pi))
    out = []
    for i in np.nonzero(np.diff(turns) > 0)[0]:
        if min(features[i, 2], features[i + 1, 2]) < min_strength:
            continue
        target = (turns[i] + 1) * 2 * np.pi
        frac = (target - theta[i]) / max(theta[i + 1] - theta[i], 1e-9)
        out.append(centres[i] + frac * (centres[i + 1] - centres[i]))
    return np.asarray(out)


@register("beat")
class BeatEncoder(MotionEncoder):
    """A clock on the picture's beats (see the module docstring for the layout); motion's frames and context."""

    dim = _DIM

    def __init__(self, rate: float = 10.0, frame_size: tuple[int, int] = (64, 36), context: float = 5.0) -> None:
        super().__init__(rate, frame_size, context)

    def params(self) -> dict[str, Any]:
        return {"context": self.context, "max_fps": _MAX_FPS}

    def begin(self, duration: float) -> EncoderState:
        return _BeatState(self, duration)
