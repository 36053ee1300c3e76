"""Per-frame control signals: the music as a world sees it at each video frame (:class:`Frame`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from v2meow.data.synth.analysis import TrackAnalysis


@dataclass
class Frame:
    """The music as seen by a world at one video frame (all in [0, 1] unless said otherwise)."""

    index: int
    t: float
    dt: float
    loud: float  # loudness
    onset: float  # onset envelope (max over the frame interval)
    bright: float  # spectral brightness
    pulse: float  # decaying impulse at each beat, scaled by the beat's strength
    phase: float  # position between the last beat and the next, [0, 1)
    beat: int  # index of the last beat (on an extended grid: may be negative before the first)
    new_beat: bool  # a real beat fell since the previous frame
    beat_strength: float  # strength of the last real beat
    flash: float  # decaying flash after strong onsets
    new_onset: bool  # a strong onset fell since the previous frame
    speed: float  # motion speed from tempo and loudness, ~0.2..1.8
    travel: float  # integral of speed (seconds × speed): smooth scrolling positions
    period: float  # seconds per beat


# The Frame fields held as per-frame arrays by Controls (besides ``beat``, an int).
_FLOAT_SIGNALS = ("t", "loud", "onset", "bright", "pulse", "phase", "beat_strength", "flash", "speed", "travel")
_FLAG_SIGNALS = ("new_beat", "new_onset")


class Controls:
    """Per-frame control signals for a whole video, computed at once from the analysis (vectorised)."""

    def __init__(self, an: TrackAnalysis, fps: float, n: int, rng: np.random.Generator) -> None:
        t = np.arange(n) / fps
        self.t = t
        self.fps = fps
        env_t = np.arange(len(an.onset_env)) / an.env_rate
        span = max(1, int(math.ceil(an.env_rate / fps)))
        # Max over the frame's interval (origin shifted so the window ends at the frame time).
        onset_max = maximum_filter1d(an.onset_env, size=span, origin=(span - 1) // 2)
        self.onset = np.interp(t, env_t, onset_max) if len(env_t) else np.zeros(n)
        self.loud = np.interp(t, env_t, an.loudness) if len(env_t) else np.zeros(n)
        self.bright = np.interp(t, env_t, an.brightness) if len(env_t) else np.zeros(n)

        beats = np.asarray(an.beats, dtype=np.float64)
        strength = np.asarray(an.beat_strength, dtype=np.float64)
        if len(beats) >= 2:
            period = float(np.median(np.diff(beats)))
        elif an.tempo > 0:
            period = 60.0 / an.tempo
        else:
            period = float(rng.uniform(0.6, 1.2))  # no beat: a slow, unmusical grid for phases only
        self.period = period
        # Phase grid: the real beats, extended by whole periods before and after.
        first = beats[0] if len(beats) else float(rng.uniform(0, period))
        last = beats[-1] if len(beats) else first
        n_before = int(math.ceil(first / period)) + 1
        n_after = int(math.ceil(max(0.0, t[-1] - last if n else 0.0) / period)) + 2
        grid = np.concatenate(
            [
                first - period * np.arange(n_before, 0, -1),
                beats if len(beats) else [first],
                last + period * np.arange(1, n_after),
            ]
        )
        k = np.searchsorted(grid, t, side="right") - 1
        k = np.clip(k, 0, len(grid) - 2)
        self.phase = np.clip((t - grid[k]) / (grid[k + 1] - grid[k]), 0.0, 0.999)
        self.beat = k - n_before

        # Pulses at real beats.
        self.pulse = np.zeros(n)
        self.new_beat = np.zeros(n, dtype=bool)
        self.beat_strength = np.zeros(n)
        if len(beats):
            tau = float(np.clip(0.18 * period, 0.05, 0.16))
            b = np.searchsorted(beats, t + 1e-9, side="right") - 1
            has = b >= 0
            bb = np.clip(b, 0, None)
            s = 0.35 + 0.65 * strength[bb]
            self.pulse = np.where(has, s * np.exp(-(t - beats[bb]) / tau), 0.0)
            self.beat_strength = np.where(has, s, 0.0)
            prev = np.concatenate([[-1], b[:-1]])
            self.new_beat = has & (b != prev)

        # Flashes at strong onsets: the top of the track's onsets, and loud in absolute terms.
        self.flash = np.zeros(n)
        self.new_onset = np.zeros(n, dtype=bool)
        on, os_ = np.asarray(an.onsets), np.asarray(an.onset_strength)
        if len(on):
            thresh = max(0.5, float(np.percentile(os_, 70)))
            strong = on[os_ >= thresh]
            strong_s = os_[os_ >= thresh]
            if len(strong):
                j = np.searchsorted(strong, t + 1e-9, side="right") - 1
                has = j >= 0
                jj = np.clip(j, 0, None)
                self.flash = np.where(has, strong_s[jj] * np.exp(-(t - strong[jj]) / 0.07), 0.0)
                prev = np.concatenate([[-1], j[:-1]])
                self.new_onset = has & (j != prev)

        tempo_factor = float(np.clip(60.0 / period / 120.0, 0.5, 1.6))
        smooth_loud = gaussian_filter1d(self.loud, max(1.0, fps * 0.5)) if n else self.loud
        self.speed = tempo_factor * (0.3 + 0.8 * smooth_loud)
        self.travel = np.cumsum(self.speed) / fps

    def frame(self, i: int) -> Frame:
        """Frame ``i``: each per-frame signal (an array of this name) read at ``i``."""
        floats = {name: float(getattr(self, name)[i]) for name in _FLOAT_SIGNALS}
        flags = {name: bool(getattr(self, name)[i]) for name in _FLAG_SIGNALS}
        return Frame(index=i, dt=1.0 / self.fps, beat=int(self.beat[i]), period=self.period, **floats, **flags)
