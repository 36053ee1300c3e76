"""Putting a soundtrack on the picture's steady pulse (v2meow.metrics.alignment.fit_to_pulse, generation.fit_pulse)."""

import numpy as np
import pytest
import torch
from media import make_video

import v2meow.metrics.alignment as alignment
from v2meow.metrics.alignment import fit_to_pulse, fit_to_pulses
from v2meow.pipeline import FIT_PULSE, V2Meow
from v2meow.progress import AGAIN

SR = 16000


def _music(bpm, seconds, phase):
    """Noise clicks on a ``bpm`` beat from ``phase`` over a quiet tone."""
    t = np.arange(int(seconds * SR)) / SR
    x = 0.05 * np.sin(2 * np.pi * 330 * t)
    rng = np.random.default_rng(1)
    for b in np.arange(phase, seconds - 0.05, 60.0 / bpm):
        i = int(b * SR)
        x[i : i + 320] += rng.normal(0, 0.5, 320) * np.exp(-np.arange(320) / 60.0)
    return x.astype(np.float32)


def _click_times(y):
    e = np.convolve(y.astype(float) ** 2, np.ones(32), "same")
    above = e > 0.1 * e.max()
    starts = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    return np.asarray([s for k, s in enumerate(starts) if k == 0 or s - starts[k - 1] > SR // 10]) / SR


@pytest.mark.parametrize("music_bpm", [92.0, 110.0])
def test_music_near_the_pulse_has_its_beats_moved_onto_the_pulses(music_bpm):
    seconds, pulse_bpm = 6.0, 100.0
    beats = np.arange(0.37, seconds, 60.0 / pulse_bpm)
    wav = _music(music_bpm, (seconds + 0.6) * 1.15, phase=0.05)
    before = _click_times(wav[: int(seconds * SR)])
    assert np.max([np.min(np.abs(before - b)) for b in beats]) > 0.1  # as made, the clicks drift off the pulse
    out, fit = fit_to_pulse(wav, SR, beats, int(seconds * SR), max_stretch=0.15)
    assert out.shape == (int(seconds * SR),) and out.dtype == np.float32
    assert fit is not None and fit.rate == pytest.approx(pulse_bpm / music_bpm, abs=0.03)
    assert fit.beats >= len(beats) - 1 and 0.0 <= fit.shift < 0.7
    clicks = _click_times(out)
    assert np.max([np.min(np.abs(clicks - b)) for b in beats]) < 0.03  # every beat of the pulse has a click
    assert len(clicks) == len(beats)  # and no click lies off it


def test_music_too_far_from_the_pulse_or_silent_is_left_as_it_is():
    beats = np.arange(0.2, 6.0, 0.6)  # 100 BPM
    wav = _music(150.0, 8.0, phase=0.1)
    out, fit = fit_to_pulse(wav, SR, beats, 6 * SR, max_stretch=0.1)
    assert fit is None and np.array_equal(out, wav[: 6 * SR])
    out, fit = fit_to_pulse(wav, SR, beats, 6 * SR, max_stretch=0.5)  # 150 is within half of 100
    assert fit is not None and fit.rate == pytest.approx(100.0 / 150.0, abs=0.03)
    silent, fit = fit_to_pulse(np.zeros(8 * SR, np.float32), SR, beats, 6 * SR, max_stretch=0.1)
    assert fit is None and silent.size == 6 * SR


def _nearest(clicks, beats):
    return np.asarray([np.min(np.abs(clicks - b)) for b in beats])


def test_each_stretch_is_fitted_on_its_own_and_the_music_between_plays_as_made():
    from v2meow.features.tempo import Pulse

    seconds = 20.0
    wav = _music(92.0, (seconds + 0.7) * 1.15, phase=0.05)
    made = _click_times(wav[: int(seconds * SR)])
    first, second = Pulse(3.0, 9.0, 100.0, 3.31), Pulse(12.5, 18.5, 84.0, 12.9)
    out, fits = fit_to_pulses(wav, SR, [first, second], int(seconds * SR), max_stretch=0.15)
    assert out.shape == (int(seconds * SR),) and len(fits) == 2
    assert [(f.start, f.end) for f in fits] == [(3.0, 9.0), (12.5, 18.5)]
    assert fits[0].rate == pytest.approx(100 / 92, abs=0.03) and fits[1].rate == pytest.approx(84 / 92, abs=0.03)
    clicks = _click_times(out)
    before = made[made < 2.9]
    assert np.max(_nearest(clicks, before)) < 0.02  # before the first stretch: the music as made
    for p in (first, second):  # the later beats of each stretch on its pulse (the first few take up the phase)
        assert np.max(_nearest(clicks, p.beats()[4:])) < 0.03
    between = clicks[(clicks > 9.3) & (clicks < 12.2)]
    assert between.size >= 3 and np.allclose(np.diff(between), 60 / 92, atol=0.02)  # between them: its own pace
    alone, fit1 = fit_to_pulses(wav, SR, [first], int(seconds * SR), max_stretch=0.15)
    assert len(fit1) == 1 and np.array_equal(alone[: int(12 * SR)], out[: int(12 * SR)])
    far, none = fit_to_pulses(wav, SR, [Pulse(3.0, 9.0, 150.0, 3.3)], int(seconds * SR), max_stretch=0.15)
    assert none == [] and np.array_equal(far, wav[: int(seconds * SR)])  # too far from its tempo: as made


@pytest.mark.usefixtures("one_torch_thread")
def test_generate_fits_the_steady_stretches_when_asked(tmp_path, monkeypatch):
    from v2meow.config import load_preset
    from v2meow.features.registry import EncoderConfig
    from v2meow.features.tempo import Pulse

    cfg = load_preset("debug")
    model = V2Meow(cfg.replace(encoders=[*cfg.encoders, EncoderConfig(name="beat", rate=10.0)])).eval()
    video = make_video(tmp_path / "clip.mp4", seconds=3.0, fps=10, size=(64, 48), pattern="noise")
    stretches = [Pulse(0.5, 1.5, 120.0, 0.6), Pulse(1.8, 3.0, 100.0, 2.0)]
    asked = []
    monkeypatch.setattr("v2meow.pipeline.steady_pulses", lambda beat, rate, seconds, least: asked.append(least)
                        or (stretches if least > 0 else []))
    calls = []

    def fake_fit(wav, sr, pulses, samples, max_stretch):
        calls.append((wav.size, pulses))
        return wav[:samples].copy(), [alignment.PulseFit(110.0, 1.0, 0.0, 2, p.start, p.end) for p in pulses]

    monkeypatch.setattr(alignment, "fit_to_pulses", fake_fit)
    model.cfg.generation.fit_pulse = 0.1
    try:
        assert model.generate(video, seconds=3.0, seed=1, candidates=1).fits == [] and not calls  # off: whole only
        model.cfg.generation.fit_stretch_seconds = 1.0
        track = model.generate(video, seconds=3.0, seed=1, candidates=1)
    finally:
        model.cfg.generation.fit_pulse, model.cfg.generation.fit_stretch_seconds = 0.0, 0.0
    assert asked == [0.0, 1.0] and calls[0][1] == stretches
    assert calls[0][0] == round((3.0 + 0.6) * 1.1 * model.sample_rate)  # the margin of the slower pulse
    assert [(f.start, f.end) for f in track.fits] == [(0.5, 1.5), (1.8, 3.0)]


@pytest.mark.usefixtures("one_torch_thread")
def test_generate_makes_a_margin_and_fits_every_candidate(tmp_path, monkeypatch):
    model = V2Meow.from_preset("debug", seed=0)
    video = make_video(tmp_path / "clip.mp4", seconds=3.0, fps=10, size=(64, 48), pattern="flash", period=1.0)
    kw = dict(seconds=2.0, seed=3, candidates=2, tempo=120.0)
    plain = model.generate(video, **kw)
    assert plain.fits == []
    calls = []

    def fake_fit(wav, sr, pulses, samples, max_stretch):
        calls.append((wav.size, pulses, samples, max_stretch))
        return wav[-samples:].copy(), [alignment.PulseFit(120.0, 1.0, (wav.size - samples) / sr, 3, 0.0, 2.0)]

    monkeypatch.setattr(alignment, "fit_to_pulses", fake_fit)
    model.cfg.generation.fit_pulse = 0.1
    try:
        fitted = model.generate(video, **kw)
    finally:
        model.cfg.generation.fit_pulse = 0.0
    made = (2.0 + 0.5) * 1.1  # a beat at 120 BPM more, and a tenth
    assert [c[0] for c in calls] == [round(made * model.sample_rate)] * 2  # each candidate, made with the margin
    assert all(c[2] == plain.wav.size and c[3] == 0.1 for c in calls)
    [pulse] = calls[0][1]  # the named tempo's, over the whole clip
    assert (pulse.start, pulse.end) == (0.0, 2.0) and pulse.bpm == pytest.approx(120.0)
    assert fitted.wav.shape == plain.wav.shape and fitted.fits[0].shift == pytest.approx(made - 2.0, abs=1e-3)
    assert fitted.acoustic.shape[-1] > plain.acoustic.shape[-1]  # the tokens of the music as made, margin and all
    calls.clear()
    model.cfg.generation.fit_pulse = 0.1
    try:
        assert model.generate(video, fit_pulse=False, **kw).fits == [] and not calls  # turned off
    finally:
        model.cfg.generation.fit_pulse = 0.0
    model.generate(video, fit_pulse=True, **kw)  # asked for where the config sets none: FIT_PULSE
    assert [c[3] for c in calls] == [FIT_PULSE] * 2


def test_the_ab_report_pairs_the_two_sides_clip_by_clip(tmp_path, capsys):
    import json

    from script_module import load_script

    def side(fs, tempo_hits):
        clips = [{"video": f"{k}_100.mp4", "kind": k, "f_matched": f, "f_mismatched": 0.2, "acc1": a,
                  "sound": {"lufs": -18.0, "boom_db": -20.0, "tonal_clarity": 0.7, "pulse_clarity": 0.2,
                            "flatness": 0.01}}
                 for k, f, a in zip(("pulse", "bounce", "figure"), fs, tempo_hits)]
        return {"f_matched": sum(fs) / 3, "f_mismatched": 0.2, "gap": sum(fs) / 3 - 0.2, "gap_se": 0.1,
                "gap_positive": 1.0, "acc1": sum(tempo_hits) / 3, "acc2": 1.0, "still_beats": [], "clips": clips}

    res = {"fit off": side([0.5, 0.3, 0.4], [1, 0, 0]), "fit on": side([0.9, 0.7, 0.4], [1, 1, 0])}
    load_script("lock_tempo").report(res, sound=True, json_path=str(tmp_path / "ab" / "ab.json"))
    out = capsys.readouterr().out
    assert "paired beat F gap, on - off: +0.267" in out and "(3 clips: 2 better, 0 worse)" in out
    assert "| bounce | 0.300 | 0.700 | 0 % | 100 % |" in out and "| figure | fit on |" in out
    assert json.loads((tmp_path / "ab" / "ab.json").read_text()) == res


def test_a_named_tempo_is_made_from_the_pictures_rhythm_first_and_on_its_pulse_where_none_comes_near(
        tmp_path, monkeypatch):
    from v2meow import pipeline

    model = V2Meow.from_preset("debug", seed=0)
    video = make_video(tmp_path / "clip.mp4", seconds=3.0, fps=10, size=(64, 48), pattern="flash", period=1.0)
    kw = dict(seconds=2.0, seed=3, candidates=2, tempo=120.0)
    model.cfg.generation.fit_pulse, model.cfg.generation.named_fit = 0.1, 0.3
    read, calls = [], []
    sweep = pipeline.sweep_semantic
    monkeypatch.setattr(pipeline, "sweep_semantic", lambda m, feats, *a: read.append(feats) or sweep(m, feats, *a))

    def fake_fit(wav, sr, pulses, samples, max_stretch):
        calls.append(max_stretch)
        return wav[:samples].copy(), [alignment.PulseFit(120.0, 1.0, 0.0, 3, 0.0, 2.0)]

    monkeypatch.setattr(alignment, "fit_to_pulses", fake_fit)
    read_tempo = iter([])  # the tempo best of N reads for each candidate, in turn
    monkeypatch.setattr(alignment, "music_tempo", lambda wav, sr: next(read_tempo))
    read_tempo = iter([80.0, 111.0] + [120.0] * 2)  # one candidate at 120 BPM within 8 %: made once, its own rhythm
    stages = []
    kept = model.generate(video, progress=lambda s, d, t: stages.append(s), **kw)
    assert AGAIN not in stages
    model.generate(video, seconds=2.0, seed=3, candidates=2)  # no tempo named: the features as read
    assert calls == [0.3, 0.3] and not kept.remade and kept.fits and kept.tempo == 120.0
    assert len(read) == 2 and all(torch.equal(read[0][k], read[1][k]) for k in read[0])
    rhythm = [k for k in read[0] if k in ("motion", "beat")]
    assert rhythm and len(rhythm) < len(read[0])

    read.clear(), calls.clear()
    read_tempo = iter([80.0, 110.0] + [120.0] * 2)  # none at the tempo: made again on the pulse, fit within fit_pulse
    stages = []
    remade = model.generate(video, progress=lambda s, d, t: stages.append(s), **kw)
    assert calls == [0.3, 0.3, 0.1, 0.1] and remade.remade and remade.tempo == 120.0
    again = stages.index(AGAIN)  # said once, between the two passes
    assert stages.count(AGAIN) == 1 and "decode" in stages[:again] and stages[again + 1] == "semantic"
    own, pulse = read
    assert all(torch.equal(own[k], pulse[k]) is (k not in rhythm) for k in own)  # the pulse's rhythm streams

    read.clear(), calls.clear()
    model.cfg.generation.named_fit = 0.0  # the pulse's streams at once: the same candidates as the second pass
    read_tempo = iter([120.0] * 2)
    direct = model.generate(video, **kw)
    assert calls == [0.1, 0.1] and not direct.remade
    assert all(torch.equal(read[0][k], v) for k, v in pulse.items())
    assert torch.equal(direct.semantic, remade.semantic) and np.array_equal(direct.wav, remade.wav)
    model.cfg.generation.named_fit = 0.3
    read_tempo = iter([120.0] * 2)
    assert not model.generate(video, fit_pulse=False, **kw).remade  # no fit: the pulse's streams, made once
    assert calls == [0.1, 0.1]
