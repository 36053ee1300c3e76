"""`v2meow generate` for creators: best-of-N candidates, --plot pictures and --start."""

import os
import re

import numpy as np
import pytest
import soundfile as sf
import torch
from media import make_video

from v2meow.cli import main
from v2meow.errors import UserError
from v2meow.generation import MAX_CANDIDATES, candidate_seeds
from v2meow.metrics.alignment import CandidateScore, best_candidate, video_beats
from v2meow.pipeline import V2Meow
from v2meow.sampling import SamplingConfig, sample

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCORE_LINE = re.compile(r"^candidate (\d+) \(seed (\d+)\): beat alignment ([0-9.]+) = score ([0-9.]+)$")
KEPT_LINE = re.compile(r"^kept candidate (\d+) \(seed (\d+), score ([0-9.]+)\)")


@pytest.fixture(scope="module")
def model():
    return V2Meow.from_preset("debug", seed=0)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    # brightens at 0 s and 1.6 s, darkens at 0.8 s and 2.4 s: one visual beat (a brightening) at 1.6 s
    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", seconds=3.0, fps=10, size=(64, 48),
                      pattern="flash", period=1.6)


def test_per_row_generators_sample_as_rows_alone():
    logits = torch.randn(3, 50)
    cfg = SamplingConfig(temperature=1.0)
    together = torch.stack([sample(logits, cfg, [torch.Generator().manual_seed(s) for s in (7, 8, 9)])
                            for _ in range(1)])[0]
    alone = [sample(logits[i:i + 1], cfg, torch.Generator().manual_seed(s))[0] for i, s in enumerate((7, 8, 9))]
    assert together.tolist() == [int(a) for a in alone]


def test_candidate_seeds():
    assert candidate_seeds(5, 3) == [5, 6, 7]
    assert len(set(candidate_seeds(None, 4))) == 4
    for bad in (0, -1, MAX_CANDIDATES + 1, 2.0):
        with pytest.raises(UserError):
            candidate_seeds(0, bad)
    with pytest.raises(UserError):
        candidate_seeds(2**63 - 2, 3)  # the last candidate's seed would not fit


def test_best_candidate_takes_the_highest_total_first_on_ties():
    def s(i, total):
        return CandidateScore(i, i, total, None, total, np.zeros(0), np.zeros(0))

    assert best_candidate([s(0, 0.1), s(1, 0.5), s(2, 0.3)]) == 1
    assert best_candidate([s(0, 0.2), s(1, 0.4), s(2, 0.4)]) == 1


def test_candidates_are_scored_and_the_best_kept(model, video):
    track = model.generate(video, seconds=2.0, seed=5, candidates=3)
    assert [c.seed for c in track.scores] == [5, 6, 7] and [c.index for c in track.scores] == [0, 1, 2]
    totals = [c.total for c in track.scores]
    assert track.scores[track.chosen].total == max(totals) and track.chosen == totals.index(max(totals))
    assert len(set(totals)) > 1 and track.chosen != 0  # seed 5 of the debug model: the pick is not trivial
    assert all(0.0 <= c.beat <= 1.0 and c.text is None and c.total == c.beat for c in track.scores)
    assert track.seed == 5 + track.chosen and abs(track.seconds - 2.0) < 1e-3
    # candidate i is what its seed gives alone, tokens exactly and audio to float rounding
    alone = model.generate(video, seconds=2.0, seed=track.seed)
    assert torch.equal(alone.semantic, track.semantic) and torch.equal(alone.acoustic, track.acoustic)
    np.testing.assert_allclose(alone.wav, track.wav, atol=1e-5)
    other = model.generate(video, seconds=2.0, seed=5 + (track.chosen + 1) % 3)
    assert not torch.equal(other.acoustic, track.acoustic)
    assert alone.scores == [] and alone.chosen == 0  # one candidate: nothing to score


def test_best_of_n_needs_no_scipy(video):
    """Scoring candidates imports neither scipy.signal (its peak picking is numpy's) nor, through the metrics
    package, the scipy that FAD and KLD use: importing scipy costs about a second of every generation."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['scipy'] = None\n"  # any import of scipy now fails
        "from v2meow.pipeline import V2Meow\n"
        "from v2meow.metrics.alignment import video_beats\n"
        f"print(video_beats({video!r}, 3.0).source)\n"
        f"track = V2Meow.from_preset('debug', seed=0).generate({video!r}, seconds=2.0, seed=5, candidates=2)\n"
        "print(len(track.scores))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["motion", "2"]  # the motion peaks were picked: no clock beats in 3 s of flashes


def test_prompt_adds_the_joint_similarity_when_the_tower_hears_music(model, video, monkeypatch):
    """The debug model's hash tower has no audio side: a stand-in audio tower is asked for the music's joint
    embedding, and its cosine with the prompt's joins the beat score."""
    from v2meow.text.base import AudioTextTower

    words = model.text

    class Tower:
        name = "stand-in"

        def identity(self):
            return {"name": self.name}

        def embed_text(self, texts):
            return words.embed_text(texts)

        def embed_audio(self, wav, sample_rate):
            raise AssertionError("segments are embedded, not a crop")

        def embed_audio_segments(self, wav, sample_rate):
            assert sample_rate == 16000 and wav.ndim == 1
            return self.embed_text(["warm acoustic guitar"])[0] * float(wav.abs().mean() > 0)

    tower = Tower()
    assert isinstance(tower, AudioTextTower)
    monkeypatch.setattr(model, "text", tower)
    track = model.generate(video, seconds=1.0, seed=0, candidates=2, prompt="warm acoustic guitar")
    for c in track.scores:
        assert c.text == pytest.approx(1.0, abs=1e-6) and c.total == pytest.approx(c.beat + 1.0)


def test_start_shifts_the_scored_stretch(model, video):
    whole = video_beats(video, 3.0)
    assert whole.source == "motion" and np.allclose(whole.times, [1.6], atol=0.11)
    track = model.generate(video, seconds=1.0, start=1.0, seed=0, score=True)
    assert track.start == 1.0 and abs(track.seconds - 1.0) < 1e-3
    assert np.allclose(track.visual.times, [0.6], atol=0.11)  # the beat at 1.6 s, 1 s into the stretch
    assert track.visual.energy.size == 10
    earlier = model.generate(video, seconds=1.5, start=0.5, seed=0, score=True)
    assert np.allclose(earlier.visual.times, [1.1], atol=0.11)  # the same beat, half a second later
    assert not torch.equal(earlier.semantic[:25], track.semantic)  # the stages saw another stretch


@pytest.mark.parametrize("start", [-0.5, 3.0, 10.0, float("nan")])
def test_bad_start_in_the_api(model, video, start):
    with pytest.raises(UserError, match="--start"):
        model.generate(video, seconds=0.5, start=start)


def test_cli_candidates_plot_and_start(video, tmp_path, capsys):
    out = tmp_path / "scored.mp4"
    code = main(["generate", video, "-o", str(out), "--model", "debug", "--seconds", "1", "--start", "0.5",
                 "--seed", "3", "--candidates", "2", "--plot"])
    assert code == 0
    err = capsys.readouterr().err.splitlines()
    scores = [SCORE_LINE.match(line) for line in err if line.startswith("candidate ")]
    assert [int(m[1]) for m in scores] == [0, 1] and [int(m[2]) for m in scores] == [3, 4]
    kept = [KEPT_LINE.match(line) for line in err if line.startswith("kept ")][0]
    best = max(float(m[4]) for m in scores)
    assert float(kept[3]) == best and float(scores[int(kept[1])][4]) == best and int(kept[2]) == 3 + int(kept[1])
    png = (tmp_path / "scored.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and png[12:16] == b"IHDR"
    import matplotlib.image

    picture = matplotlib.image.imread(str(tmp_path / "scored.png"))
    assert picture.shape[0] > 200 and picture.shape[1] > 300
    assert sorted(os.listdir(tmp_path)) == ["scored.mp4", "scored.png"]  # no temporary files left
    import av

    with av.open(str(out)) as c:  # the music starts where the scored stretch starts
        s = c.streams.audio[0]
        frames = [f.to_ndarray() for f in c.decode(s)]
        rate = s.codec_context.sample_rate
    audio = np.concatenate(frames, axis=-1)[0]
    assert abs(audio.size / rate - 1.5) < 0.07
    assert np.abs(audio[: int(0.4 * rate)]).max() < 1e-3


def test_cli_quiet_prints_only_the_kept_candidate(video, tmp_path, capsys):
    out = tmp_path / "music.wav"
    assert main(["generate", video, "-o", str(out), "--model", "debug", "--seconds", "0.5", "--seed", "1",
                 "--candidates", "2", "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert not any(line.startswith("candidate ") for line in err)
    assert sum(line.startswith("kept candidate ") for line in err) == 1
    wav, sr = sf.read(out)
    assert abs(len(wav) / sr - 0.5) < 0.01
    assert not (tmp_path / "music.png").exists()


@pytest.mark.parametrize("extra", [["--start", "-1"], ["--start", "3"], ["--start", "99"], ["--start", "inf"],
                                   ["--start", "2.5", "--seconds", "1"], ["--candidates", "0"],
                                   ["--candidates", str(MAX_CANDIDATES + 1)], ["--candidates", "two"],
                                   ["--seed", str(2**63 - 1), "--candidates", "2"]])
def test_bad_options_exit_2_with_one_sentence_and_no_files(video, tmp_path, capsys, extra):
    out = tmp_path / "out.mp4"
    code = main(["generate", video, "-o", str(out), "--model", "debug", "--quiet", "--plot", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("v2meow: error:") and err.strip().count("\n") == 0 and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_plot_without_matplotlib_exits_2(video, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    code = main(["generate", video, "-o", str(tmp_path / "out.wav"), "--model", "debug", "--plot", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "matplotlib" in err and err.strip().count("\n") == 0
    assert os.listdir(tmp_path) == []


def test_a_model_directory_sets_its_own_number_of_candidates(tmp_path, video):
    import json

    from v2meow.errors import ConfigError

    m = V2Meow.from_preset("debug", seed=0)
    m.cfg.generation.candidates = 3
    path = m.save_pretrained(tmp_path / "m")
    loaded = V2Meow.from_pretrained(str(path))
    assert len(loaded.generate(video, seconds=1.0, seed=1).scores) == 3  # the directory's default
    assert loaded.generate(video, seconds=1.0, seed=1, candidates=1).scores == []  # the caller's choice wins
    cfg_file = path / "config.json"
    doc = json.loads(cfg_file.read_text())
    del doc["config"]["generation"]["candidates"]  # a directory written before the setting existed
    cfg_file.write_text(json.dumps(doc))
    assert V2Meow.from_pretrained(str(path)).cfg.generation.candidates == 1
    doc["config"]["generation"]["candidates"] = 0
    cfg_file.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="candidates"):
        V2Meow.from_pretrained(str(path))


def test_the_noise_penalty_reaches_the_pick(video):
    m = V2Meow.from_preset("debug", seed=0)
    m.cfg.generation.noise_penalty = 2.0
    track = m.generate(video, seconds=1.0, seed=0, candidates=2)
    assert all(s.noise is not None and np.isclose(s.total, s.beat - 2.0 * s.noise) for s in track.scores)
    assert track.chosen == best_candidate(track.scores)
