"""Audio input and output: load any file PyAV or libsndfile reads (including a video's audio track),
resample with soxr, and save atomically.

Waveforms are float32 in [-1, 1]: ``[N]`` for mono, ``[C, N]`` (channels first) otherwise. Times follow
:mod:`v2meow.io.video` (a file whose streams all start late is shifted to start at 0), so the audio at
time t of a video file lines up with the video frame at time t.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr

from v2meow.errors import UserError
from v2meow.io.atomic import staged_file
from v2meow.io.files import check_file, short_error

if TYPE_CHECKING:
    import av

# PyAV is imported where a file needs FFmpeg (a video's audio, mp3, m4a, opus ...), not for the files libsndfile
# reads: training on FLAC or WAV runs where PyAV is not installed (a GPU machine with no package index).

# The audio files v2meow looks for in a folder (music for synth-data, joint and tokenizer training, tokenizing):
# every extension PyAV or libsndfile reads that music is commonly stored in.
AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".wma")

# Extensions libsndfile reads sample-exactly and fast; anything else (and any file libsndfile refuses)
# goes through PyAV.
_SNDFILE_READ = {".wav", ".flac", ".ogg", ".aiff", ".aif", ".aifc", ".w64", ".rf64", ".caf"}

# Extension → (soundfile format, subtype) for saving. PCM_16 for wav/flac: universally readable and
# lossless enough for 16 kHz generated audio; samples are clipped to [-1, 1] first.
_SNDFILE_WRITE = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}
# Extension → (PyAV codec, container format) for saving what libsndfile cannot write.
# (Raw .aac/ADTS is left out: it cannot record the encoder delay, so its audio would start late.)
_AV_WRITE = {".m4a": ("aac", "mp4")}

# Sample rates a file may claim. Outside them the header is damaged, not audio, and resampling could turn a
# few kilobytes claiming 1 Hz into gigabytes.
_MIN_RATE, _MAX_RATE = 1000, 768000


def resample(wav: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample ``wav`` (``[N]`` or ``[C, N]``) from ``sr_in`` to ``sr_out`` Hz with soxr (high quality).

    The output has ``round(N * sr_out / sr_in)`` samples (soxr's length) and dtype float32.
    """
    if sr_in <= 0 or sr_out <= 0:
        raise UserError(f"Sample rates must be positive, got {sr_in} and {sr_out}.")
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim not in (1, 2):
        raise UserError(f"Audio must be [N] or [C, N] samples, got shape {wav.shape}.")
    if sr_in == sr_out:
        return wav.copy()
    if wav.shape[-1] == 0:
        return np.zeros(wav.shape[:-1] + (0,), dtype=np.float32)
    # soxr works on [N] or frames-first [N, C].
    x = wav if wav.ndim == 1 else np.ascontiguousarray(wav.T)
    y = soxr.resample(x, sr_in, sr_out, quality="HQ")
    y = np.asarray(y, dtype=np.float32)
    return y if wav.ndim == 1 else np.ascontiguousarray(y.T)


def _to_float_planar(frame: av.AudioFrame) -> np.ndarray:
    """A decoded frame as float32 ``[C, n]``, whatever its sample format (packed or planar, int or float)."""
    arr = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        arr = arr.reshape(-1, channels).T  # packed: one row, samples interleaved
    if arr.dtype == np.int16:
        return arr.astype(np.float32) / 32768.0
    if arr.dtype == np.int32:
        return (arr.astype(np.float64) / 2147483648.0).astype(np.float32)
    if arr.dtype == np.uint8:
        return (arr.astype(np.float32) - 128.0) / 128.0
    return arr.astype(np.float32, copy=False)


def _load_sndfile(path: str, start: float, duration: float | None) -> tuple[np.ndarray, int]:
    """Read with libsndfile: ``([C, n] float32, rate)``. Raises RuntimeError (LibsndfileError) if it cannot."""
    with sf.SoundFile(path) as f:
        rate = f.samplerate
        first = min(int(round(start * rate)), f.frames)
        count = f.frames - first if duration is None else min(int(round(duration * rate)), f.frames - first)
        f.seek(first)
        data = f.read(frames=max(count, 0), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), rate


def _load_av(path: str, start: float, duration: float | None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream with PyAV: ``([C, n] float32, rate)``, trimmed sample-exactly."""
    from v2meow.io.probe import _AV_ERRORS, open_input, timeline_origin

    with open_input(path, "audio") as container:
        streams = [s for s in container.streams.audio if s.codec_context is not None]  # None: no decoder
        if not streams:
            undecodable = bool(container.streams.audio)
            raise UserError(f"The file {path} has no audio stream{' that FFmpeg can decode' if undecodable else ''}.")
        stream = streams[0]
        stream.thread_type = "AUTO"
        rate = stream.codec_context.sample_rate
        if not rate:
            raise UserError(f"The audio stream of {path} has no sample rate.")
        origin = timeline_origin(container)
        if start > 1.0:
            # Seek a little early: the decoder needs some context and keyframe granularity is coarse.
            target = int(math.floor(max(0.0, start - 0.5 + origin) / float(stream.time_base)))
            try:
                container.seek(target, stream=stream, backward=True)
            except _AV_ERRORS:
                pass
        want = None if duration is None else int(round(duration * rate))
        chunks: list[np.ndarray] = []
        have = 0  # samples collected at or after `start`
        pos: int | None = None  # sample index (at `rate`, relative to time 0) of the next decoded sample
        damaged = False
        try:
            for frame in container.decode(stream):
                data = _to_float_planar(frame)
                if pos is None:
                    # Position from the first frame's timestamp; afterwards count samples, which does not
                    # jitter with rounded timestamps.
                    t0 = float(frame.pts * frame.time_base) - origin if frame.pts is not None else 0.0
                    pos = int(round(t0 * rate))
                    begin = int(round(start * rate))
                    if pos > begin:
                        # The stream starts after `start`: silence until it does, to keep times aligned.
                        chunks.append(np.zeros((data.shape[0], pos - begin), dtype=np.float32))
                        have += pos - begin
                    pos -= begin  # from here on, relative to `start`
                skip = max(0, -pos)
                pos += data.shape[1]
                if skip < data.shape[1]:
                    piece = data[:, skip:]
                    chunks.append(piece)
                    have += piece.shape[1]
                if want is not None and have >= want:
                    break
        except _AV_ERRORS as e:
            # A damaged tail: keep what decoded; a file where nothing decodes is an error below.
            damaged = not chunks
            error = e
        if not chunks:
            if damaged:
                raise UserError(f"No audio could be decoded from {path} ({short_error(error)}).") from None
            channels = stream.codec_context.channels or 1
            return np.zeros((channels, 0), dtype=np.float32), rate
        wav = np.concatenate(chunks, axis=1)
        if want is not None:
            wav = wav[:, :want]
        return wav, rate


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int = 16000,
    mono: bool = True,
    start: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Load audio from any file PyAV (FFmpeg) or libsndfile reads, including the audio track of a video.

    Returns float32 ``[N]`` when ``mono`` (the mean of the channels) or ``[C, N]`` otherwise, at
    ``sample_rate`` Hz, covering ``[start, start + duration)`` seconds (to the end when ``duration`` is
    None; shorter if the file ends first). Raises :class:`UserError` for a missing, empty or unreadable
    file, or one without an audio stream.
    """
    path = os.fspath(path)
    if sample_rate <= 0:
        raise UserError(f"The sample rate must be positive, got {sample_rate}.")
    if start < 0 or (duration is not None and duration < 0):
        raise UserError(f"Start and duration must not be negative, got start={start}, duration={duration}.")
    check_file(path, "audio")
    wav = None
    if os.path.splitext(path)[1].lower() in _SNDFILE_READ:
        try:
            wav, rate = _load_sndfile(path, start, duration)
        except (RuntimeError, sf.LibsndfileError):
            wav = None  # e.g. a .wav with a codec libsndfile lacks: let FFmpeg try
    if wav is None:
        wav, rate = _load_av(path, start, duration)
    if not _MIN_RATE <= rate <= _MAX_RATE:
        raise UserError(f"The audio of {path} claims a sample rate of {rate} Hz; v2meow reads audio sampled at "
                        f"{_MIN_RATE} to {_MAX_RATE} Hz (the file may be damaged).")
    if not np.isfinite(wav).all():
        raise UserError(f"The audio of {path} holds NaN or infinite samples (damaged floating-point data).")
    if mono:
        wav = wav.mean(axis=0, dtype=np.float32)
    return resample(wav, rate, sample_rate)


def _as_channels_first(wav: np.ndarray) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 1:
        wav = wav[None, :]
    if wav.ndim != 2:
        raise UserError(f"Audio must be [N] or [C, N] samples, got shape {wav.shape}.")
    if not np.all(np.isfinite(wav)):
        raise UserError("The audio contains NaN or infinite samples.")
    return np.clip(wav, -1.0, 1.0)


def save_audio(path: str | os.PathLike[str], wav: np.ndarray, sample_rate: int) -> None:
    """Save ``wav`` (float ``[N]`` or ``[C, N]``, clipped to [-1, 1]) atomically.

    Formats by extension: ``.wav`` and ``.flac`` (16-bit PCM), ``.ogg`` (Vorbis), ``.mp3`` (libsndfile),
    ``.m4a`` (AAC via PyAV). Any other extension is a :class:`UserError`. The file is written
    to a temporary name in the same folder and renamed, so a reader never sees half a file.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in _SNDFILE_WRITE and ext not in _AV_WRITE:
        known = ", ".join(sorted(set(_SNDFILE_WRITE) | set(_AV_WRITE)))
        raise UserError(f"Cannot save audio as {path}: unsupported extension (use one of {known}).")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise UserError(f"The sample rate must be a positive integer, got {sample_rate}.")
    sample_rate = int(sample_rate)
    data = _as_channels_first(wav)
    if ext in _SNDFILE_WRITE:
        fmt, subtype = _SNDFILE_WRITE[ext]
        try:
            with staged_file(path, ext) as tmp:
                sf.write(tmp, data.T, sample_rate, format=fmt, subtype=subtype)
        except sf.LibsndfileError as e:
            raise UserError(f"Could not save audio to {path}: {short_error(e)}.") from e
        return
    import av

    from v2meow.io.mux import write_audio

    codec, fmt = _AV_WRITE[ext]
    try:
        with staged_file(path, ext) as tmp:
            write_audio(tmp, data, sample_rate, codec, fmt)
    except av.error.FFmpegError as e:
        raise UserError(f"Could not save audio to {path}: {short_error(e)}.") from e


def match_loudness(wav: np.ndarray, sample_rate: int, target_lufs: float, peak_dbfs: float = -1.0,
                   max_gain_db: float = 40.0, limit_db: float = 0.0) -> np.ndarray:
    """``wav [N]`` brought to ``target_lufs`` integrated loudness (ITU-R BS.1770-4, :mod:`v2meow.io.loudness`)
    by one gain, never by more than ``max_gain_db`` (near-silence stays quiet instead of becoming loud noise),
    and no sample past ``peak_dbfs``.

    Where one gain would take a peak past ``peak_dbfs``, the gain may go up to ``limit_db`` further and a
    look-ahead limiter (:mod:`v2meow.io.limiter`) brings those peaks back under it; ``limit_db=0`` keeps the
    music's dynamics as they are and stops the gain at the peak instead. Silence, and a clip too short for a
    400 ms loudness block, is measured by its RMS instead (about what BS.1770 gives for broadband music)."""
    from v2meow.io.limiter import limit_peaks

    wav = np.asarray(wav, dtype=np.float32)
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    if peak == 0.0:
        return wav
    peak_gain = peak_dbfs - 20.0 * math.log10(peak)  # the most one gain may give
    top = min(max_gain_db, peak_gain + max(0.0, limit_db))
    gain_db = min(target_lufs - _loudness(wav, sample_rate), top)
    if gain_db <= peak_gain:
        return (wav * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)
    ceiling = 10.0 ** (peak_dbfs / 20.0)
    out = limit_peaks(wav * np.float32(10.0 ** (gain_db / 20.0)), ceiling, sample_rate)
    # the limiter took a little of the loudness from the peaks: one more step towards the target, in budget
    more = min(target_lufs - _loudness(out, sample_rate), top - gain_db)
    if more > 0.01:
        out = limit_peaks(wav * np.float32(10.0 ** ((gain_db + more) / 20.0)), ceiling, sample_rate)
    return out


def _loudness(wav: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS; the RMS level in dBFS where BS.1770 has no block to measure."""
    from v2meow.io.loudness import integrated_loudness

    loudness = integrated_loudness(wav, sample_rate)
    if not math.isfinite(loudness):  # short, or every block below BS.1770's absolute gate
        loudness = 20.0 * math.log10(float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) + 1e-12)
    return loudness
