"""Video frames with PyAV: decoding and sampling at a fixed rate, upright and with square pixels.

Time convention (see :mod:`v2meow.io.probe`): times are seconds on the file's presentation timeline,
shifted so that a file whose streams all start late starts at 0; :mod:`v2meow.io.audio` uses the same
origin, so video time t and audio time t agree.

Frames are always returned as a player shows them: rotated upright according to the display matrix
(phone videos) and stretched to square pixels according to the sample aspect ratio.

Probing lives in :mod:`v2meow.io.probe` and muxing a new soundtrack in :mod:`v2meow.io.mux`; their public
names are importable from here too.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from v2meow.errors import UserError
from v2meow.io.mux import AAC_RATES as _AAC_RATES  # noqa: F401  (re-exported: muxing used to live here)
from v2meow.io.mux import as_planar as _as_planar  # noqa: F401
from v2meow.io.mux import encode_audio_packets, mux_audio, packet_time  # noqa: F401
from v2meow.io.probe import (  # noqa: F401  (re-exported: probing used to live here)
    _AV_ERRORS,
    VideoInfo,
    _check_file,
    _display_size,
    _rotation_of,
    _sar,
    _short,
    _video_stream,
    open_input,
    probe,
    timeline_origin,
)

# Times closer than this (seconds) count as equal when matching sample times with frame timestamps,
# so that float rounding of pts × time_base never picks the previous frame.
_TIME_EPS = 1e-4

# When decoding ends this many seconds (or less) before the stated duration, the last frame is taken to
# stay on screen until the end; further short of it the file is treated as cut short (see _sampled).
_END_SLACK = 1.0


class _FrameConverter:
    """Turns decoded frames into upright RGB arrays of the requested display size (swscale does the resize)."""

    def __init__(self, stream: av.video.stream.VideoStream, size: tuple[int, int] | None) -> None:
        self.sar = _sar(stream)
        self.size = size
        # One reformatter for the whole video: it keeps its swscale context, whereas frame.to_ndarray(width=...)
        # builds a new one per frame (measured 1.3 ms vs 0.04 ms per small frame).
        self.reformatter = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        rotation = _rotation_of(frame)
        if self.size is None:
            out_w, out_h = _display_size(frame.width, frame.height, self.sar, rotation)
        else:
            out_w, out_h = self.size
        # swscale works on the coded (unrotated) picture: ask it for the size that becomes (out_w, out_h)
        # after rotation; the pixel aspect ratio is folded into this same resize.
        coded_w, coded_h = (out_h, out_w) if rotation in (90, 270) else (out_w, out_h)
        # AREA averages all source pixels when shrinking, so fine texture does not alias into the small
        # frames the encoders look at.
        img = self.reformatter.reformat(
            frame, width=coded_w, height=coded_h, format="rgb24", interpolation="AREA"
        ).to_ndarray()
        if rotation == 90:
            img = np.rot90(img, k=-1)  # clockwise
        elif rotation == 180:
            img = img[::-1, ::-1]
        elif rotation == 270:
            img = np.rot90(img, k=1)
        return np.ascontiguousarray(img)


def _decoded_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    origin: float,
    state: dict[str, Any],
) -> Iterator[tuple[float, av.VideoFrame]]:
    """Decode ``stream`` yielding (time, frame); stop quietly at the first demux/decode error.

    ``state["error"]`` is set True when decoding stopped because of damage rather than at the end.
    Frames without a timestamp get the previous time plus the nominal frame duration.
    """
    rate = stream.average_rate or stream.guessed_rate
    step = 1.0 / float(rate) if rate else 1.0 / 25.0
    last_t: float | None = None

    def timed(frame: av.VideoFrame) -> tuple[float, av.VideoFrame]:
        nonlocal last_t
        if frame.pts is not None and frame.time_base is not None:
            t = float(frame.pts * frame.time_base) - origin
        else:
            t = 0.0 if last_t is None else last_t + step
        last_t = t
        return t, frame

    try:
        for packet in container.demux(stream):
            # demux() ends with an empty packet whose decode() flushes the decoder's delayed frames.
            for frame in packet.decode():
                yield timed(frame)
    except _AV_ERRORS:
        state["error"] = True
        # Frames the decoder already holds are good; take them, but never let a second error escape.
        try:
            for frame in stream.decode(None):
                yield timed(frame)
        except _AV_ERRORS:
            pass


def _seek(container: av.container.InputContainer, stream: av.video.stream.VideoStream, t: float, origin: float) -> None:
    """Seek to the keyframe at or before time ``t`` (decoding then continues up to ``t``)."""
    tb = stream.time_base
    target = int(math.floor((t + origin) / float(tb)))
    try:
        container.seek(target, stream=stream, backward=True, any_frame=False)
    except _AV_ERRORS:
        # Unseekable input: fall back to decoding from where we are (the start).
        pass


def iter_frames(
    path: str | os.PathLike[str],
    fps: float | None = 1.0,
    size: tuple[int, int] | None = None,
    start: float = 0.0,
    end: float | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Decode a video lazily, yielding ``(t, frame)`` with ``frame`` uint8 RGB ``[H, W, 3]``.

    With ``fps`` given, samples are taken at ``start + k/fps`` for every such time below ``end`` (default:
    the video's duration); each sample is the frame ON SCREEN at that time (the latest frame whose
    timestamp is <= t), so variable-frame-rate video is sampled by its real timestamps. With
    ``fps=None`` every decoded frame in ``[start, end)`` is yielded with its own timestamp.

    Frames are upright (display-matrix rotation applied) and have square pixels. ``size=(w, h)`` resizes
    to that display size while converting (swscale), which is much cheaper than resizing afterwards.

    Only one decoded frame is held at a time. A file damaged part-way (cut short) yields what decodes
    and stops without an exception (samples continue to the time the last good frame ends); if no frame
    at all decodes, :class:`UserError` is raised.
    """
    for _, t, frame in iter_frames_shared(path, [(fps, size)], start, end):
        yield t, frame


def iter_frames_shared(
    path: str | os.PathLike[str],
    samplings: list[tuple[float | None, tuple[int, int] | None]],
    start: float = 0.0,
    end: float | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """One decode of a video serving several ``(fps, size)`` samplings: yields ``(i, t, frame)``, where the
    frames of sampling ``i``, in order, are exactly what ``iter_frames(path, *samplings[i], start, end)``
    yields. The samplings advance together through the decoded frames (each next sample is taken from the one
    that has read the fewest), so only the few frames between the slowest and the fastest are held."""
    path = os.fspath(path)
    for fps, size in samplings:
        if fps is not None and not (fps > 0 and math.isfinite(fps)):
            raise UserError(f"The sampling rate must be a positive number of frames per second, got {fps}.")
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise UserError(f"The frame size must be (width, height) with positive values, got {size}.")
    info = probe(path)
    start = max(0.0, float(start))
    # Never past the end: samples after it would repeat the last frame, which no consumer wants.
    end = info.duration if end is None else min(float(end), info.duration)
    container = open_input(path, "video")
    try:
        stream = _video_stream(container)
        assert stream is not None  # probe() checked
        stream.thread_type = "AUTO"
        origin = timeline_origin(container)
        if start > 0:
            _seek(container, stream, start, origin)
        state: dict[str, Any] = {"error": False}
        copies = itertools.tee(_decoded_frames(container, stream, origin, state), len(samplings))
        read = [0] * len(samplings)

        def counted(i: int, frames: Iterator[tuple[float, av.VideoFrame]]) -> Iterator[tuple[float, av.VideoFrame]]:
            for item in frames:
                read[i] += 1
                yield item

        active: dict[int, Iterator[tuple[float, np.ndarray]]] = {}
        for i, ((fps, size), frames) in enumerate(zip(samplings, copies)):
            convert = _FrameConverter(stream, size)
            mine = counted(i, frames)
            active[i] = (_every_frame(mine, convert, start, end, path) if fps is None
                         else _sampled(mine, convert, start, end, fps, state, path))
        del copies
        while active:
            i = min(active, key=lambda j: read[j])
            try:
                t, frame = next(active[i])
            except StopIteration:
                del active[i]  # its copy of the decoded frames goes with it, so they are not kept for it
                continue
            yield i, t, frame
    finally:
        container.close()


def _every_frame(
    frames: Iterator[tuple[float, av.VideoFrame]],
    convert: _FrameConverter,
    start: float,
    end: float,
    path: str,
) -> Iterator[tuple[float, np.ndarray]]:
    any_decoded = False
    for t, frame in frames:
        any_decoded = True
        if t < start - _TIME_EPS:
            continue
        if t >= end - _TIME_EPS:
            break
        yield t, convert(frame)
    if not any_decoded:
        raise UserError(f"No video frame could be decoded from {path}.")


def _sampled(
    frames: Iterator[tuple[float, av.VideoFrame]],
    convert: _FrameConverter,
    start: float,
    end: float,
    fps: float,
    state: dict[str, Any],
    path: str,
) -> Iterator[tuple[float, np.ndarray]]:
    k = 0

    def sample_time(i: int) -> float:
        # Computed from k, not accumulated, so long videos do not drift.
        return start + i / fps

    prev: av.VideoFrame | None = None
    prev_t = 0.0
    prev_img: np.ndarray | None = None  # conversion is lazy: most decoded frames are never shown
    frame_step = 0.0
    for t, frame in frames:
        if prev is not None and t > prev_t:
            frame_step = t - prev_t
        # Every sample time before this frame's timestamp shows the previous frame.
        while sample_time(k) < end and t > sample_time(k) + _TIME_EPS:
            if prev is None:
                # The first frame starts after the sample time (late start): show the first frame.
                prev, prev_t, prev_img = frame, t, None
            if prev_img is None:
                prev_img = convert(prev)
            yield sample_time(k), prev_img
            k += 1
        if sample_time(k) >= end:
            return
        prev, prev_t, prev_img = frame, t, None
    if prev is None:
        raise UserError(f"No video frame could be decoded from {path}.")
    # The last frame stays on screen until it ends; until the stated end of the video when that is close
    # (headers and streams often disagree by a frame or so). Far short of the stated end, the file is
    # damaged (a cut-short MP4 often just ends, without any decode error): stop where the good frames stop.
    last_end = prev_t + _frame_duration(prev, frame_step)
    damaged = state["error"] or end - last_end > _END_SLACK
    stop = min(end, last_end) if damaged else end
    while sample_time(k) < stop - 1e-9:
        if prev_img is None:
            prev_img = convert(prev)
        yield sample_time(k), prev_img
        k += 1


def _frame_duration(frame: av.VideoFrame, fallback: float) -> float:
    """How long ``frame`` stays on screen (seconds): its own duration field, else the last frame spacing."""
    duration = getattr(frame, "duration", None)
    if duration and frame.time_base is not None:
        return float(duration * frame.time_base)
    return max(fallback, _TIME_EPS)


def read_frames(
    path: str | os.PathLike[str],
    fps: float | None = 1.0,
    size: tuple[int, int] | None = None,
    start: float = 0.0,
    end: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """All samples of :func:`iter_frames` at once: times ``[T]`` float64 and frames ``[T, H, W, 3]`` uint8.

    Holds every frame in memory: prefer :func:`iter_frames` for long videos.
    """
    times: list[float] = []
    images: list[np.ndarray] = []
    for t, img in iter_frames(path, fps=fps, size=size, start=start, end=end):
        times.append(t)
        images.append(img)
    if not images:
        return np.zeros((0,), dtype=np.float64), np.zeros((0, 0, 0, 3), dtype=np.uint8)
    return np.asarray(times, dtype=np.float64), np.stack(images)

