"""Tests for the ``beat`` encoder: its clock turns on the picture's beats, whatever moves, and stays off when
nothing moves periodically."""

from __future__ import annotations

import mir_eval
import numpy as np
import pytest

from v2meow.features.beat import BeatEncoder, clock_beats

FPS, SIZE = 12.0, (64, 36)


def _frames(kind: str, bpm: float, phase: float, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames of a picture that flashes, or a ball that lands, on each beat ``phase + k * 60 / bpm``."""
    period = 60.0 / bpm
    times = np.arange(int(seconds * FPS)) / FPS
    frames = np.zeros((len(times), SIZE[1], SIZE[0], 3), np.uint8)
    for i, t in enumerate(times):
        u = ((t - phase) / period) % 1.0  # 0 on a beat
        if kind == "flash":
            frames[i] = int(40 + 200 * np.exp(-u * 6.0))
        elif kind == "ball":
            y = int(4 + 24 * (1 - 4 * (u - 0.5) ** 2))  # top of the arc mid-beat, on the floor on the beat
            frames[i, SIZE[1] - 8 - y : SIZE[1] - y, 28:36] = 255
    beats = np.arange(phase, seconds, period)
    return frames, times, beats


@pytest.mark.parametrize("kind", ["flash", "ball"])
@pytest.mark.parametrize("bpm", [90.0, 140.0])
def test_the_clock_turns_on_the_visual_beats(kind, bpm):
    enc = BeatEncoder(rate=10.0)
    frames, times, beats = _frames(kind, bpm, 0.23, 10.0)
    f = enc.encode(frames, times, 10.0)
    assert f.shape == (100, 4) and np.isfinite(f).all()
    assert f[10:-10, 2].mean() > 0.3  # periodic
    est = clock_beats(f, 10.0)
    ref = mir_eval.beat.trim_beats(beats)
    assert mir_eval.beat.f_measure(ref, mir_eval.beat.trim_beats(est)) > 0.9
    # the same picture half a beat later: the clock's beats move with it
    later, _, beats_later = _frames(kind, bpm, 0.23 + 30.0 / bpm, 10.0)
    est_later = clock_beats(enc.encode(later, times, 10.0), 10.0)
    assert mir_eval.beat.f_measure(mir_eval.beat.trim_beats(beats_later), mir_eval.beat.trim_beats(est_later)) > 0.9
    assert mir_eval.beat.f_measure(ref, mir_eval.beat.trim_beats(est_later)) < 0.3


def test_a_still_or_unsteady_picture_has_no_clock():
    enc = BeatEncoder(rate=10.0)
    frames, times, _ = _frames("ball", 120.0, 0.0, 8.0)
    still = np.repeat(frames[:1], len(frames), axis=0)
    f = enc.encode(still, times, 8.0)
    assert not f[:, :3].any() and len(clock_beats(f, 10.0)) == 0
    rng = np.random.default_rng(0)  # flashes at random times: no steady pulse to lock on
    flashes = np.full_like(frames, 40)
    for i in np.sort(rng.choice(len(frames), 12, replace=False)):
        flashes[i] = 240
    g = enc.encode(flashes, times, 8.0)
    assert g[:, 2].mean() < f[:, 2].mean() + 0.35 and len(clock_beats(g, 10.0)) < 8


def test_rate_and_length_follow_the_config():
    frames, times, _ = _frames("flash", 120.0, 0.1, 3.0)
    for rate in (1.0, 10.0, 25.0):
        out = BeatEncoder(rate=rate).encode(frames, times, 3.0)
        assert out.shape == (int(np.ceil(3.0 * rate)), 4) and out.dtype == np.float32
    assert BeatEncoder().encode(frames[:1], times[:1], 1.0).shape == (10, 4)  # one frame: zeros, no error
