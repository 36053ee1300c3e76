"""Tests for the visual encoder registry and single-decode feature extraction."""

from __future__ import annotations

import numpy as np
import pytest
from media import make_video

import v2meow.features.registry as registry
from v2meow.errors import ConfigError, UserError
from v2meow.features.base import EncoderState, VisualEncoder
from v2meow.features.registry import EncoderConfig, available, build_encoder, extract_features, register


def test_builtins_are_available_and_buildable():
    assert {"appearance", "motion"} <= set(available())
    enc = build_encoder(EncoderConfig(name="motion", rate=10))
    assert enc.name == "motion" and enc.rate == 10.0
    assert build_encoder(EncoderConfig.from_dict({"name": "appearance"})).rate == 1.0


def test_unknown_encoder_lists_the_known_ones():
    with pytest.raises(UserError, match="appearance.*motion"):
        build_encoder(EncoderConfig(name="clip-nonexistent"))


@pytest.mark.parametrize("rate", [0, -1, 61, float("nan")])
def test_rate_is_validated(rate):
    with pytest.raises(ConfigError):
        EncoderConfig(name="motion", rate=rate)


def test_config_round_trip_and_unknown_keys():
    cfg = EncoderConfig(name="motion", rate=2)
    assert EncoderConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError):
        EncoderConfig.from_dict({"name": "motion", "fps": 2})


class _Recorder(VisualEncoder):
    """Records the times it is given; returns the window index as its one feature."""

    name = "test-recorder"
    version = "0"
    dim = 1

    def __init__(self, rate: float = 1.0, decode_fps: float | None = 4.0, frame_size=(128, 72)) -> None:
        self.rate = rate
        self.decode_fps = decode_fps
        self.frame_size = frame_size
        self.seen: list[float] = []
        self.shapes: set[tuple[int, ...]] = set()

    def begin(self, duration: float) -> EncoderState:
        enc = self
        count = self.num_frames(duration)

        class State(EncoderState):
            def add(self, t: float, frame: np.ndarray) -> None:
                enc.seen.append(t)
                enc.shapes.add(frame.shape)

            def finish(self) -> np.ndarray:
                return np.arange(count, dtype=np.float32)[:, None]

        return State()


def test_register_rejects_a_second_encoder_with_the_same_name(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register("test-recorder")(_Recorder)
    register("test-recorder")(_Recorder)  # the same class again (module reload) is fine
    with pytest.raises(ValueError):
        register("test-recorder")(type("Other", (_Recorder,), {}))
    assert build_encoder(EncoderConfig(name="test-recorder", rate=3)).rate == 3


def test_extract_decodes_once_and_samples_once_per_decode_setting(tmp_path, monkeypatch):
    path = make_video(tmp_path / "v.mp4", seconds=3.0, fps=25.0)
    calls = []
    real = registry.iter_frames_shared

    def counting(path, samplings, *args, **kwargs):
        calls.append(list(samplings))
        return real(path, samplings, *args, **kwargs)

    monkeypatch.setattr(registry, "iter_frames_shared", counting)
    appearance = build_encoder(EncoderConfig(name="appearance", rate=1))
    motion = build_encoder(EncoderConfig(name="motion", rate=2))
    recorder = _Recorder(rate=1, decode_fps=appearance.decode_fps, frame_size=appearance.frame_size)
    out = extract_features(path, [appearance, motion, recorder])
    assert len(calls) == 1  # one decode of the video
    assert sorted(calls[0], key=str) == sorted([(4.0, (128, 72)), (None, (64, 36))], key=str)
    assert out["appearance"].shape == (3, appearance.dim)
    assert out["motion"].shape == (6, motion.dim)
    assert recorder.shapes == {(72, 128, 3)}
    np.testing.assert_allclose(recorder.seen, np.arange(12) / 4.0)


def test_extract_segment_times_are_relative(tmp_path):
    path = make_video(tmp_path / "v.mp4", seconds=4.0, fps=25.0)
    rec = _Recorder(rate=2, decode_fps=2.0, frame_size=(32, 24))
    out = extract_features(path, [rec], start=1.0, duration=2.0)
    assert out["test-recorder"].shape == (4, 1)
    np.testing.assert_allclose(rec.seen, [0.0, 0.5, 1.0, 1.5])
    rec2 = _Recorder(rate=1, decode_fps=1.0, frame_size=(32, 24))
    assert extract_features(path, [rec2], start=2.5)["test-recorder"].shape == (2, 1)  # clipped to the end


def test_extract_errors(tmp_path):
    path = make_video(tmp_path / "v.mp4", seconds=1.0)
    with pytest.raises(UserError, match="past the end"):
        extract_features(path, [build_encoder(EncoderConfig(name="motion"))], start=5.0)
    with pytest.raises(UserError):
        extract_features(tmp_path / "missing.mp4", [build_encoder(EncoderConfig(name="motion"))])
    m = build_encoder(EncoderConfig(name="motion"))
    with pytest.raises(UserError, match="once"):
        extract_features(path, [m, m])
    assert extract_features(path, []) == {}


def test_num_frames_rounds_up():
    enc = _Recorder(rate=2)
    assert [enc.num_frames(d) for d in (0.01, 0.5, 0.5000001, 2.4, 3.0)] == [1, 1, 1, 5, 6]
