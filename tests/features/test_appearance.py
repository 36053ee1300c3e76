"""Tests for the ``appearance`` encoder: colour, brightness, layout, texture and scene cuts."""

from __future__ import annotations

import numpy as np
import pytest
from media import make_video

from v2meow.features.appearance import AppearanceEncoder, frame_features
from v2meow.features.registry import extract_features

HUE, SAT_MEAN, LUMA_MEAN, GRAD_MEAN, GRID_LUMA, FLICKER, CUT, CHANGE = 0, 12, 16, 30, 35, 53, 54, 55


def _solid(rgb: tuple[int, int, int], n: int = 1, size: tuple[int, int] = (32, 24)) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (n, size[1], size[0], 3)).copy()


def test_layout_size_and_settings():
    enc = AppearanceEncoder(rate=1)
    assert enc.dim == 56 and enc.decode_fps == 4.0
    assert AppearanceEncoder(rate=10).decode_fps == 10.0
    feats, hist = frame_features(_solid((10, 200, 30))[0])
    assert feats.shape == (53,) and hist.shape == (64,) and hist.sum() == pytest.approx(1.0)


def test_hue_histogram_follows_colour_and_ignores_grey():
    red, _ = frame_features(_solid((230, 20, 20))[0])
    blue, _ = frame_features(_solid((20, 20, 230))[0])
    grey, _ = frame_features(_solid((128, 128, 128))[0])
    assert int(np.argmax(red[HUE : HUE + 12])) == 0  # hue 0°
    assert int(np.argmax(blue[HUE : HUE + 12])) == 8  # hue 240° = bin 8 of 12
    assert np.all(grey[HUE : HUE + 12] == 0) and grey[SAT_MEAN] == 0
    assert red[SAT_MEAN] > 0.8


def test_brightness_layout_and_texture():
    img = np.zeros((24, 36, 3), np.uint8)
    img[:8, :12] = 255  # bright top-left cell of the 3×3 grid
    feats, _ = frame_features(img)
    grid = feats[GRID_LUMA : GRID_LUMA + 9]
    assert int(np.argmax(grid)) == 0 and grid[0] > 0.9 and grid[8] == 0
    rng = np.random.default_rng(0)
    noise, _ = frame_features(rng.integers(0, 256, (24, 36, 3), dtype=np.uint8))
    flat, _ = frame_features(_solid((90, 90, 90), size=(36, 24))[0])
    assert noise[GRAD_MEAN] > 0.5 and flat[GRAD_MEAN] == 0
    dark, _ = frame_features(_solid((10, 10, 10))[0])
    assert flat[LUMA_MEAN] > dark[LUMA_MEAN]


def test_scene_cut_lands_in_its_window():
    enc = AppearanceEncoder(rate=1)
    times = np.arange(16) / 4.0  # 4 s decoded at 4 fps
    frames = np.concatenate([_solid((200, 40, 40), 6), _solid((40, 40, 200), 10)])  # cut at t = 1.5 s
    feats = enc.encode(frames, times, 4.0)
    assert feats.shape == (4, enc.dim)
    assert feats[1, CUT] > 0.9
    assert feats[[0, 2, 3], CUT].max() < 0.05
    assert feats[0, HUE] > 1.0 and feats[3, HUE + 8] > 1.0  # red first, blue last


def test_flash_video_brightness_alternates_at_rate_5(tmp_path):
    # Period 0.4 s at 25 fps: 5 bright frames, 5 dark; windows of 0.2 s hold one or the other.
    path = make_video(tmp_path / "flash.mp4", seconds=3.0, pattern="flash", period=0.4)
    feats = extract_features(path, [AppearanceEncoder(rate=5)])["appearance"]
    assert feats.shape == (15, 56)
    luma = feats[:, LUMA_MEAN]
    assert np.all(luma[0::2] > 0.7) and np.all(luma[1::2] < 0.2)


def test_finite_on_black_one_frame_and_empty(tmp_path):
    enc = AppearanceEncoder(rate=2)
    black = enc.encode(_solid((0, 0, 0), 3), np.array([0.0, 0.5, 1.0]), 1.5)
    assert black.shape == (3, 56) and np.isfinite(black).all()
    one = enc.encode(_solid((255, 255, 255), 1), np.array([0.0]), 2.0)
    assert one.shape == (4, 56) and np.isfinite(one).all()
    np.testing.assert_allclose(one[3], one[0])  # empty windows repeat the last seen frame
    assert np.all(enc.encode(_solid((0, 0, 0), 0), np.zeros(0), 1.0) == 0)
    path = make_video(tmp_path / "noise.mp4", seconds=2.0, pattern="noise")
    feats = extract_features(path, [enc])["appearance"]
    assert np.isfinite(feats).all() and np.abs(feats).max() < 5
    static = extract_features(make_video(tmp_path / "s.mp4", seconds=2.0, pattern="static"), [enc])["appearance"]
    assert static[:, CHANGE].max() < 0.01 and static[:, FLICKER].max() < 0.01
    # Noise frames differ pixel by pixel but share one colour distribution: small histogram change.
    assert 0.01 < feats[:, CHANGE].max() < 0.3
    # Period 0.4 s sampled at 4 fps: consecutive samples alternate bright / dark.
    flash = make_video(tmp_path / "f.mp4", seconds=2.0, pattern="flash", period=0.4)
    flash = extract_features(flash, [enc])["appearance"]
    assert flash[:, CUT].min() > 0.9 and flash[:, CHANGE].min() > 0.4 and flash[:, FLICKER].min() > 0.5
