import numpy as np
import pytest

from v2meow.io.limiter import limit_peaks, limiter_gain, sliding_min


@pytest.mark.parametrize("before,after", [(0, 0), (1, 0), (0, 3), (4, 2), (7, 7)])
def test_sliding_min_equals_the_plain_window_minimum(before, after):
    rng = np.random.default_rng(before * 10 + after)
    for n in (1, 2, 9, 50):
        x = rng.normal(size=n)
        want = np.array([x[max(0, i - before): i + after + 1].min() for i in range(n)])
        assert np.array_equal(sliding_min(x, before, after), want)


def test_limiter_keeps_every_peak_under_the_ceiling_and_leaves_the_rest():
    sr = 16000
    t = np.arange(2 * sr) / sr
    tone = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    spiky = tone.copy()
    spiky[[4000, 4001, 20000]] = [0.9, -0.95, 0.8]  # clicks far above the tone
    out = limit_peaks(spiky, 0.5, sr)
    assert np.abs(out).max() <= 0.5
    gain = limiter_gain(spiky, 0.5, ramp=160, hold=640)
    assert gain.min() == pytest.approx(0.5 / 0.95, rel=1e-6)
    # away from the clicks (ramp + hold), the signal is untouched
    far = np.ones(len(t), bool)
    for i in (4000, 4001, 20000):
        far[max(0, i - 200): i + 900] = False
    assert np.array_equal(out[far], spiky[far])
    # the gain moves in steps no larger than a ramp allows: no sample-to-sample jumps
    assert np.abs(np.diff(gain)).max() <= (1 - 0.5 / 0.95) / 160 + 1e-9
    assert np.array_equal(limit_peaks(tone, 0.5, sr), tone)  # nothing above the ceiling: unchanged


def test_match_loudness_limits_a_few_peaks_to_reach_the_target():
    import pyloudnorm

    from v2meow.io.audio import match_loudness

    sr = 16000
    t = np.arange(4 * sr) / sr
    music = (0.01 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)
    music[::8000] = 0.2  # sharp transients 20 times the body: one gain would stop ~12 dB short of -16 LUFS
    meter = pyloudnorm.Meter(sr)
    plain = match_loudness(music, sr, -16.0)
    limited = match_loudness(music, sr, -16.0, limit_db=20.0)
    assert meter.integrated_loudness(plain.astype(np.float64)) < -24.0
    assert abs(meter.integrated_loudness(limited.astype(np.float64)) + 16.0) < 0.3
    ceiling = 10 ** (-1 / 20)
    assert np.abs(limited).max() <= ceiling + 1e-6
    # the budget caps how far the gain may go past the peak
    capped = match_loudness(music, sr, -16.0, limit_db=3.0)
    gain_db = 20 * np.log10(np.abs(capped[100:7000]).max() / np.abs(plain[100:7000]).max())
    assert gain_db == pytest.approx(3.0, abs=0.05)


def test_under_full_scale_limits_only_audio_that_passes_it():
    from v2meow.io.limiter import FILE_CEILING, under_full_scale

    sr = 16000
    t = np.arange(sr) / sr
    quiet = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    assert under_full_scale(quiet, sr) is quiet or np.array_equal(under_full_scale(quiet, sr), quiet)
    loud = quiet * 2.4  # peaks at 1.2: past full scale
    out = under_full_scale(loud, sr)
    assert np.abs(out).max() <= FILE_CEILING < 0.999
    assert np.array_equal(under_full_scale(np.zeros(0, np.float32), sr), np.zeros(0, np.float32))
