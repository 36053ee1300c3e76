"""Tests for synthetic paired data (``v2meow.data.synth``): music analysis, rendering, files, resumption."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from v2meow.data import synth
from v2meow.errors import UserError
from v2meow.features.motion import MotionEncoder
from v2meow.features.registry import extract_features
from v2meow.io.atomic import sha256_file
from v2meow.io.audio import load_audio
from v2meow.io.video import probe, read_frames

SR = 22050
SIZE = (64, 36)
FIRST, PERIOD, SECONDS = 0.25, 0.5, 3.0  # clicks at 120 BPM
ENERGY, LEVEL = 0, 3  # motion feature columns


def click_track(seconds: float = SECONDS, period: float = PERIOD, first: float = FIRST, seed: int = 0) -> np.ndarray:
    """A quiet tone with a short noise burst (a drum-like click) every ``period`` seconds from ``first``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    y = 0.02 * np.sin(2 * np.pi * 220 * np.arange(n) / SR)
    for t in np.arange(first, seconds - 0.01, period):
        i, m = int(round(t * SR)), int(0.05 * SR)
        a = np.arange(min(m, n - int(round(t * SR))))
        y[i : i + len(a)] += 0.4 * np.exp(-a / (0.01 * SR)) * rng.standard_normal(len(a))
    return y.astype(np.float32)


def clicks_at(seconds: float = SECONDS, period: float = PERIOD, first: float = FIRST) -> np.ndarray:
    return np.arange(first, seconds - 0.01, period)


def autocorr_peak(x: np.ndarray, lags: range = range(2, 16)) -> int:
    """Lag with the highest autocorrelation (as in tests/features/test_motion.py)."""
    x = x - x.mean()
    scores = [float(np.dot(x[:-k], x[k:]) / np.dot(x, x)) for k in lags]
    return lags[int(np.argmax(scores))]


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    d = tmp_path_factory.mktemp("music")
    sf.write(d / "clicks.wav", click_track(), SR)
    os.makedirs(d / "album")
    sf.write(d / "album" / "slow.ogg", click_track(seed=1, period=0.6), SR, format="OGG", subtype="VORBIS")
    with open(d / "album" / "licenses.json", "w") as f:
        json.dump({"slow.ogg": "CC-BY-SA-4.0"}, f)
    return d


@pytest.fixture(scope="module")
def rendered(music, tmp_path_factory):
    out = tmp_path_factory.mktemp("videos")
    results = synth.synth_data(music, out, size=SIZE, progress=False)
    return out, results


def test_every_track_gets_a_video_with_both_streams_of_the_right_length(rendered):
    out, results = rendered
    assert [r["status"] for r in results] == ["rendered", "rendered"]
    assert sorted(os.path.relpath(r["video"], out) for r in results) == [
        os.path.join("album", "slow.mp4"),
        "clicks.mp4",
    ]
    for r in results:
        info = probe(r["video"])
        assert info.has_video and info.has_audio
        assert (info.width, info.height) == SIZE
        assert (info.video_codec, info.audio_codec) == ("h264", "aac")
        assert abs(info.duration - SECONDS) < 0.05
        times, frames = read_frames(r["video"], fps=None)
        assert len(frames) == round(SECONDS * 24)
        audio = load_audio(r["video"], sample_rate=16000)
        assert abs(len(audio) / 16000 - SECONDS) < 0.1
        # The muxed audio is the track: its clicks are where they were.
        env = np.abs(audio[: int(0.3 * 16000)])
        assert np.argmax(env) / 16000 == pytest.approx(FIRST, abs=0.02)
        assert os.path.exists(synth.sidecar_path(r["video"]))


def test_sidecar_beats_match_the_clicks(rendered):
    out, results = rendered
    for r, period in zip(sorted(results, key=lambda r: r["video"]), (0.6, 0.5)):
        with open(synth.sidecar_path(r["video"])) as f:
            meta = json.load(f)
        assert meta["format"] == synth.FORMAT and meta["version"] == synth.SYNTH_VERSION
        clicks = clicks_at(period=period)
        beats = np.asarray(meta["analysis"]["beats"])
        assert len(beats) >= len(clicks) - 2
        error = np.abs(beats[:, None] - clicks[None, :]).min(axis=1)
        assert error.max() < 0.05, (beats, clicks)
        assert meta["analysis"]["tempo"] == pytest.approx(60 / period, rel=0.05)
        onsets = np.asarray(meta["analysis"]["onsets"])
        assert np.abs(onsets[:, None] - clicks[None, :]).min(axis=0).max() < 0.05  # every click is an onset
        assert meta["world"] in synth.WORLDS and meta["scenes"][0]["world"] == meta["world"]
        assert set(meta["analysis"]["character"]) >= {"energy", "brightness", "mode", "key", "tempo_class"}
        assert meta["fps"] == 24 and meta["size"] == list(SIZE) and meta["frames"] == 72
        assert os.path.isabs(meta["source"]["path"]) and isinstance(meta["seed"], int)
    slow = [r for r in results if r["video"].endswith("slow.mp4")][0]
    assert slow["source"]["relpath"] == "album/slow.ogg" and slow["source"]["license"] == "CC-BY-SA-4.0"


@pytest.mark.parametrize("world", synth.WORLDS)
def test_picture_motion_repeats_at_the_beat_period(tmp_path, world):
    path = tmp_path / "clicks.wav"
    sf.write(path, click_track(), SR)
    video = synth.render_video(path, tmp_path / "v.mp4", size=SIZE, world=world, seed=7)["video"]
    feats = extract_features(video, [MotionEncoder(rate=10)])["motion"]
    assert feats.shape == (30, MotionEncoder.dim)
    assert autocorr_peak(feats[:, ENERGY]) == 5  # 0.5 s at 10 features per second
    assert autocorr_peak(feats[:, LEVEL]) == 5


def test_analysis_finds_a_section_change(tmp_path):
    # 12 s: clicks over a low tone, then a different sound (noise bursts, high chord) from 6 s on.
    rng = np.random.default_rng(3)
    y = np.concatenate([click_track(6.0), np.zeros(6 * SR, np.float32)])
    t = np.arange(6 * SR) / SR
    y[6 * SR :] = 0.2 * (np.sin(2 * np.pi * 880 * t) + np.sin(2 * np.pi * 1320 * t)) + 0.05 * rng.standard_normal(
        len(t)
    )
    an = synth.analyse_audio(y, SR)
    assert len(an.sections) >= 1
    assert np.min(np.abs(an.sections - 6.0)) < 0.75
    cuts = synth.plan_cuts(an, an.duration, np.random.default_rng(0))
    assert any(c.kind == "section" and abs(c.time - 6.0) < 0.75 for c in cuts)
    # each section has its own character: the high chord and noise are brighter than the clicks on a low tone
    assert len(an.section_characters) == len(an.sections) + 1
    first, last = an.character_at(1.0), an.character_at(11.0)
    assert last["brightness"] > first["brightness"] + 0.1
    assert first["mode"] == last["mode"] == an.character["mode"]
    # and the renderer takes its colours from the section on screen: warmer hues once the bright section starts
    for seed in range(4):
        r = synth.Renderer(an, (64, 36), 12.0, seed=seed)
        for _ in r.frames():
            pass
        start = r.scenes[0]["palette"]["hue"]
        bright = next(s["palette"]["hue"] for s in r.scenes if s["cut"] == "section")
        assert math.cos(math.radians(bright - 30)) > math.cos(math.radians(start - 30)) + 0.3


def test_silence_renders_without_beats(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(int(1.5 * SR), np.float32), SR)
    meta = synth.render_video(path, tmp_path / "s.mp4", size=SIZE)
    assert meta["analysis"]["beats"] == [] and meta["analysis"]["tempo"] == 0
    assert meta["frames"] == 36 and probe(meta["video"]).has_audio


def _frames(an: synth.TrackAnalysis, seed: int, world: str | None = None, count: int = 24) -> np.ndarray:
    gen = synth.Renderer(an, SIZE, 24, seed=seed, world=world).frames()
    return np.stack([next(gen) for _ in range(count)])


@pytest.fixture(scope="module")
def analysis():
    return synth.analyse_audio(click_track(), SR)


def test_seeds_change_worlds_and_layouts(analysis):
    worlds = {synth.Renderer(analysis, SIZE, 24, seed=s).world.name for s in range(12)}
    assert len(worlds) >= 3
    for world in synth.WORLDS:
        a, b = _frames(analysis, 1, world), _frames(analysis, 2, world)
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 2, world


def test_same_seed_gives_the_same_frames(analysis, tmp_path):
    np.testing.assert_array_equal(_frames(analysis, 5), _frames(analysis, 5))
    path = tmp_path / "clicks.wav"
    sf.write(path, click_track(), SR)
    a = synth.render_video(path, tmp_path / "a.mp4", size=SIZE, seed=11)
    b = synth.render_video(path, tmp_path / "b.mp4", size=SIZE, seed=11)
    np.testing.assert_array_equal(read_frames(a["video"], fps=None)[1], read_frames(b["video"], fps=None)[1])
    assert a["scenes"] == b["scenes"] and a["analysis"] == b["analysis"]


def test_frames_are_not_static_and_use_the_palette(analysis):
    frames = _frames(analysis, 3, count=48).astype(np.float32)
    assert frames.std(axis=0).mean() > 2  # things move
    assert 10 < frames.mean() < 230  # neither black nor white


def test_existing_outputs_are_skipped_and_missing_ones_redone(rendered, music):
    out, first = rendered
    video = first[0]["video"]
    stamp = os.path.getmtime(video)
    again = synth.synth_data(music, out, size=SIZE, progress=False)
    assert [r["status"] for r in again] == ["skipped", "skipped"]
    assert os.path.getmtime(video) == stamp
    assert again[0]["analysis"] == first[0]["analysis"]
    # A video without its sidecar (or vice versa) is rendered again.
    os.remove(synth.sidecar_path(video))
    third = synth.synth_data(music, out, size=SIZE, progress=False)
    assert [r["status"] for r in third] == ["rendered", "skipped"]
    # Other settings make other videos: those are rendered again.
    fourth = synth.synth_data(music, out, size=SIZE, progress=False, seed=1)
    assert [r["status"] for r in fourth] == ["rendered", "rendered"]
    assert fourth[1]["seed"] != third[1]["seed"]
    # So does other audio under the same name (a corpus rendered again), and a sidecar from before the audio's
    # SHA-256 was recorded.
    audio = fourth[0]["source"]["path"]
    assert fourth[0]["source"]["sha256"] == sha256_file(audio)
    wav, sr = sf.read(audio, dtype="float32")
    sf.write(audio, wav * 0.5, sr)
    sidecar = synth.sidecar_path(fourth[1]["video"])
    meta = json.loads(Path(sidecar).read_text())
    del meta["source"]["sha256"]
    Path(sidecar).write_text(json.dumps(meta))
    fifth = synth.synth_data(music, out, size=SIZE, progress=False, seed=1)
    assert [r["status"] for r in fifth] == ["rendered", "rendered"]
    assert [r["status"] for r in synth.synth_data(music, out, size=SIZE, progress=False, seed=1)] == ["skipped"] * 2


def test_a_failed_render_leaves_no_file(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "clicks.wav", click_track(), SR)
    out = tmp_path / "out"
    out.mkdir()
    calls = {"n": 0}
    original = synth.Plasma.render

    def failing(self, f):
        calls["n"] += 1
        if calls["n"] > 10:
            raise RuntimeError("boom")
        return original(self, f)

    monkeypatch.setattr(synth.Plasma, "render", failing)
    with pytest.raises(RuntimeError, match="boom"):
        synth.render_video(src / "clicks.wav", out / "v.mp4", size=SIZE, world="plasma")
    assert calls["n"] > 10 and os.listdir(out) == []
    # In a folder run, the failure is reported for that track and nothing is left behind.
    results = synth.synth_data(src, out, size=SIZE, progress=False, world="plasma")
    assert results[0]["status"] == "failed" and "boom" in results[0]["error"]
    assert os.listdir(out) == []


def test_unreadable_track_fails_alone(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "a.wav", click_track(2.0), SR)
    (src / "b.mp3").write_text("not audio at all\n" * 50)
    results = synth.synth_data(src, tmp_path / "out", size=SIZE, progress=False)
    assert [r["status"] for r in results] == ["rendered", "failed"]
    assert sorted(os.listdir(tmp_path / "out")) == ["a.json", "a.mp4"]


def test_seconds_limits_length_and_workers_render_in_parallel(music, tmp_path):
    results = synth.synth_data(music, tmp_path, seconds=1.5, size=SIZE, progress=False, workers=2)
    assert [r["status"] for r in results] == ["rendered", "rendered"]
    for r in results:
        assert abs(probe(r["video"]).duration - 1.5) < 0.05 and r["frames"] == 36
    # Each track's seed comes from the run's seed and its path, the same in any process.
    assert results[0]["seed"] == synth.track_seed(0, "album/slow.ogg")


def test_character_steers_palette_and_world():
    hot = {"energy": 0.9, "brightness": 0.9, "mode": "major"}
    cold = {"energy": 0.1, "brightness": 0.1, "mode": "minor"}

    def warmth(p: synth.Palette) -> float:  # closeness of the hue to orange (30°)
        return math.cos(2 * math.pi * (p.hue - 30 / 360))

    hp = [synth.character_palette(hot, 160, np.random.default_rng(s)) for s in range(20)]
    cp = [synth.character_palette(cold, 70, np.random.default_rng(s)) for s in range(20)]
    assert np.mean([warmth(p) for p in hp]) > np.mean([warmth(p) for p in cp]) + 0.5
    assert np.mean([p.saturation for p in hp]) > np.mean([p.saturation for p in cp]) + 0.2
    assert np.mean([p.value for p in hp]) > np.mean([p.value for p in cp])
    ph, pc = synth.world_probabilities(hot, 160), synth.world_probabilities(cold, 70)
    assert np.all(ph > 0.02) and np.all(pc > 0.02) and ph.sum() == pytest.approx(1) and pc.sum() == pytest.approx(1)
    plasma = synth.WORLDS.index("plasma")
    assert pc[plasma] > ph[plasma]


def test_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        synth.synth_data(tmp_path / "nope", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="No audio files"):
        synth.synth_data(tmp_path / "empty", tmp_path / "out", progress=False)
    sf.write(tmp_path / "a.wav", click_track(1.0), SR)
    with pytest.raises(UserError, match="even"):
        synth.render_video(tmp_path / "a.wav", tmp_path / "a.mp4", size=(63, 36))
    with pytest.raises(UserError, match="world"):
        synth.render_video(tmp_path / "a.wav", tmp_path / "a.mp4", size=SIZE, world="moon")
    assert not os.path.exists(tmp_path / "a.mp4")


def test_chunked_analysis_matches_whole_track_analysis(monkeypatch):
    import librosa

    y = click_track(8.0, period=0.45, first=0.3)
    whole = synth.analyse_audio(y, SR)
    monkeypatch.setattr(synth.analysis, "_CHUNK_SECONDS", 1.0)  # 8 chunks
    chunked = synth.analyse_audio(y, SR)
    np.testing.assert_allclose(chunked.beats, whole.beats, atol=0.012)
    np.testing.assert_allclose(chunked.onsets, whole.onsets, atol=0.012)
    assert np.corrcoef(chunked.onset_env, whole.onset_env)[0, 1] > 0.98
    np.testing.assert_allclose(chunked.loudness, whole.loudness, atol=0.05)
    # The tempo from a tempogram computed piecewise is librosa's.
    env = whole.onset_env
    reference = float(librosa.feature.tempo(onset_envelope=env, sr=SR, hop_length=256)[0])
    assert synth.estimate_tempo(librosa, env, SR, 256, stride=1, batch=100) == pytest.approx(reference)
    assert synth.estimate_tempo(librosa, env, SR, 256) == pytest.approx(reference, rel=0.02)
    assert whole.tempo == pytest.approx(60 / 0.45, rel=0.03)


def test_source_info_reads_the_music_manifest_and_a_sidecar_wins(tmp_path):
    (tmp_path / "mit" / "calm").mkdir(parents=True)
    for name in ("a.flac", "b.flac"):
        (tmp_path / "mit" / "calm" / name).write_bytes(b"")
    entries = [{"path": "calm/a.flac", "licence": "MIT", "heldout": True},
               {"path": "calm/b.flac", "licence": "MIT", "heldout": False}]
    (tmp_path / "mit" / "sources.json").write_text(json.dumps({"format": "v2meow-music-sources/1", "files": entries}))
    a = synth.source_info(str(tmp_path / "mit" / "calm" / "a.flac"), str(tmp_path))
    assert a["relpath"] == "mit/calm/a.flac" and a["license"] == "MIT" and a["info"]["heldout"] is True
    (tmp_path / "mit" / "calm" / "b.json").write_text(json.dumps({"license": "CC0", "heldout": True}))
    b = synth.source_info(str(tmp_path / "mit" / "calm" / "b.flac"), str(tmp_path))
    assert b["license"] == "CC0" and b["info"]["heldout"] is True  # the per-track sidecar wins
    outside = synth.source_info(str(tmp_path / "mit" / "calm" / "a.flac"), str(tmp_path / "mit" / "calm"))
    assert "info" not in outside  # a manifest above the music folder is not read
