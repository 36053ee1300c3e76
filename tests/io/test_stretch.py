"""Time stretch at the same pitch (v2meow.io.stretch)."""

import numpy as np
import pytest

from v2meow.io.stretch import time_stretch, time_warp

SR = 16000


def _peak_hz(y):
    y = y[2000:-2000]
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return np.argmax(spec) * SR / y.size


@pytest.mark.parametrize("rate", [0.85, 1.15])
def test_a_tone_keeps_its_pitch_and_level_and_its_length_scales(rate):
    t = np.arange(3 * SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y = time_stretch(x, rate)
    assert y.dtype == np.float32 and y.size == round(x.size / rate)
    assert _peak_hz(y) == pytest.approx(440.0, abs=1.0)
    rms = np.sqrt(np.mean(y[2000:-2000] ** 2))
    assert 20 * np.log10(rms / (0.5 / np.sqrt(2))) == pytest.approx(0.0, abs=0.3)


def _clicks(bpm, seconds, phase=0.1):
    x = np.zeros(int(seconds * SR), np.float32)
    rng = np.random.default_rng(0)
    for b in np.arange(phase, seconds - 0.05, 60.0 / bpm):
        i = int(b * SR)
        x[i : i + 320] += rng.normal(0, 0.5, 320).astype(np.float32) * np.exp(-np.arange(320) / 60.0).astype(np.float32)
    return x


def _click_times(y):
    """Onsets of the clicks: where the 2 ms energy first passes a tenth of its peak after a quiet stretch."""
    e = np.convolve(y.astype(float) ** 2, np.ones(32), "same")
    above = e > 0.1 * e.max()
    starts = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    keep = [s for k, s in enumerate(starts) if k == 0 or s - starts[k - 1] > SR // 10]
    return np.asarray(keep) / SR


def test_clicks_come_at_the_stretched_times_and_attacks_stay_sharp():
    x = _clicks(120.0, 4.0)
    rate = 1.1
    y = time_stretch(x, rate)
    want = np.arange(0.1, 3.95, 0.5) / rate
    got = _click_times(y)
    assert len(got) == len(want)
    np.testing.assert_allclose(got, want, atol=0.012)
    # each click's energy stays within 20 ms of its start; without the fresh phases at attacks it spreads more
    def spread(z):
        e = z.astype(float) ** 2
        near = sum(e[int(t * SR) - 80 : int(t * SR) + 320].sum() for t in want)
        return 1.0 - near / e.sum()

    assert spread(y) < 0.1
    assert spread(y) < spread(time_stretch(x, rate, reset_db=np.inf))


def test_rate_one_is_the_input_and_a_bad_rate_is_refused():
    x = _clicks(100.0, 1.0)
    np.testing.assert_array_equal(time_stretch(x, 1.0), x)
    assert time_stretch(np.zeros(0, np.float32), 1.2).size == 0
    with pytest.raises(ValueError):
        time_stretch(x, 0.0)


def test_blocks_change_nothing(monkeypatch):
    import v2meow.io.stretch as stretch

    x = _clicks(97.0, 3.0) + (0.1 * np.sin(2 * np.pi * 220 * np.arange(3 * SR) / SR)).astype(np.float32)
    whole = time_warp(x, [0.0, 1.0, 2.5], [0.2, 1.1, 2.4], 2 * SR, SR)
    monkeypatch.setattr(stretch, "BLOCK", 12)  # a few frames at a time: the phases and attacks carry across
    np.testing.assert_array_equal(time_warp(x, [0.0, 1.0, 2.5], [0.2, 1.1, 2.4], 2 * SR, SR), whole)
    monkeypatch.setattr(stretch, "BLOCK", 7)  # a block that is not a whole number of windows
    np.testing.assert_array_equal(time_warp(x, [0.0, 1.0, 2.5], [0.2, 1.1, 2.4], 2 * SR, SR), whole)


def test_a_warp_puts_each_anchor_where_it_is_asked():
    x = _clicks(60.0, 5.0, phase=0.5)  # clicks at 0.5, 1.5, 2.5, 3.5, 4.5 s
    y = time_warp(x, [0.3, 1.2, 2.4, 3.3], [0.5, 1.5, 2.5, 3.5], 4 * SR, SR)
    np.testing.assert_allclose(_click_times(y)[:4], [0.3, 1.2, 2.4, 3.3], atol=0.012)
    with pytest.raises(ValueError):
        time_warp(x, [0.0, 0.0], [0.0, 1.0], SR, SR)
