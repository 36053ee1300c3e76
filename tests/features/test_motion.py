"""Tests for the ``motion`` encoder: rhythm (periodicity) of flashes and movement, global motion, robustness."""

from __future__ import annotations

import time

import numpy as np
import pytest
from media import make_video

from v2meow.features.motion import MotionEncoder
from v2meow.features.registry import extract_features
from v2meow.io.video import read_frames

ENERGY, LEVEL, VX, STRENGTH, PERIOD = 0, 3, 6, 26, 27


def _autocorr_peak(x: np.ndarray, lags: range = range(2, 16)) -> int:
    """Lag (in feature frames) in ``lags`` with the highest autocorrelation of the feature column ``x``."""
    x = x - x.mean()
    scores = [float(np.dot(x[:-k], x[k:]) / np.dot(x, x)) for k in lags]
    return lags[int(np.argmax(scores))]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("motion")
    return {
        (pattern, period): make_video(d / f"{pattern}-{period}.mp4", seconds=6.0, pattern=pattern, period=period)
        for pattern in ("flash", "move")
        for period in (0.5, 1.0)
    }


@pytest.mark.parametrize("column", [ENERGY, LEVEL])
def test_flash_at_2hz_repeats_every_5_frames_at_rate_10(videos, column):
    feats = extract_features(videos["flash", 0.5], [MotionEncoder(rate=10)])["motion"]
    assert feats.shape == (60, MotionEncoder.dim)
    assert _autocorr_peak(feats[:, column]) == 5


@pytest.mark.parametrize("column", [ENERGY, VX])
def test_moving_square_at_2hz_repeats_every_5_frames_at_rate_10(videos, column):
    feats = extract_features(videos["move", 0.5], [MotionEncoder(rate=10)])["motion"]
    assert _autocorr_peak(feats[:, column]) == 5


def test_period_feature_at_1hz_rate_sees_the_tempo(videos):
    enc = MotionEncoder(rate=1)
    for pattern in ("flash", "move"):
        fast = extract_features(videos[pattern, 0.5], [enc])["motion"]
        slow = extract_features(videos[pattern, 1.0], [enc])["motion"]
        assert fast.shape == (6, enc.dim)
        np.testing.assert_allclose(fast[:, PERIOD], 0.5, atol=0.1, err_msg=pattern)
        np.testing.assert_allclose(slow[:, PERIOD], 1.0, atol=0.1, err_msg=pattern)
        assert (fast[:, STRENGTH] > 0.5).all() and (slow[:, STRENGTH] > 0.5).all()


def test_global_motion_sign_follows_the_square(tmp_path):
    # x(t) = centre + a sin(2πt / 2 s): velocity ∝ cos(2πt / 2 s), positive = rightwards.
    path = make_video(tmp_path / "slow.mp4", seconds=4.0, pattern="move", period=2.0)
    feats = extract_features(path, [MotionEncoder(rate=10)])["motion"]
    centres = (np.arange(40) + 0.5) / 10
    velocity = np.cos(2 * np.pi * centres / 2.0)
    assert np.corrcoef(feats[:, VX], velocity)[0, 1] > 0.8
    assert np.abs(feats[:, VX + 1]).max() < 0.5 * np.abs(feats[:, VX]).max()  # no vertical motion


def test_noise_and_static_are_not_periodic(tmp_path):
    enc = MotionEncoder(rate=1)
    noise = extract_features(make_video(tmp_path / "n.mp4", seconds=4.0, pattern="noise"), [enc])["motion"]
    static = extract_features(make_video(tmp_path / "s.mp4", seconds=4.0, pattern="static"), [enc])["motion"]
    assert noise[:, STRENGTH].max() < 0.3
    assert np.all(static[:, STRENGTH] == 0) and np.all(static[:, PERIOD] == 0)
    # Energy: random frames move a lot, a still image not at all.
    assert noise[:, ENERGY].min() > 2.0 and static[:, ENERGY].max() < 0.5


@pytest.mark.parametrize("seconds", [0.04, 0.5, 2.5])
def test_short_videos_are_finite_with_right_length(tmp_path, seconds):
    path = make_video(tmp_path / "short.mp4", seconds=seconds, pattern="flash", fps=25.0)
    for rate in (1.0, 10.0, 30.0):
        enc = MotionEncoder(rate=rate)
        feats = extract_features(path, [enc])["motion"]
        assert feats.shape == (enc.num_frames(seconds), enc.dim)
        assert feats.dtype == np.float32 and np.isfinite(feats).all()
        assert np.abs(feats).max() < 10


def test_black_frames_and_empty_input():
    enc = MotionEncoder(rate=2)
    black = np.zeros((20, 36, 64, 3), np.uint8)
    feats = enc.encode(black, np.arange(20) / 10, 2.0)
    assert feats.shape == (4, enc.dim) and np.isfinite(feats).all()
    assert np.all(feats[:, ENERGY] == 0)
    none = enc.encode(np.zeros((0, 36, 64, 3), np.uint8), np.zeros(0), 1.0)
    assert none.shape == (2, enc.dim) and np.all(none == 0)


def test_60fps_input_matches_30fps_analysis(tmp_path):
    fast = make_video(tmp_path / "60.mp4", seconds=4.0, fps=60.0, pattern="flash", period=0.5)
    feats = extract_features(fast, [MotionEncoder(rate=1)])["motion"]
    np.testing.assert_allclose(feats[:, PERIOD], 0.5, atol=0.1)


def test_streaming_equals_array_encode_and_any_frame_size(videos):
    path = videos["move", 0.5]
    enc = MotionEncoder(rate=2)
    streamed = extract_features(path, [enc])["motion"]
    times, frames = read_frames(path, fps=None, size=enc.frame_size)
    np.testing.assert_allclose(enc.encode(frames, times, 6.0), streamed, atol=1e-5)
    # Full-size frames are subsampled inside the encoder: same rhythm.
    times, big = read_frames(path, fps=None)
    other = enc.encode(big, times, 6.0)
    np.testing.assert_allclose(other[:, PERIOD], 0.5, atol=0.1)


def test_identity_records_settings():
    a, b = MotionEncoder(rate=1).identity(), MotionEncoder(rate=10).identity()
    assert a["name"] == "motion" and a["dim"] == 38 and a["decode_fps"] is None
    assert a != b and a["rate"] == 1.0 and "context" in a


def test_encoding_10s_is_fast(tmp_path):
    path = make_video(tmp_path / "ten.mp4", seconds=10.0, fps=25.0, pattern="move")
    enc = MotionEncoder(rate=1)
    times, frames = read_frames(path, fps=None, size=enc.frame_size)
    enc.encode(frames, times, 10.0)  # warm up (imports, FFT plans)
    start = time.perf_counter()
    enc.encode(frames, times, 10.0)
    assert time.perf_counter() - start < 1.0
