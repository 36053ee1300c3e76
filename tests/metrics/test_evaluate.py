import json

import numpy as np
import pytest
from media import make_video

from v2meow.cli import main
from v2meow.errors import UserError
from v2meow.metrics.evaluate import EvalOptions, _derangement, evaluate, visual_beats


def test_derangement_has_no_fixed_point():
    for n in range(2, 12):
        p = _derangement(n, seed=n)
        assert sorted(p) == list(range(n)) and not np.any(p == np.arange(n))


def test_visual_beats_from_sidecar_and_from_the_picture(tmp_path):
    v = make_video(tmp_path / "f.mp4", seconds=3.0, fps=20, size=(32, 24), pattern="flash", period=0.5)
    beats, src = visual_beats(v, 3.0)
    assert src == "beat clock" and len(beats) >= 4  # steady flashes: the beat encoder's clock places them
    # flashes every 0.5 s: consecutive onsets are about 0.5 s apart
    assert abs(np.median(np.diff(beats)) - 0.5) < 0.11
    (tmp_path / "f.json").write_text(json.dumps({"beats": [0.25, 1.0, 2.5, 9.0]}))
    beats, src = visual_beats(v, 3.0)
    assert src == "sidecar" and beats.tolist() == [0.25, 1.0, 2.5]


def test_evaluate_writes_report_with_baselines(tmp_path, debug_model_dir):
    vids = tmp_path / "v"
    vids.mkdir()
    for i in range(2):
        make_video(vids / f"c{i}.mp4", seconds=1.2, fps=10, size=(32, 24), pattern="flash", audio=True, seed=i,
                   period=0.4 + 0.2 * i)
    out = tmp_path / "r"
    rc = main(["evaluate", "--model", debug_model_dir, "--videos", str(vids), "-o", str(out), "--seconds", "1",
               "--segments", "0.5,1", "--candidates", "2", "--quiet"])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    rows = {r["name"]: r for r in rep["rows"]}
    assert set(rows) == {"v2meow", "no_video", "ground_truth", "random_shuffle", "codec_round_trip"}
    gt = rows["ground_truth"]
    assert gt["bhs"] == pytest.approx(1.0) and gt["fad"] == pytest.approx(0.0, abs=1e-6)
    assert rows["v2meow"]["fad"] > gt["fad"] and rows["v2meow"]["segments"] == 2
    assert rows["v2meow"]["segments_0.5s"] == 4
    assert rows["codec_round_trip"]["fad"] > gt["fad"]  # the debug preset's random codec loses the music
    assert abs(gt["fad_codec"]) < 1e-6 < rows["v2meow"]["fad_codec"]  # the second backend
    assert rep["notes"]["fad"]["backend"].startswith("semantic-encoder")
    assert "FAD (codec)" in (out / "report.md").read_text()
    md = (out / "report.md").read_text()
    assert "| random_shuffle |" in md
    assert (out / "plots" / "beat_alignment_per_clip.png").stat().st_size > 1000
    assert (out / "plots" / "spectrogram_onsets_vs_visual_beats.png").is_file()
    # MCC and KLD come from the shipped joint model (its text tower is a dependency of the package)
    assert "not computed" not in str(rep["notes"]["mcc"]), rep["notes"]["mcc"]
    assert gt["mcc"] == pytest.approx(1.0, abs=1e-6)
    assert gt["kld"] == pytest.approx(0.0, abs=1e-4)
    assert -1.0 <= rows["v2meow"]["mcc"] < 1.0
    assert rows["random_shuffle"]["kld"] > 0
    assert "best of 2" in rep["notes"]["candidates"]
    assert 0.0 <= rows["v2meow"]["beat_f_other"] <= 1.0  # the mismatched control: the other video's beats
    assert "Beat F, other videos' beats" in md


def test_evaluate_refuses_bad_candidates_before_any_work(tmp_path, debug_model_dir, capsys):
    rc = main(["evaluate", "--model", debug_model_dir, "--videos", str(tmp_path), "-o", str(tmp_path / "r"),
               "--candidates", "0", "--quiet"])
    assert rc == 2 and "--candidates" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_evaluate_needs_two_videos_with_sound(tmp_path, debug_model_dir):
    vids = tmp_path / "v"
    vids.mkdir()
    make_video(vids / "a.mp4", seconds=1.0, fps=10, size=(32, 24), audio=True)
    make_video(vids / "silent.mp4", seconds=1.0, fps=10, size=(32, 24))
    with pytest.raises(UserError, match="two videos"):
        evaluate(debug_model_dir, str(vids), str(tmp_path / "r"), EvalOptions(seconds=1.0), progress=False)


def test_the_semantic_fad_embedding_tells_music_from_noise_and_from_its_quieter_self():
    """The default FAD embedding (the pinned reference encoder): a clip against itself scores 0; the same music
    scores closer than noise at the same loudness."""
    from v2meow.metrics.evaluate import EvalOptions, _fad_embedder
    from v2meow.metrics.fad import FrechetAudioDistance

    emb = _fad_embedder("semantic", EvalOptions())
    sr = emb.sample_rate
    t = np.arange(4 * sr) / sr
    rng = np.random.default_rng(0)
    notes = np.repeat(rng.choice([220.0, 277.2, 329.6, 440.0], 16), sr // 4)
    music = (0.3 * np.sin(2 * np.pi * np.cumsum(notes) / sr) * (1 - (t * 4) % 1)).astype(np.float32)
    noise = (rng.standard_normal(len(t)) * np.sqrt(np.mean(music**2))).astype(np.float32)

    def fad(gen):
        f = FrechetAudioDistance(emb)
        f.update_reference(emb.embed(music))
        f.update_generated(emb.embed(gen))
        return f.compute()["fad"]

    assert emb.embed(music).shape == (100, emb.dim)  # 25 frames/s
    assert abs(fad(music)) < 1e-6 < fad(np.roll(music, sr // 8)) < fad(noise)
