"""Opening and probing media files with PyAV: one friendly error per unreadable input, the display size
(rotation, pixel aspect ratio), the duration the data really reaches, and the time origin.

Time convention: times are seconds on the file's presentation timeline, shifted so that a file whose
streams all start late (MPEG-TS often starts at 1.4 s) starts at 0. Negative start times (AAC priming)
are not shifted. :mod:`v2meow.io.video` (frames) and :mod:`v2meow.io.audio` use this origin, so video
time t and audio time t agree.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction

import av

from v2meow.errors import UserError
from v2meow.io.files import check_file as _check_file
from v2meow.io.files import short_error as _short

# The video files v2meow looks for in a folder (extraction, tokenizing, evaluation).
VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")

# Errors PyAV raises for unreadable or damaged input. PyAV's own errors subclass FFmpegError; some also
# subclass OSError/ValueError, and a few decoding problems surface as plain ValueError or EOFError.
_AV_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError, OSError, ValueError, EOFError)

# How many packets probe() reads looking for the first decodable frame (for the rotation); bounded so
# that a file of garbage that happens to demux never makes probe() slow.
_PROBE_MAX_PACKETS = 600

# probe() checks that the data really reaches the stated end (a download cut short keeps an index that promises
# more): it demuxes, without decoding, from the last keyframe before the end. Past this many packets (a file with
# very rare keyframes) the check is skipped and the header trusted.
_TAIL_MAX_PACKETS = 5000
# The packets may end this much (seconds, or frame durations if more) short of the stated end without the file
# counting as cut short: headers and packets often disagree by a frame or so.
_TAIL_SLACK_SECONDS = 0.25
_TAIL_SLACK_FRAMES = 2.5


@dataclass
class VideoInfo:
    """What :func:`probe` learns about a media file.

    ``width``/``height`` are the DISPLAY size: after the sample aspect ratio (non-square pixels) and the
    rotation are applied, i.e. the size of the frames :func:`iter_frames` yields when ``size`` is None.
    ``rotation`` is the clockwise rotation (0, 90, 180, 270) the display matrix asks for.
    """

    path: str
    duration: float
    width: int
    height: int
    rotation: int
    fps: float | None
    has_video: bool
    has_audio: bool
    video_codec: str | None
    audio_codec: str | None
    damaged: bool = False  # cut short: ``duration`` is how far the data really goes, less than the header says
    stated_duration: float | None = None  # the duration the header states


def open_input(path: str | os.PathLike[str], what: str = "media") -> av.container.InputContainer:
    """Open ``path`` for reading with PyAV, turning every failure into one :class:`UserError` sentence."""
    path = os.fspath(path)
    _check_file(path, what)
    try:
        # Bounded probing: analyzeduration/probesize keep garbage files from being scanned at length.
        return av.open(path, mode="r", options={"probesize": "10000000", "analyzeduration": "10000000"})
    except _AV_ERRORS as e:
        raise UserError(f"The file {path} is not a readable {what} file ({_short(e)}).") from None


def timeline_origin(container: av.container.InputContainer) -> float:
    """Seconds to subtract from stream times so that the file starts at 0 (never negative; see module doc)."""
    start = container.start_time
    if start is None or start <= 0:
        return 0.0
    return start / av.time_base


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The main video stream, ignoring cover art (an 'attached picture' is not a video) and streams in a codec
    FFmpeg has no decoder for (PyAV gives them no codec context)."""
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic or stream.codec_context is None:
            continue
        return stream
    return None


def _stream_duration(stream: av.stream.Stream) -> float | None:
    if stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _scan_duration(path: str, stream_index: int) -> float | None:
    """Duration from the last packet's end time, by demuxing (no decoding); for files without an index."""
    end = None
    try:
        with av.open(path) as container:
            stream = container.streams[stream_index]
            tb = stream.time_base
            first = None
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                t0 = float(packet.pts * tb)
                t1 = t0 + float((packet.duration or 0) * tb)
                first = t0 if first is None else min(first, t0)
                end = t1 if end is None else max(end, t1)
            if end is not None and first is not None:
                return max(0.0, end - max(0.0, min(first, end)))
    except _AV_ERRORS:
        # A damaged tail: whatever was read so far is the best estimate.
        pass
    return end


def _tail_end(container: av.container.InputContainer, stream: av.stream.Stream, end: float) -> float | None:
    """Where the packets of ``stream`` really end (stream seconds), demuxing from the last keyframe before ``end``.

    Returns ``end`` itself when the check cannot be made cheaply (unseekable input, a very long stretch without
    keyframes), and None when no packet at all can be read there (the data stops before the last keyframe).
    """
    tb = stream.time_base
    try:
        container.seek(int(math.floor(end / float(tb))), stream=stream, backward=True, any_frame=False)
    except _AV_ERRORS:
        return end
    last = None
    try:
        for i, packet in enumerate(container.demux(stream)):
            if i >= _TAIL_MAX_PACKETS:
                return end
            if packet.pts is None:
                continue
            t = float(packet.pts * tb) + float((packet.duration or 0) * tb)
            last = t if last is None else max(last, t)
    except _AV_ERRORS:
        pass  # the data stops here: what was read so far is where it ends
    return last


def _readable_duration(
    path: str, container: av.container.InputContainer, stream: av.stream.Stream, duration: float, origin: float
) -> float | None:
    """``duration`` when the data of ``stream`` reaches its stated end, else how far it really goes (a file cut
    short); None when nothing of it can be read."""
    tb = stream.time_base
    if tb is None:
        return duration
    start = float(stream.start_time * tb) if stream.start_time is not None else origin
    rate = getattr(stream, "average_rate", None) or getattr(stream, "guessed_rate", None)
    slack = max(_TAIL_SLACK_SECONDS, _TAIL_SLACK_FRAMES / float(rate) if rate else 0.0)
    end = _tail_end(container, stream, start + duration)
    if end is not None and end >= start + duration - slack:
        return duration
    # Short, or nothing after the last keyframe: scan every packet (no decoding) for the real end.
    scanned = _scan_duration(path, stream.index)
    if scanned is None or scanned <= 0:
        return None
    return scanned if scanned < duration - slack else duration


def _rotation_of(frame: av.VideoFrame) -> int:
    """Clockwise display rotation (0/90/180/270) of a decoded frame from its display-matrix side data."""
    try:
        ccw = frame.rotation
    except (AttributeError, ValueError):
        return 0
    if ccw is None or (isinstance(ccw, float) and not math.isfinite(ccw)):
        return 0
    # PyAV reports the counter-clockwise angle; players rotate clockwise by its negation.
    return int(round(-float(ccw) / 90.0)) % 4 * 90


def _sar(stream: av.video.stream.VideoStream) -> Fraction:
    for value in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if value is not None and value > 0:
            return Fraction(value)
    return Fraction(1)


def _display_size(width: int, height: int, sar: Fraction, rotation: int) -> tuple[int, int]:
    """Display (width, height): stretch width by the pixel aspect ratio, then swap for 90/270 rotations."""
    w = max(1, int(round(width * float(sar))))
    h = height
    return (h, w) if rotation in (90, 270) else (w, h)


def _first_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> av.VideoFrame | None:
    """The first decodable frame (PyAV exposes the display matrix only on frames), or None."""
    try:
        for i, packet in enumerate(container.demux(stream)):
            for frame in packet.decode():
                return frame
            if i >= _PROBE_MAX_PACKETS:
                break
    except _AV_ERRORS:
        pass
    return None


def probe(path: str | os.PathLike[str], require_video: bool = True) -> VideoInfo:
    """Describe a media file; raise :class:`UserError` (one sentence naming the file) if it is unusable.

    Errors: missing file, empty file, not a readable media file, and (with ``require_video``) no video
    stream. Duration comes from the stream header, else the container header, else a scan of packet
    timestamps (no decoding).
    """
    path = os.fspath(path)
    with open_input(path, "video" if require_video else "media") as container:
        vstream = _video_stream(container)
        astreams = [s for s in container.streams.audio if s.codec_context is not None]
        if vstream is None and require_video:
            undecodable = any(s.codec_context is None for s in container.streams.video)
            raise UserError(f"The file {path} has no video stream{' that FFmpeg can decode' if undecodable else ''}.")
        main = vstream if vstream is not None else (astreams[0] if astreams else None)
        if main is None:
            raise UserError(f"The file {path} has neither a video nor an audio stream.")
        origin = timeline_origin(container)
        duration = _stream_duration(main)
        if duration is None and container.duration is not None and container.duration > 0:
            duration = container.duration / av.time_base - origin
        width = height = rotation = 0
        fps = None
        video_codec = audio_codec = None
        if vstream is not None:
            video_codec = vstream.codec_context.name
            rate = vstream.average_rate or vstream.guessed_rate
            fps = float(rate) if rate else None
            first = _first_frame(container, vstream)
            rotation = _rotation_of(first) if first is not None else 0
            # a damaged header may leave the stream without a size that its frames still have
            coded = ((first.width, first.height) if first is not None
                     else (vstream.codec_context.width, vstream.codec_context.height))
            if min(coded) <= 0:
                raise UserError(f"The file {path} is damaged: its video has no picture size and no frame decodes.")
            width, height = _display_size(coded[0], coded[1], _sar(vstream), rotation)
        if astreams:
            audio_codec = astreams[0].codec_context.name
        main_index = main.index
        stated = duration
        if duration is not None and math.isfinite(duration) and duration > 0:
            duration = _readable_duration(path, container, main, duration, origin)
            if duration is None:
                raise UserError(f"The file {path} is cut short or damaged: none of its data can be read.")
    if duration is None:
        duration = stated = _scan_duration(path, main_index)
    if duration is None or not math.isfinite(duration) or duration <= 0:
        raise UserError(f"The file {path} has no readable duration (no timestamped data).")
    return VideoInfo(
        path=path,
        duration=float(duration),
        width=int(width),
        height=int(height),
        rotation=int(rotation),
        fps=fps,
        has_video=vstream is not None,
        has_audio=bool(astreams),
        video_codec=video_codec,
        audio_codec=audio_codec,
        damaged=duration < stated,
        stated_duration=float(stated),
    )

