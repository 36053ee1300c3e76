"""A named tempo: parsed from the prompt, turned into the rhythm streams of a picture pulsing at that tempo; and
the steady pulse of a picture that moves on one, read off its beat clock."""

from __future__ import annotations

import mir_eval
import numpy as np
import pytest

from v2meow.errors import UserError
from v2meow.features.beat import clock_beats
from v2meow.features.registry import EncoderConfig, build_encoder
from v2meow.features.tempo import (
    MAX_BPM,
    MIN_BPM,
    STEADY_MIN_SECONDS,
    STEADY_TOLERANCE,
    Pulse,
    check_tempo,
    clock_phase,
    impose_pulses,
    named_pulse,
    prompt_tempo,
    pulse_features,
    steady_pulse,
    steady_pulses,
    tempo_beats,
)


@pytest.mark.parametrize("prompt, bpm", [
    ("upbeat pop at 128 BPM", 128.0),
    ("warm acoustic guitar, 92bpm", 92.0),
    ("slow strings at 60.5 beats per minute", 60.5),
    ("120 BPM, then 120 BPM again", 120.0),
    ("fast loud brass and drums", None),
    ("music from 1985", None),
    (None, None),
])
def test_a_prompt_names_its_tempo(prompt, bpm):
    assert prompt_tempo(prompt) == bpm


@pytest.mark.parametrize("prompt", ["a drone at 5 BPM", "at 90 BPM and 140 BPM", "at 999 bpm"])
def test_a_tempo_the_stages_cannot_read_is_refused_in_one_sentence(prompt):
    with pytest.raises(UserError, match=r"(must be between|more than one tempo).*\.$"):
        prompt_tempo(prompt)
    with pytest.raises(UserError):
        check_tempo(MIN_BPM - 1)
    with pytest.raises(UserError):
        check_tempo(float("nan"))
    assert check_tempo(MAX_BPM) == MAX_BPM and check_tempo(None) is None


def _encoders():
    return [build_encoder(EncoderConfig(name=n, rate=r)) for n, r in (("appearance", 1.0), ("motion", 6.0),
                                                                     ("beat", 10.0))]


@pytest.mark.parametrize("bpm", [70.0, 150.0])
def test_the_pulse_reads_as_that_tempo_to_the_rhythm_encoders(bpm):
    feats = pulse_features(_encoders(), bpm, 10.0, phase=0.3)
    assert set(feats) == {"motion", "beat"} and feats["motion"].shape == (60, 38) and feats["beat"].shape == (100, 4)
    period = feats["motion"][15:45, 27]  # the motion encoder's dominant period, away from the edges
    assert np.all(np.abs(period - 60.0 / bpm) < 0.03), period
    assert feats["motion"][15:45, 26].min() > 0.6  # strongly periodic
    beats = tempo_beats(bpm, 10.0, 0.3)
    assert beats[0] == pytest.approx(0.3) and np.allclose(np.diff(beats), 60.0 / bpm)
    assert mir_eval.beat.f_measure(beats, clock_beats(feats["beat"], 10.0)) > 0.9


def test_the_pulse_is_phased_to_the_pictures_own_peaks():
    rate, bpm = 10.0, 120.0
    novelty = np.zeros(100)
    novelty[[4, 9, 14, 19, 24, 29]] = 1.0  # peaks at 0.45, 0.95, ... s (window centres), every 0.5 s
    assert clock_phase(novelty, rate, bpm) == pytest.approx(0.45, abs=0.02)
    assert clock_phase(np.zeros(100), rate, bpm) == 0.0  # nothing moves: the first beat at the start


def test_imposing_a_tempo_keeps_what_the_picture_shows():
    encs = _encoders()
    rng = np.random.default_rng(0)
    feats = {"appearance": rng.normal(size=(10, 56)).astype(np.float32),
             "motion": rng.normal(size=(60, 38)).astype(np.float32),
             "beat": np.abs(rng.normal(size=(100, 4))).astype(np.float32)}
    before = {k: v.copy() for k, v in feats.items()}
    out, beats = impose_pulses(feats, encs, [named_pulse(feats, encs, 100.0, 10.0)])
    assert all(np.array_equal(feats[k], before[k]) for k in feats)  # inputs untouched
    assert out["appearance"] is feats["appearance"]
    assert {k: v.shape for k, v in out.items()} == {k: v.shape for k, v in feats.items()}
    assert not np.allclose(out["motion"], feats["motion"]) and not np.allclose(out["beat"], feats["beat"])
    assert np.allclose(np.diff(beats), 0.6) and 0.0 <= beats[0] < 0.6
    assert mir_eval.beat.f_measure(beats, clock_beats(out["beat"], 10.0)) > 0.9


def _circular_gap(a: float, b: float, period: float) -> float:
    d = (a - b) % period
    return min(d, period - d)


@pytest.mark.parametrize("bpm, phase", [(96.0, 0.25), (150.0, 0.05), (72.0, 0.7)])
def test_a_picture_on_a_steady_pulse_gives_its_tempo_and_phase(bpm, phase):
    feats = pulse_features(_encoders(), bpm, 10.0, phase=phase)
    found = steady_pulse(feats["beat"], 10.0, 10.0)
    assert found is not None
    tempo, at = found
    assert tempo == pytest.approx(bpm, rel=STEADY_TOLERANCE)
    assert _circular_gap(at, phase, 60.0 / bpm) < 0.05  # the clock ticks within a frame or two of the flash
    encs = _encoders()
    out, beats = impose_pulses(feats, encs, [named_pulse(feats, encs, tempo, 10.0, at)])  # the phase given is used
    assert beats[0] == pytest.approx(at % (60.0 / tempo))


def test_no_steady_pulse_in_a_still_picture_a_changing_one_or_a_short_one():
    encs = _encoders()
    assert steady_pulse(np.zeros((100, 4), np.float32), 10.0, 10.0) is None  # nothing moves
    slow = pulse_features(encs, 80.0, 5.0, phase=0.2)["beat"]
    fast = pulse_features(encs, 140.0, 5.0, phase=0.2)["beat"]
    assert steady_pulse(np.concatenate([slow, fast]), 10.0, 10.0) is None  # the tempo changes halfway
    assert steady_pulse(np.concatenate([fast, fast]), 10.0, 10.0) is not None  # the same pulse twice is steady
    # the pulse only in the first 4 s of 10: the rest of the picture does not move on it
    short = pulse_features(encs, 120.0, 4.0, phase=0.1)["beat"]
    assert steady_pulse(np.concatenate([short, np.zeros((60, 4), np.float32)]), 10.0, 10.0) is None
    assert steady_pulse(short, 10.0, 4.0) is not None


def test_each_steady_stretch_of_a_changing_picture_is_locked_on_its_own():
    encs = _encoders()
    still = np.zeros((60, 4), np.float32)
    slow = pulse_features(encs, 90.0, 8.0, phase=0.3)["beat"]
    fast = pulse_features(encs, 140.0, 8.0, phase=0.1)["beat"]
    beat = np.concatenate([still, slow, fast])  # 6 s still, 8 s at 90 BPM, 8 s at 140 BPM
    assert steady_pulse(beat, 10.0, 22.0) is None  # not one pulse over the whole clip
    assert steady_pulses(beat, 10.0, 22.0, min_seconds=0) == []  # stretches off: the whole clip or nothing
    pulses = steady_pulses(beat, 10.0, 22.0)
    assert [round(p.bpm / 10) for p in pulses] == [9, 14]
    first, second = pulses
    assert 5.0 <= first.start < 7.0 and first.end <= second.start and second.end == 22.0
    assert _circular_gap(first.phase, 6.3, first.period) < 0.05  # phased on each stretch's own beats
    assert _circular_gap(second.phase, 14.1, second.period) < 0.05
    feats = {"motion": np.random.default_rng(0).normal(size=(132, 38)).astype(np.float32), "beat": beat}
    out, beats = impose_pulses(feats, encs, pulses)
    a = int(first.start * 6.0)
    assert np.array_equal(out["motion"][:a], feats["motion"][:a])  # the still part is left as the picture shows it
    assert not np.allclose(out["motion"][a + 6 :], feats["motion"][a + 6 :])
    assert np.all([any(p.start <= t < p.end for p in pulses) for t in beats])
    assert np.allclose(np.diff(first.beats()), first.period)
    # a steady stretch shorter than STEADY_MIN_SECONDS is left alone
    short = np.concatenate([still, pulse_features(encs, 120.0, STEADY_MIN_SECONDS - 2, phase=0.2)["beat"], still])
    assert steady_pulses(short, 10.0, len(short) / 10.0) == []


def test_a_pulse_over_the_whole_clip_is_imposed_as_a_named_tempo_is():
    encs = _encoders()
    feats = pulse_features(encs, 100.0, 10.0, phase=0.2)
    pulses = steady_pulses(feats["beat"], 10.0, 10.0)
    assert len(pulses) == 1 and (pulses[0].start, pulses[0].end) == (0.0, 10.0)
    a, beats_a = impose_pulses(feats, encs, pulses)
    b, beats_b = impose_pulses(feats, encs, [named_pulse(feats, encs, pulses[0].bpm, 10.0, pulses[0].phase)])
    assert all(np.array_equal(a[k], b[k]) for k in a) and np.allclose(beats_a, beats_b)


def test_a_stretch_that_starts_between_windows_keeps_its_beats_in_place():
    encs = _encoders()
    feats = {"motion": np.zeros((120, 38), np.float32), "beat": np.zeros((200, 4), np.float32)}
    pulse = Pulse(6.34, 17.0, 100.0, 6.5)  # 6.34 s lies between the beat stream's windows (0.1 s) and motion's
    out, beats = impose_pulses(feats, encs, [pulse])
    assert np.allclose(beats, pulse.beats()) and beats[0] == pytest.approx(6.5)
    clock = clock_beats(out["beat"], 10.0)
    inner = beats[(beats > 8.0) & (beats < 16.0)]
    assert len(inner) >= 12
    assert np.max([np.min(np.abs(clock - b)) for b in inner]) < 0.025  # the clock ticks on the pulse's own beats
    assert not out["beat"][:63].any() and not out["motion"][:38].any()  # before the stretch: as it was


def test_a_clock_only_lock_keeps_the_pictures_motion_and_novelty():
    encs = _encoders()
    rng = np.random.default_rng(1)
    shapes = {"motion": (60, 38), "beat": (100, 4)}
    feats = {name: rng.normal(size=shape).astype(np.float32) for name, shape in shapes.items()}
    pulse = Pulse(0.0, 10.0, 110.0, 0.25)
    full, _ = impose_pulses(feats, encs, [pulse])
    clock, beats = impose_pulses(feats, encs, [pulse], clock_only=True)
    assert np.array_equal(clock["motion"], feats["motion"])  # the picture's own motion stays
    assert np.array_equal(clock["beat"][:, 3], feats["beat"][:, 3])  # and its novelty
    assert np.array_equal(clock["beat"][:, :3], full["beat"][:, :3])  # the clock is the pulse's
    assert not np.array_equal(full["motion"], feats["motion"])
    assert np.allclose(beats, pulse.beats())


def test_a_mixed_lock_blends_the_pulse_with_the_picture_inside_the_stretch_only():
    encs = _encoders()
    rng = np.random.default_rng(2)
    feats = {"motion": rng.normal(size=(120, 38)).astype(np.float32),
             "beat": rng.normal(size=(200, 4)).astype(np.float32)}
    pulse = Pulse(5.0, 20.0, 96.0, 5.2)
    full, _ = impose_pulses(feats, encs, [pulse])
    half, beats = impose_pulses(feats, encs, [pulse], mix=0.25)
    for name in feats:
        assert np.allclose(half[name], 0.25 * full[name] + 0.75 * feats[name], atol=1e-6)
        assert not np.array_equal(half[name], feats[name])
    assert np.array_equal(half["beat"][:50], feats["beat"][:50])  # outside the stretch the picture's own rows
    assert np.allclose(beats, pulse.beats())
    with pytest.raises(ValueError):
        impose_pulses(feats, encs, [pulse], mix=0.0)
