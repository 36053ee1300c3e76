"""v2meow.metrics.sound: the measures that catch a hum, a level error and clipping, on signals of known content."""

import math

import pytest
import torch

from v2meow.metrics.sound import (
    band_power_share,
    clipped_fraction,
    msstft_l1,
    octave_band_db,
    octave_bands,
    rms_dbfs,
    scale_to_dbfs,
)

SR = 16000


def _tone(freq: float, amp: float, seconds: float = 2.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return amp * torch.sin(2 * math.pi * freq * t)


def test_band_share_finds_a_50_hz_line():
    music = _tone(440, 0.5)
    hum = _tone(50, 0.1)
    share = band_power_share(torch.stack([music, music + hum]), SR, 45, 55)
    assert share[0] < 1e-4
    assert share[1] == pytest.approx(0.01 / (0.25 + 0.01), rel=0.02)  # power ratio of the two sines


def test_octave_band_levels_place_a_tone_in_its_band():
    bands = octave_bands(SR)
    assert bands[0] == (31.25, 62.5) and bands[-1] == (4000.0, 8000.0) and len(bands) == 8
    db = octave_band_db(_tone(440, 0.5), SR)[0]  # 440 Hz lies in [250, 500)
    k = next(i for i, (lo, hi) in enumerate(bands) if lo <= 440 < hi)
    assert db[k] == pytest.approx(10 * math.log10(0.125), abs=0.2)  # the sine's mean square, in dB
    assert (db[torch.arange(len(bands)) != k] < db[k] - 40).all()


def test_levels_and_clipping():
    x = _tone(440, 0.5)
    assert float(rms_dbfs(x)) == pytest.approx(10 * math.log10(0.125), abs=1e-3)
    for level in (-36.0, -24.0, -12.0):
        assert float(rms_dbfs(scale_to_dbfs(x, level))) == pytest.approx(level, abs=1e-3)
    assert float(clipped_fraction(x)) == 0.0
    loud = scale_to_dbfs(x, 0.0).clamp(-1, 1)  # a sine at 0 dBFS RMS has peaks at 1.41: clipped
    assert 0.3 < float(clipped_fraction(loud)) < 0.7


def test_msstft_l1_is_zero_on_identity_and_grows_with_damage():
    x = _tone(440, 0.3)[None] + 0.01 * torch.randn(1, 2 * SR, generator=torch.Generator().manual_seed(0))
    assert float(msstft_l1(x, x)) == 0.0
    mild, strong = float(msstft_l1(0.9 * x, x)), float(msstft_l1(0.5 * x, x))
    assert 0 < mild < strong
    with pytest.raises(ValueError):
        msstft_l1(x, x[:, :-1])
