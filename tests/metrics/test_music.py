"""The sound descriptors set beside real music: each moves the way its name says."""

from __future__ import annotations

import numpy as np
from media import drum_loop

from v2meow.metrics.music import DRUMS_ALONE, drums_alone, harmonic_shares, longest_run, sound_descriptors

SR = 16000


def _tone(freqs, seconds=4.0, amp=0.2):
    t = np.arange(int(seconds * SR)) / SR
    return sum(amp * np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float32)


def test_descriptors_tell_a_chord_from_noise_and_boom_from_the_middle():
    chord = _tone([261.63, 329.63, 392.0])  # C major
    noise = np.random.default_rng(0).normal(0, 0.1, 4 * SR).astype(np.float32)
    c, n = sound_descriptors(chord, SR), sound_descriptors(noise, SR)
    assert c["tonal_clarity"] > n["tonal_clarity"] + 0.2
    assert n["flatness"] > 10 * c["flatness"]
    boom, mid = sound_descriptors(_tone([45.0]), SR), sound_descriptors(_tone([350.0]), SR)
    assert boom["boom_db"] > 30 and mid["boom_db"] < -30
    loud, soft = sound_descriptors(_tone([1000.0], amp=0.5), SR), sound_descriptors(_tone([1000.0], amp=0.05), SR)
    assert abs((loud["lufs"] - soft["lufs"]) - 20.0) < 0.1


def test_a_steady_click_track_has_a_clear_pulse():
    clicks = np.zeros(6 * SR, np.float32)
    clicks[:: SR // 2] = 1.0  # 120 BPM
    rng = np.random.default_rng(1)
    scattered = np.zeros(6 * SR, np.float32)
    scattered[rng.choice(6 * SR, 12, replace=False)] = 1.0
    assert sound_descriptors(clicks, SR)["pulse_clarity"] > sound_descriptors(scattered, SR)["pulse_clarity"] + 0.2


def test_drums_alone_are_told_from_music_over_drums():
    """2.5 s of clicks and noise bursts on a beat (a drum loop) against the same loop under a held chord."""
    sr = 16000
    loop, chord = drum_loop(5.0, sr)  # a kick-like thump and a hat-like burst of noise on every beat
    half = len(loop) // 2
    wav = np.concatenate([loop[:half], (loop + chord)[half:]]).astype(np.float32)
    shares = harmonic_shares(wav, sr, 2.5)
    assert shares.shape == (2,)
    assert shares[0] < DRUMS_ALONE < 0.2 < shares[1]
    assert drums_alone(wav, sr, 2.5).tolist() == [True, False]


def test_longest_run_counts_the_longest_stretch_of_true_values():
    assert longest_run([True, False, True, True, True, False, True]) == 3
    assert longest_run([False, False]) == 0 and longest_run([]) == 0
