"""Best of N that prefers the picture's tempo (``generation.tempo_pick``) and the music's tempo it reads."""

import numpy as np
import pytest
from media import make_video

import v2meow.metrics.alignment as alignment
from v2meow.metrics.alignment import CandidateScore, VideoBeats, music_tempo, pick_at_tempo
from v2meow.pipeline import V2Meow

SR = 16000


def _scores(totals, tempos):
    return [CandidateScore(i, i, t, None, t, np.zeros(0), tempo=bpm) for i, (t, bpm) in enumerate(zip(totals, tempos))]


def _beats(bpm, source):
    return VideoBeats(np.arange(0.2, 10.0, 60.0 / bpm), np.zeros(0), np.zeros(0), 10.0, source)


def test_the_best_candidate_at_the_pulses_tempo_is_kept():
    scores = _scores([0.9, 0.4, 0.6, 0.5], [150.0, 101.0, 97.0, None])
    assert pick_at_tempo(scores, _beats(100.0, "beat clock")) == 2  # 1 and 2 are near 100; 2 scores higher
    assert pick_at_tempo(scores, _beats(100.0, "tempo")) == 2
    assert pick_at_tempo(scores, _beats(100.0, "motion")) == 0  # no pulse: the plain best
    assert pick_at_tempo(scores, _beats(130.0, "beat clock")) == 0  # none near 130: the plain best
    assert pick_at_tempo(scores, _beats(100.0, "beat clock"), tolerance=0.02) == 1  # only 101 is that near


def test_the_music_tempo_is_its_clicks_tempo_and_none_for_silence():
    t = np.arange(8 * SR) / SR
    for bpm in (90.0, 128.0):
        clicks = np.zeros_like(t)
        clicks[(np.arange(0.1, 8.0, 60.0 / bpm) * SR).astype(int)] = 1.0
        y = (0.2 * np.sin(2 * np.pi * 330 * t) + clicks).astype(np.float32)
        assert music_tempo(y, SR) == pytest.approx(bpm, rel=0.04)
    assert music_tempo(np.zeros(SR, np.float32), SR) is None


@pytest.mark.usefixtures("one_torch_thread")
def test_generate_keeps_the_candidate_at_the_named_tempo(tmp_path, monkeypatch):
    model = V2Meow.from_preset("debug", seed=0)
    video = make_video(tmp_path / "clip.mp4", seconds=3.0, fps=10, size=(64, 48), pattern="flash", period=1.0)
    kw = dict(seconds=2.0, seed=3, candidates=3, tempo=120.0)
    plain = model.generate(video, **kw)
    other = (plain.chosen + 1) % 3
    monkeypatch.setattr(alignment, "music_tempo", lambda wav, sr, _it=iter(range(3)): 120.0 if next(_it) == other
                        else 200.0)
    model.cfg.generation.tempo_pick = True
    try:
        picked = model.generate(video, **kw)
    finally:
        model.cfg.generation.tempo_pick = False
    assert picked.chosen == other and picked.seed == kw["seed"] + other
    assert [s.total for s in picked.scores] == [s.total for s in plain.scores]  # the same candidates, scored alike
    np.testing.assert_allclose(picked.wav, model.generate(video, **{**kw, "seed": picked.seed, "candidates": 1}).wav,
                               atol=1e-5)


def test_the_command_line_says_why_a_lower_score_was_kept(capsys):
    from types import SimpleNamespace

    from v2meow.cli import _print_candidates

    scores = [CandidateScore(i, 10 + i, t, None, t, np.zeros(0), tempo=bpm)
              for i, (t, bpm) in enumerate([(0.5, 150.0), (0.3, 99.0)])]
    _print_candidates(SimpleNamespace(scores=scores, chosen=1), quiet=True)
    assert "kept candidate 1 (seed 11, score 0.300, its tempo 99 BPM on the picture's pulse)" in capsys.readouterr().err
    _print_candidates(SimpleNamespace(scores=scores, chosen=0), quiet=True)
    assert "kept candidate 0 (seed 10, score 0.500);" in capsys.readouterr().err
