"""Tests for v2meow.io.video: probing, sampling by real timestamps, orientation, muxing, damaged input."""

from __future__ import annotations

import os

import av
import numpy as np
import pytest
from media import make_audio, make_text_file, make_video, truncate_file, vfr_timestamps

from v2meow.errors import UserError
from v2meow.io.video import iter_frames, iter_frames_shared, mux_audio, probe, read_frames


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def test_probe_basic(tmp_path):
    path = make_video(tmp_path / "v.mp4", seconds=2.0, fps=25.0, size=(64, 48), audio=True)
    info = probe(path)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert info.fps == pytest.approx(25.0)
    assert info.has_video and info.has_audio
    assert info.video_codec == "h264" and info.audio_codec == "aac"


def test_fixed_rate_sampling_times_and_shapes(tmp_path):
    path = make_video(tmp_path / "v.mp4", seconds=3.0, fps=25.0)
    times, frames = read_frames(path, fps=2.0)
    np.testing.assert_allclose(times, np.arange(6) / 2.0)
    assert frames.shape == (6, 48, 64, 3) and frames.dtype == np.uint8


def test_every_frame_mode_gives_each_frame_once(tmp_path):
    path = make_video(tmp_path / "v.mp4", seconds=2.0, fps=25.0)
    times, frames = read_frames(path, fps=None)
    np.testing.assert_allclose(times, np.arange(50) / 25.0, atol=1e-6)
    # Noise frames are all different: no frame is repeated or skipped.
    diffs = [_mad(frames[i], frames[i + 1]) for i in range(len(frames) - 1)]
    assert min(diffs) > 30.0


def test_vfr_sampling_picks_the_frame_on_screen(tmp_path):
    path = make_video(tmp_path / "vfr.mp4", seconds=3.0, fps=20.0, vfr=True, seed=3)
    written = vfr_timestamps(3.0, 20.0, seed=3)
    all_t, all_f = read_frames(path, fps=None)
    np.testing.assert_allclose(all_t, written, atol=1e-3)  # real timestamps, not index / fps
    fps = 10.0
    times, frames = read_frames(path, fps=fps)
    assert len(times) == int(np.ceil(probe(path).duration * fps - 1e-9))
    for t, f in zip(times, frames):
        expected = int(np.searchsorted(written, t + 1e-6, side="right") - 1)
        # The sample must be exactly the decoded frame on screen at t, and clearly not its neighbours.
        assert _mad(f, all_f[expected]) == 0.0
        for other in (expected - 1, expected + 1):
            if 0 <= other < len(all_f):
                assert _mad(f, all_f[other]) > 30.0


def test_start_and_end(tmp_path):
    path = make_video(tmp_path / "v.mp4", seconds=4.0, fps=25.0)
    all_t, all_f = read_frames(path, fps=None)
    times, frames = read_frames(path, fps=4.0, start=1.3, end=2.5)
    np.testing.assert_allclose(times, 1.3 + np.arange(5) / 4.0)
    for t, f in zip(times, frames):
        idx = int(np.floor(t * 25.0 + 1e-6))
        assert _mad(f, all_f[idx]) == 0.0
    sub_t, _ = read_frames(path, fps=None, start=1.0, end=2.0)
    np.testing.assert_allclose(sub_t, 1.0 + np.arange(25) / 25.0, atol=1e-6)


def test_seeking_start_matches_decoding_from_the_beginning(tmp_path):
    # Keyframes every 10 frames (0.4 s): start=2.1 seeks to the keyframe at 2.0 and decodes on from there.
    path = make_video(tmp_path / "gop.mp4", seconds=4.0, fps=25.0, gop=10)
    with av.open(path) as c:
        keyframes = sum(p.is_keyframe for p in c.demux(video=0) if p.size)
    assert keyframes >= 8
    all_t, all_f = read_frames(path, fps=None)
    for start in (0.4, 2.1, 2.39, 3.97):
        times, frames = read_frames(path, fps=10.0, start=start)
        assert times[0] == pytest.approx(start)
        for t, f in zip(times, frames):
            assert _mad(f, all_f[int(np.floor(t * 25.0 + 1e-6))]) == 0.0


def test_iter_frames_is_lazy_and_closes(tmp_path):
    path = make_video(tmp_path / "v.mp4", seconds=3.0, fps=25.0)
    gen = iter_frames(path, fps=None)
    t0, f0 = next(gen)
    assert t0 == 0.0 and f0.shape == (48, 64, 3)
    gen.close()  # must not raise; the container is closed in a finally block


def test_rotation_90_frames_come_out_upright(tmp_path):
    plain = make_video(tmp_path / "plain.mp4", seconds=1.0, pattern="static")
    rotated = make_video(tmp_path / "rot.mp4", seconds=1.0, pattern="static", rotation=90)
    info = probe(rotated)
    assert info.rotation == 90
    assert (info.width, info.height) == (48, 64)
    _, p = read_frames(plain, fps=1.0)
    _, r = read_frames(rotated, fps=1.0)
    assert r.shape == (1, 64, 48, 3)
    # A clockwise quarter turn of the coded picture: compare with numpy's rotation of the plain decode.
    assert _mad(r[0], np.rot90(p[0], k=-1)) < 2.0
    # And in words: red grew left→right in the coded picture, so it now grows top→bottom.
    red = r[0, :, :, 0].astype(float)
    assert red[-5:].mean() > red[:5].mean() + 100


@pytest.mark.parametrize("rotation", [180, 270])
def test_other_rotations(tmp_path, rotation):
    plain = make_video(tmp_path / "plain.mp4", seconds=1.0, pattern="static")
    rotated = make_video(tmp_path / "rot.mp4", seconds=1.0, pattern="static", rotation=rotation)
    assert probe(rotated).rotation == rotation
    _, p = read_frames(plain, fps=1.0)
    _, r = read_frames(rotated, fps=1.0)
    assert _mad(r[0], np.rot90(p[0], k=-rotation // 90)) < 2.0


def test_resize_applies_after_rotation(tmp_path):
    rotated = make_video(tmp_path / "rot.mp4", seconds=1.0, pattern="static", rotation=90)
    _, r = read_frames(rotated, fps=1.0, size=(24, 32))
    assert r.shape == (1, 32, 24, 3)
    red = r[0, :, :, 0].astype(float)
    assert red[-3:].mean() > red[:3].mean() + 100


def test_non_square_pixels_are_stretched(tmp_path):
    path = make_video(tmp_path / "sar.mp4", seconds=1.0, pattern="static", sar=(2, 1))
    info = probe(path)
    assert (info.width, info.height) == (128, 48)
    _, frames = read_frames(path, fps=1.0)
    assert frames.shape == (1, 48, 128, 3)
    # The red ramp now spans twice the width: still monotonic left→right.
    red_cols = frames[0, :, :, 0].astype(float).mean(axis=0)
    assert red_cols[-8:].mean() > red_cols[:8].mean() + 150


def test_mpeg4_codec_is_read(tmp_path):
    path = make_video(tmp_path / "m.mp4", seconds=1.0, codec="mpeg4")
    times, frames = read_frames(path, fps=5.0)
    assert len(times) == 5 and frames.shape[1:] == (48, 64, 3)


def test_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        probe(tmp_path / "missing.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        probe(empty)
    text = make_text_file(tmp_path / "notes.mp4")
    with pytest.raises(UserError, match="notes.mp4"):
        probe(text)
    with pytest.raises(UserError):
        next(iter_frames(text))
    song = make_audio(tmp_path / "song.m4a", seconds=1.0)
    with pytest.raises(UserError, match="no video stream"):
        probe(song)
    info = probe(song, require_video=False)
    assert not info.has_video and info.has_audio
    assert info.duration == pytest.approx(1.0, abs=0.1)


def test_truncated_file_yields_what_decodes(tmp_path):
    full = make_video(tmp_path / "full.mp4", seconds=4.0, fps=25.0)
    cut = truncate_file(full, tmp_path / "cut.mp4", 0.5)
    all_t, all_f = read_frames(full, fps=None)
    times, frames = read_frames(cut, fps=None)  # must not raise
    assert 10 <= len(times) < len(all_t)
    for t, f in zip(times, frames):
        assert _mad(f, all_f[int(round(t * 25))]) == 0.0
    sampled_t, _ = read_frames(cut, fps=5.0)
    assert 1 <= len(sampled_t) < 20
    assert sampled_t[-1] <= times[-1] + 0.04 + 1e-6  # samples stop where the good frames stop


@pytest.mark.parametrize("start,end", [(0.0, None), (1.3, 3.1)])
def test_one_decode_for_several_samplings_gives_each_its_own_frames(tmp_path, start, end):
    full = make_video(tmp_path / "gop.mp4", seconds=4.0, fps=25.0, gop=10)
    cut = truncate_file(full, tmp_path / "cut.mp4", 0.6)
    samplings = [(None, (64, 36)), (4.0, (128, 72)), (1.0, None), (6.0, (64, 36))]
    for path in (full, cut):
        shared: list[list[tuple[float, np.ndarray]]] = [[] for _ in samplings]
        order = []
        for i, t, f in iter_frames_shared(path, samplings, start=start, end=end):
            shared[i].append((t, f))
            order.append(i)
        for (fps, size), got in zip(samplings, shared):
            alone = list(iter_frames(path, fps=fps, size=size, start=start, end=end))
            assert len(got) == len(alone) > 0
            for (t1, f1), (t2, f2) in zip(got, alone):
                assert t1 == t2 and np.array_equal(f1, f2)
        # the samplings advance together through the video, not one after another
        assert order.index(1) < len(order) // 4 and order.index(2) < len(order) // 4


def test_truncated_without_index_is_a_user_error(tmp_path):
    # Without faststart the MP4 index (moov) sits at the end: cut in half, nothing is decodable.
    full = make_video(tmp_path / "full.mp4", seconds=2.0, faststart=False)
    cut = truncate_file(full, tmp_path / "cut.mp4", 0.5)
    with pytest.raises(UserError, match="cut.mp4"):
        read_frames(cut)


def _video_packets(path: str) -> list[bytes]:
    with av.open(path) as c:
        return [bytes(p) for p in c.demux(video=0) if p.size]


def test_mux_copies_video_and_adds_audio(tmp_path):
    src = make_video(tmp_path / "in.mp4", seconds=2.0, fps=25.0, audio=True, rotation=90)
    sr = 16000
    n = int(1.9 * sr)
    wav = (0.3 * np.sin(2 * np.pi * 330 * np.arange(n) / sr)).astype(np.float32)
    out = tmp_path / "out.mp4"
    mux_audio(src, wav, sr, out)
    assert _video_packets(src) == _video_packets(str(out))
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1 and c.streams.audio[0].codec_context.name == "aac"
        decoded = sum(f.samples for f in c.decode(audio=0))
        stream_seconds = float(c.streams.audio[0].duration * c.streams.audio[0].time_base)
    assert abs(stream_seconds - n / sr) <= 1024 / sr
    assert abs(decoded - n) <= 2048  # encoder priming/padding, at most about one frame each
    info = probe(out)
    assert info.rotation == 90 and (info.width, info.height) == (48, 64)


def test_mux_stereo_and_overwrite(tmp_path):
    src = make_video(tmp_path / "in.mp4", seconds=1.0)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    wav = np.zeros((2, 16000), dtype=np.float32)
    mux_audio(src, wav, 16000, out)
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.channels == 2


def test_failed_mux_leaves_no_file(tmp_path, monkeypatch):
    import v2meow.io.mux as mux

    src = make_video(tmp_path / "in.mp4", seconds=1.0)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "out.mp4"

    def broken(*args, **kwargs):
        yield from ()
        raise RuntimeError("disk full")

    monkeypatch.setattr(mux, "encode_audio_packets", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        mux_audio(src, np.zeros(16000, np.float32), 16000, out)
    assert os.listdir(out_dir) == []
    # Bad input is refused before anything is written.
    with pytest.raises(UserError):
        mux_audio(src, np.zeros((3, 10), np.float32), 16000, out)
    with pytest.raises(UserError):
        mux_audio(tmp_path / "missing.mp4", np.zeros(100, np.float32), 16000, out)
    assert os.listdir(out_dir) == []
