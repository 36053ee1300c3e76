"""v2meow's onset detection gives librosa.onset.onset_detect's onsets, number for number."""

import warnings

import numpy as np
import pytest

from v2meow.metrics.beats import BEAT_SAMPLE_RATE, HOP_LENGTH, MODES, ONSET_DELTA, ONSET_WAIT, detect_onsets
from v2meow.metrics.onsets import onset_times
from v2meow.tokenizers.mel import mel_filterbank

SR = BEAT_SAMPLE_RATE


def _signals():
    rng = np.random.default_rng(0)
    t = np.arange(4 * SR) / SR
    clicks = np.zeros_like(t)
    clicks[(np.arange(0, 4, 0.37) * SR).astype(int)] = 1.0
    notes = np.sin(2 * np.pi * np.where(t % 0.5 < 0.25, 440.0, 660.0) * t) * np.exp(-4 * (t % 0.25))
    swell = np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    yield "noise", (0.1 * rng.standard_normal(3 * SR)).astype(np.float32)
    yield "clicks on a tone", (0.2 * np.sin(2 * np.pi * 440 * t) + clicks).astype(np.float32)
    yield "plucked notes", (0.5 * notes + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    yield "a swell", (0.3 * swell).astype(np.float32)
    yield "shorter than the FFT", (0.1 * rng.standard_normal(1500)).astype(np.float32)


def test_the_mel_filterbank_is_librosas():
    import librosa

    np.testing.assert_allclose(mel_filterbank(SR, 2048, 128), librosa.filters.mel(sr=SR, n_fft=2048), atol=1e-7)


@pytest.mark.parametrize("name,y", list(_signals()))
@pytest.mark.parametrize("mode", sorted(MODES))
def test_onsets_are_librosas(name, y, mode):
    import librosa

    w = MODES[mode]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = librosa.onset.onset_detect(y=y, sr=SR, hop_length=HOP_LENGTH, units="time", wait=ONSET_WAIT,
                                         delta=ONSET_DELTA, pre_avg=w, post_avg=w, pre_max=w, post_max=w)
    got = onset_times(y, SR, HOP_LENGTH, w, ONSET_WAIT, ONSET_DELTA)
    assert len(got) == len(ref) and np.allclose(got, ref), (name, got, ref)
    np.testing.assert_array_equal(detect_onsets(y, SR, mode), got)
    if name == "clicks on a tone":
        assert len(got) >= 8  # eleven clicks: the test is not passing on empty lists


@pytest.mark.parametrize("median", [False, True])
def test_the_envelope_in_blocks_is_the_envelope_at_once(median, monkeypatch):
    import v2meow.metrics.onsets as onsets

    for _, y in _signals():
        whole = onsets.onset_envelope(y, SR, HOP_LENGTH, median=median)
        monkeypatch.setattr(onsets, "ENVELOPE_BLOCK", 7)  # a few frames a block, the last one short
        blocks = onsets.onset_envelope(y, SR, HOP_LENGTH, median=median)  # the same to float32 rounding
        np.testing.assert_allclose(blocks, whole, rtol=1e-5, atol=1e-5 * float(np.abs(whole).max()))
        monkeypatch.undo()


def test_silence_has_no_onsets():
    assert onset_times(np.zeros(SR, dtype=np.float32), SR, HOP_LENGTH, 3, ONSET_WAIT, ONSET_DELTA).size == 0


@pytest.mark.parametrize("bpm", [70.0, 120.0, 150.0])
def test_the_envelope_tempo_is_librosas(bpm):
    import librosa

    from v2meow.metrics.onsets import envelope_tempo, onset_envelope

    rng = np.random.default_rng(int(bpm))
    t = np.arange(8 * SR) / SR
    clicks = np.zeros_like(t)
    clicks[(np.arange(0.13, 8, 60.0 / bpm) * SR).astype(int)] = 1.0
    y = (0.2 * np.sin(2 * np.pi * 330 * t) + clicks + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    env = onset_envelope(y, SR, HOP_LENGTH)
    ours = envelope_tempo(env, SR, HOP_LENGTH)
    theirs = float(librosa.feature.tempo(onset_envelope=env, sr=SR, hop_length=HOP_LENGTH)[0])
    assert ours == pytest.approx(theirs, rel=1e-9)
    # the median over bands is the envelope beat_track reads (its default onset strength, aggregate=np.median)
    med = onset_envelope(y, SR, HOP_LENGTH, median=True)
    ref = librosa.onset.onset_strength(y=y, sr=SR, hop_length=HOP_LENGTH, aggregate=np.median)
    np.testing.assert_allclose(med, ref, atol=1e-4 * float(ref.max()))
    assert abs(ours - bpm) <= 0.04 * bpm  # and it is the clicks' tempo
    assert envelope_tempo(np.zeros(0), SR, HOP_LENGTH) is None


def test_track_pulse_places_beats_where_librosas_tracker_does():
    import librosa
    import mir_eval

    from v2meow.metrics.onsets import envelope_tempo, onset_envelope, track_pulse

    rng = np.random.default_rng(3)
    t = np.arange(8 * SR) / SR
    y = 0.05 * np.sin(2 * np.pi * 330 * t)
    beats = np.arange(0.21, 7.5, 60.0 / 104)
    for k, b in enumerate(beats):  # a kick on every beat, a softer one between every other pair
        for at, gain in ((b, 1.0), (b + 30.0 / 104, 0.3 if k % 2 else 0.0)):
            i = int(at * SR)
            y[i : i + 600] += gain * rng.normal(0, 0.4, 600) * np.exp(-np.arange(600) / 120.0)
    y = y.astype(np.float32)
    env = onset_envelope(y, SR, HOP_LENGTH, median=True)
    bpm = envelope_tempo(env, SR, HOP_LENGTH)
    mine = track_pulse(env, 60.0 / bpm * SR / HOP_LENGTH) * HOP_LENGTH / SR
    _, theirs = librosa.beat.beat_track(y=y, sr=SR, hop_length=HOP_LENGTH, units="time")
    assert mir_eval.beat.f_measure(theirs, mine) >= 0.9
    assert mir_eval.beat.f_measure(beats, mine, f_measure_threshold=0.07) >= 0.9
    assert track_pulse(np.zeros(100), 20.0).size == 0
