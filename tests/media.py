"""Small synthetic media files for tests, written with PyAV and soundfile.

Every helper writes a real file (so tests exercise real demuxers and decoders) and returns its path as
a string. Files are tiny (64×48 pixels, a few seconds) so that writing one takes a few milliseconds.

Patterns for :func:`make_video`:

- ``"noise"``: every frame independent uniform noise (each frame is recognisable by its content).
- ``"flash"``: whole frames alternate bright / dark; bright during the first half of each ``period``.
- ``"move"``: a bright square on a dark background whose x position follows
  ``centre + amplitude · sin(2π t / period)`` (one left-right oscillation per ``period``).
- ``"static"``: the same asymmetric image for every frame: red grows left→right, green grows top→bottom,
  blue is constant, so a test can tell which way up a decoded frame is.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import soundfile as sf

PATTERNS = ("noise", "flash", "move", "static")


def drum_loop(seconds: float, rate: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A drum loop (a 60 Hz thump and a burst of noise on every half second) and a held C major chord of the same
    length, as float arrays at ``rate``: drums alone, and music over drums when added."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    loop = np.zeros_like(t)
    for beat in np.arange(0.0, seconds, 0.5):
        i, n = int(beat * rate), int(0.08 * rate)
        decay = np.exp(-t[:n] * 40)
        loop[i : i + n] += np.sin(2 * np.pi * 60 * t[:n]) * decay + 0.3 * rng.standard_normal(n) * decay**2
    chord = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))
    return loop, chord


def vfr_timestamps(seconds: float, fps: float, seed: int = 0) -> np.ndarray:
    """Frame times (seconds, multiples of 1 ms) of a variable-frame-rate video made by :func:`make_video`.

    Frame durations are drawn from {0.5, 1, 2, 3} × (1/fps), rounded to whole milliseconds, so that
    frames are on screen for very different lengths of time. Returns ``[N]`` float64, starting at 0.
    """
    rng = np.random.default_rng(seed + 7919)
    times = [0]
    base_ms = 1000.0 / fps
    while True:
        step = int(round(base_ms * rng.choice([0.5, 1.0, 2.0, 3.0])))
        nxt = times[-1] + max(step, 1)
        if nxt >= seconds * 1000.0 - 1e-6:
            break
        times.append(nxt)
    return np.asarray(times, dtype=np.float64) / 1000.0


def _frame_rgb(pattern: str, t: float, w: int, h: int, period: float, rng: np.random.Generator) -> np.ndarray:
    """One ``[h, w, 3]`` uint8 RGB frame of ``pattern`` at time ``t``."""
    if pattern == "noise":
        return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    if pattern == "flash":
        # Small epsilon so that frames exactly on a half-period boundary do not flip with rounding.
        bright = ((t + 1e-9) % period) < period / 2.0
        return np.full((h, w, 3), 230 if bright else 25, dtype=np.uint8)
    if pattern == "move":
        img = np.full((h, w, 3), 20, dtype=np.uint8)
        side = max(4, h // 4)
        amplitude = 0.3 * w
        cx = w / 2.0 + amplitude * np.sin(2.0 * np.pi * t / period)
        x0 = int(round(cx - side / 2.0))
        y0 = (h - side) // 2
        x0 = min(max(x0, 0), w - side)
        img[y0 : y0 + side, x0 : x0 + side] = 235
        return img
    if pattern == "static":
        img = np.empty((h, w, 3), dtype=np.uint8)
        img[..., 0] = np.linspace(16, 240, w, dtype=np.float64).round().astype(np.uint8)[None, :]
        img[..., 1] = np.linspace(16, 240, h, dtype=np.float64).round().astype(np.uint8)[:, None]
        img[..., 2] = 128
        return img
    raise ValueError(f"unknown pattern {pattern!r}; choose from {PATTERNS}")


def _audio_signal(seconds: float, rate: int, channels: int, freq: float, seed: int) -> np.ndarray:
    """A ``[channels, N]`` float32 test signal: a sine (different frequency per channel) plus some noise.

    The noise (amplitude 0.1 against 0.4 for the sine) makes the signal aperiodic, so tests can find its
    time offset by cross-correlation without the sine's period making the answer ambiguous.
    """
    n = int(round(seconds * rate))
    t = np.arange(n, dtype=np.float64) / rate
    rng = np.random.default_rng(seed + 104729)
    out = np.empty((channels, n), dtype=np.float32)
    for c in range(channels):
        out[c] = 0.4 * np.sin(2.0 * np.pi * freq * (1.0 + 0.5 * c) * t) + 0.1 * rng.standard_normal(n)
    return out


def _encode_audio(
    container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, wav: np.ndarray
) -> None:
    """Encode planar float ``wav`` ``[C, N]`` into ``stream`` in 1024-sample frames (the AAC frame size)."""
    rate = stream.codec_context.sample_rate
    layout = "mono" if wav.shape[0] == 1 else "stereo"
    hop = 1024
    for i in range(0, wav.shape[1], hop):
        chunk = np.ascontiguousarray(wav[:, i : i + hop], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = i
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def make_video(
    path: str | os.PathLike[str],
    seconds: float = 3.0,
    fps: float = 25.0,
    size: tuple[int, int] = (64, 48),
    pattern: str = "noise",
    audio: bool = False,
    audio_rate: int = 16000,
    rotation: int = 0,
    vfr: bool = False,
    sar: tuple[int, int] | None = None,
    codec: str = "libx264",
    seed: int = 0,
    period: float = 0.5,
    faststart: bool = True,
    gop: int | None = None,
) -> str:
    """Write a small MP4 and return its path.

    Args:
        path: output file (``.mp4``; the container format is always MP4).
        seconds: length of the video (and of the audio track when ``audio``).
        fps: frame rate; with ``vfr`` the mean frame spacing is about 1.6/fps (see :func:`vfr_timestamps`).
        size: coded ``(width, height)`` in pixels (even numbers, for 4:2:0 chroma).
        pattern: one of :data:`PATTERNS` (see the module docstring).
        audio: add an AAC stereo track (sine plus a little noise) of the same length.
        audio_rate: sample rate of that track.
        rotation: clockwise rotation a player must apply for display (0, 90, 180, 270), written as the
            stream's display matrix, as phones do. ``VideoInfo.rotation`` reads the same number back.
        vfr: irregular frame timestamps (millisecond time base).
        sar: sample (pixel) aspect ratio ``(num, den)``, e.g. ``(2, 1)``: each pixel twice as wide as tall.
        codec: video encoder (``"libx264"`` or ``"mpeg4"``).
        seed: seed for noise frames and the audio noise.
        period: seconds per cycle for ``"flash"`` and ``"move"``.
        faststart: put the MP4 index at the start of the file (as web videos do), so a file cut short
            still has its index and can be partly decoded.
        gop: frames between keyframes (the encoder's default, 250 for x264, when None); small values give
            seek points inside a short test video.
    """
    path = os.fspath(path)
    w, h = size
    rng = np.random.default_rng(seed)
    if vfr:
        times = vfr_timestamps(seconds, fps, seed)
    else:
        times = np.arange(int(round(seconds * fps)), dtype=np.float64) / fps
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(path, mode="w", format="mp4", options=options) as container:
        rate = Fraction(fps).limit_denominator(1001)
        vstream = container.add_stream(codec, rate=rate)
        vstream.width = w
        vstream.height = h
        vstream.pix_fmt = "yuv420p"
        time_base = Fraction(1, 1000) if vfr else 1 / rate
        vstream.codec_context.time_base = time_base
        if codec == "libx264":
            # ultrafast keeps test files quick to write; a low CRF keeps patterns recognisable after decoding.
            vstream.codec_context.options = {"preset": "ultrafast", "crf": "12", "tune": "zerolatency"}
        else:
            vstream.codec_context.qscale = 2
            vstream.codec_context.flags |= av.codec.context.Flags.qscale
        if gop is not None:
            vstream.codec_context.gop_size = gop
        if sar is not None:
            vstream.codec_context.sample_aspect_ratio = Fraction(*sar)
        if rotation:
            # PyAV's angle is counter-clockwise; ``rotation`` here is the clockwise display rotation.
            vstream.set_display_rotation(-int(rotation))
        astream = None
        if audio:
            astream = container.add_stream("aac", rate=audio_rate, layout="stereo")
        for i, t in enumerate(times):
            img = _frame_rgb(pattern, float(t), w, h, period, rng)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts = int(round(t * 1000)) if vfr else i
            frame.time_base = time_base
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode(None):
            container.mux(packet)
        if astream is not None:
            _encode_audio(container, astream, _audio_signal(seconds, audio_rate, 2, 440.0, seed))
    return path


def make_audio(
    path: str | os.PathLike[str],
    seconds: float = 1.0,
    sample_rate: int = 16000,
    freq: float = 440.0,
    channels: int = 1,
) -> str:
    """Write a sine (plus a little noise) audio file; ``.wav``/``.flac`` via soundfile, others via PyAV.

    For PyAV formats the codec follows the extension: ``.m4a``/``.aac``/``.mp4`` → AAC, ``.mp3`` → MP3,
    ``.ogg``/``.opus`` → Opus (48 kHz only), ``.mkv`` → FLAC in Matroska.
    """
    path = os.fspath(path)
    wav = _audio_signal(seconds, sample_rate, channels, freq, 0)
    ext = os.path.splitext(path)[1].lower()
    if ext in (".wav", ".flac"):
        sf.write(path, wav.T, sample_rate, subtype="PCM_16")
        return path
    codec, fmt = {
        ".m4a": ("aac", "mp4"),
        ".aac": ("aac", "adts"),
        ".mp4": ("aac", "mp4"),
        ".mp3": ("libmp3lame", "mp3"),
        ".ogg": ("libopus", "ogg"),
        ".opus": ("libopus", "ogg"),
        ".mkv": ("flac", "matroska"),
    }[ext]
    layout = "mono" if channels == 1 else "stereo"
    with av.open(path, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        fmt_name = stream.codec_context.format.name if stream.codec_context.format else "fltp"
        hop = stream.codec_context.frame_size or 1024
        for i in range(0, wav.shape[1], hop):
            chunk = wav[:, i : i + hop]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = i
            frame.time_base = Fraction(1, sample_rate)
            if fmt_name != "fltp":
                # Some encoders (mp3, flac) want another sample format: convert each chunk.
                frame = av.AudioResampler(format=fmt_name, layout=layout, rate=sample_rate).resample(frame)[0]
                frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def make_text_file(path: str | os.PathLike[str], text: str = "This is not a video.\n" * 20) -> str:
    """Write a plain text file (e.g. named ``.mp4``, to test that it is rejected cleanly)."""
    path = os.fspath(path)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def truncate_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], fraction: float = 0.5) -> str:
    """Copy the first ``fraction`` of the bytes of ``src`` to ``dst`` (a download cut short)."""
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data[: int(len(data) * fraction)])
    return os.fspath(dst)
