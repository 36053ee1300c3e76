"""noise_score, and best of N with a noise penalty (v2meow.metrics.alignment)."""

import numpy as np

from v2meow.metrics.alignment import VideoBeats, best_candidate, noise_score, score_candidates

SR = 16000


def _tone(seconds=2.0, f0=220.0):
    t = np.arange(int(seconds * SR)) / SR
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 6)).astype(np.float32)


def _clicks(noisy: bool, seconds=4.0, period=0.5, seed=0):
    """A note (or a burst of white noise) every ``period`` s, decaying; silence between."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR), np.float32)
    n = int(0.2 * SR)
    env = np.exp(-np.arange(n) / (0.04 * SR))
    body = rng.normal(0, 0.3, n) if noisy else _tone(0.2)[:n]
    for start in np.arange(0, seconds - 0.2, period):
        i = int(start * SR)
        y[i:i + n] += (body * env).astype(np.float32)
    return y


def test_noise_scores_tones_low_and_noise_high_and_ignores_silence():
    tone = _tone()
    noise = np.random.default_rng(0).normal(0, 0.1, 2 * SR).astype(np.float32)
    assert noise_score(tone, SR) < 0.01
    assert noise_score(noise, SR) > 0.4
    # a second of silence before the tone: flat at the floor, but it carries no energy, so it does not count
    assert abs(noise_score(np.concatenate([np.zeros(SR, np.float32), tone]), SR) - noise_score(tone, SR)) < 0.01
    assert noise_score(_clicks(True), SR) > 10 * noise_score(_clicks(False), SR)
    assert np.isfinite(noise_score(np.zeros(100, np.float32), SR))  # shorter than one frame, and silent


def test_a_noise_penalty_turns_the_pick_from_noise_bursts_to_notes_on_the_same_beats():
    visual = VideoBeats(np.arange(0, 3.6, 0.5), np.zeros(0), np.zeros(0), 10.0, "sidecar")
    wavs = [_clicks(True), _clicks(False)]  # the same onsets: noise bursts first, notes second
    plain = score_candidates(wavs, SR, [0, 1], visual)
    assert plain[0].noise is None and plain[0].total == plain[0].beat
    weighed = score_candidates(wavs, SR, [0, 1], visual, noise_penalty=2.0)
    assert weighed[0].noise > weighed[1].noise
    assert weighed[0].total == weighed[0].beat - 2.0 * weighed[0].noise
    if plain[0].total >= plain[1].total:  # the beats alone keep the bursts (or tie, which the first wins) ...
        assert best_candidate(plain) == 0
    assert best_candidate(weighed) == 1  # ... the penalty keeps the notes
