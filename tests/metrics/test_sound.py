"""v2meow.metrics.sound: the measures that catch a hum, a level error and clipping, on signals of known content."""

import math

import pytest
import torch

from v2meow.metrics.sound import (
    band_power_share,
    clipped_fraction,
    fine_spectrum_db,
    harmonic_tone,
    msstft_l1,
    octave_band_db,
    octave_bands,
    partial_share,
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


def test_partial_share_tells_a_tone_on_pitch_from_one_moved_onto_a_grid():
    tone = harmonic_tone(55.0, 3.0, SR)
    assert float(rms_dbfs(tone)) == pytest.approx(-18.0, abs=1e-3)
    moved = harmonic_tone(50.0, 3.0, SR)  # what a renderer snapping partials to its 50 Hz frame rate does
    share = partial_share(torch.stack([tone, moved, 0.2 * tone]), SR, [55.0 * k for k in range(1, 5)])
    assert share[0] > 0.95 and share[2] > 0.95  # level-free
    assert share[1] < 0.01
    half = partial_share(tone + harmonic_tone(57.0, 3.0, SR), SR, [55.0 * k for k in range(1, 5)])
    assert 0.3 < float(half) < 0.7  # a second tone 2 Hz off, as loud: about half on pitch


def test_fine_spectrum_sees_a_small_pitch_error_that_msstft_hardly_does():
    ref = harmonic_tone(110.0, 3.0, SR)[None]
    noise = 1e-3 * torch.randn(1, 3 * SR, generator=torch.Generator().manual_seed(0))
    ref = ref + noise
    detuned = harmonic_tone(113.0, 3.0, SR)[None] + noise  # half a semitone: within one 2048-point STFT bin
    assert float(fine_spectrum_db(ref, ref, SR)) == 0.0
    assert float(fine_spectrum_db(0.3 * ref, ref, SR)) < 1e-3  # a level change is not its business
    noisier = 0.5 * ref + 3 * noise  # quieter, with a noise floor 10 dB up
    # MS-STFT ranks the noise floor far worse than half a semitone; the fine spectrum ranks them the other way
    assert float(msstft_l1(detuned, ref)) < float(msstft_l1(noisier, ref)) / 3
    far, floor_up = float(fine_spectrum_db(detuned, ref, SR)), float(fine_spectrum_db(noisier, ref, SR))
    assert far > 3 * floor_up
    assert 0 < float(fine_spectrum_db(ref + 0.1 * detuned, ref, SR)) < far
    with pytest.raises(ValueError):
        fine_spectrum_db(ref, ref[:, :-1], SR)
