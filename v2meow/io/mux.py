"""AAC encoding and MP4 muxing with PyAV, in one place for every writer of audio into a container:
:func:`mux_audio` (a new soundtrack under an existing video, ``v2meow generate``), :func:`write_video`
(rendered frames plus a track, ``v2meow synth-data``) and :func:`write_audio` (an ``.m4a`` file,
:func:`v2meow.io.audio.save_audio`).

Audio packets are interleaved with the video packets by time, rather than written after all the video,
so the MP4's chunks are in time order: players stream it without seeking back and forth, and the muxer
buffers little.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from v2meow.errors import UserError
from v2meow.io.atomic import staged_file
from v2meow.io.probe import _short, _video_stream, open_input, probe

# The sample rates AAC can signal.
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


def check_aac_rate(sample_rate: int, what: str = "The sample rate", verb: str = "written") -> int:
    """``sample_rate`` as an int, or a :class:`UserError` when AAC cannot carry it."""
    if int(sample_rate) not in AAC_RATES:
        raise UserError(f"{what} {sample_rate} Hz cannot be {verb} as AAC; use one of {AAC_RATES}.")
    return int(sample_rate)


def as_planar(wav: np.ndarray) -> np.ndarray:
    """``[N]`` or ``[C, N]`` → float32 ``[C, N]`` clipped to [-1, 1] (AAC input)."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 1:
        wav = wav[None, :]
    if wav.ndim != 2 or wav.shape[0] not in (1, 2) or wav.shape[1] == 0:
        raise UserError(f"The audio to mux must be [N] (mono) or [2, N] (stereo) samples, got shape {wav.shape}.")
    if not np.all(np.isfinite(wav)):
        raise UserError("The audio to mux contains NaN or infinite samples.")
    return np.ascontiguousarray(np.clip(wav, -1.0, 1.0))


def channel_layout(wav: np.ndarray) -> str:
    """``"mono"`` or ``"stereo"`` for planar ``wav`` ``[C, N]``."""
    return "mono" if wav.shape[0] == 1 else "stereo"


def encode_audio_packets(stream: av.audio.stream.AudioStream, wav: np.ndarray, sample_rate: int) -> Iterator[av.Packet]:
    """Encode planar ``wav`` ``[C, N]`` into packets of ``stream``'s codec, lazily (frames of the encoder's
    frame size)."""
    layout = channel_layout(wav)
    hop = stream.codec_context.frame_size or 1024
    for i in range(0, wav.shape[1], hop):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wav[:, i : i + hop]), format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = i
        frame.time_base = Fraction(1, sample_rate)
        yield from stream.encode(frame)
    yield from stream.encode(None)


def packet_time(packet: av.Packet) -> float:
    ts = packet.dts if packet.dts is not None else packet.pts
    if ts is None or packet.time_base is None:
        return 0.0
    return float(ts * packet.time_base)


class Interleaver:
    """Muxes video packets as they come and, before each, every audio packet of ``audio`` due by its time."""

    def __init__(self, container: av.container.OutputContainer, audio: Iterator[av.Packet]) -> None:
        self.container, self.audio = container, audio
        self.pending: av.Packet | None = next(audio, None)

    def _audio_until(self, t: float) -> None:
        while self.pending is not None and packet_time(self.pending) <= t:
            self.container.mux(self.pending)
            self.pending = next(self.audio, None)

    def video(self, packets: Iterable[av.Packet], stream: av.video.stream.VideoStream | None = None) -> None:
        """Mux ``packets`` (retargeted at ``stream`` when given: copied from another file)."""
        for packet in packets:
            self._audio_until(packet_time(packet))
            if stream is not None:
                packet.stream = stream
            self.container.mux(packet)

    def finish(self) -> None:
        """Mux the audio left after the last video packet."""
        self._audio_until(float("inf"))


def _demuxed(src: av.container.InputContainer, in_stream: av.video.stream.VideoStream) -> Iterator[av.Packet]:
    """Every packet of ``in_stream``, unchanged."""
    for packet in src.demux(in_stream):
        if packet.dts is None and packet.size == 0:
            continue  # the flush packet at the end of demuxing carries no data
        yield packet


def mux_audio(
    video_path: str | os.PathLike[str], wav: np.ndarray, sample_rate: int, out_path: str | os.PathLike[str]
) -> None:
    """Write ``out_path`` (MP4): the video stream of ``video_path`` copied bit for bit, plus ``wav`` as AAC.

    The original audio streams are dropped. ``wav`` is float32 ``[N]`` (mono) or ``[2, N]`` (stereo) at
    ``sample_rate`` (one of the AAC rates, e.g. 16000, 44100, 48000). The display matrix (rotation) is
    kept. The file appears atomically: it is written to a temporary file in the output's folder and
    renamed; on any error the temporary file is removed and ``out_path`` is left as it was.
    """
    video_path = os.fspath(video_path)
    out_path = os.fspath(out_path)
    planar = as_planar(wav)
    sample_rate = check_aac_rate(sample_rate)
    info = probe(video_path)  # the friendly errors for a missing / unreadable / audio-only input
    try:
        with staged_file(out_path, ".mp4") as tmp:
            with open_input(video_path, "video") as src, av.open(tmp, mode="w", format="mp4") as dst:
                in_stream = _video_stream(src)
                assert in_stream is not None
                # The template copies codec parameters, including coded side data such as the display matrix.
                out_v = dst.add_stream_from_template(in_stream)
                out_v.time_base = in_stream.time_base
                if info.rotation:
                    # Set explicitly too, in case the template did not carry the display matrix over.
                    out_v.set_display_rotation(-info.rotation)
                out_a = dst.add_stream("aac", rate=sample_rate, layout=channel_layout(planar))
                mux = Interleaver(dst, encode_audio_packets(out_a, planar, sample_rate))
                mux.video(_demuxed(src, in_stream), out_v)
                mux.finish()
    except av.error.FFmpegError as e:
        raise UserError(f"Could not write {out_path}: {_short(e)}.") from e


def write_video(
    path: str,
    frames: Iterable[np.ndarray],
    size: tuple[int, int],
    fps: float,
    wav: np.ndarray,
    audio_rate: int,
    crf: int,
) -> None:
    """Encode RGB ``frames`` (H.264, yuv420p) and planar ``wav`` ``[C, N]`` (AAC) into the MP4 ``path``,
    interleaved by time. Written in place: callers write to a temporary name and publish it."""
    w, h = size
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        vs = container.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.time_base = 1 / rate
        vs.codec_context.gop_size = max(1, int(round(2 * fps)))
        vs.codec_context.thread_count = 1
        # One thread and no macroblock tree: with mbtree, x264's output varies from run to run when a
        # side is not a multiple of 16 (e.g. 64x36), and the same seed must give the same file.
        vs.codec_context.options = {"preset": "veryfast", "crf": str(crf), "threads": "1", "x264-params": "mbtree=0"}
        layout = channel_layout(wav)
        astream = container.add_stream("aac", rate=audio_rate, layout=layout)
        astream.bit_rate = 96000 if layout == "mono" else 128000
        mux = Interleaver(container, encode_audio_packets(astream, wav, audio_rate))
        reformatter = VideoReformatter()
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame = reformatter.reformat(frame, format="yuv420p")
            frame.pts = i
            frame.time_base = 1 / rate
            mux.video(vs.encode(frame))
        mux.video(vs.encode(None))
        mux.finish()


def write_audio(path: str, wav: np.ndarray, sample_rate: int, codec: str, fmt: str) -> None:
    """Encode planar ``wav`` ``[C, N]`` with PyAV's ``codec`` into a ``fmt`` container at ``path`` (in place)."""
    if wav.shape[0] not in (1, 2):
        raise UserError(f"Only mono or stereo audio can be saved as {os.path.splitext(path)[1]}, got {wav.shape[0]}.")
    if codec == "aac":
        check_aac_rate(sample_rate, verb="saved")
    with av.open(path, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=channel_layout(wav))
        for packet in encode_audio_packets(stream, wav, sample_rate):
            container.mux(packet)
