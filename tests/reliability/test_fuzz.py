"""Fuzz the media boundary: random bytes and damaged real files go into probe, frame decoding and audio loading.

Whatever the bytes, only :class:`UserError` may come out (one sentence for the user), and whatever does load must
be well formed: frames uint8 ``[H, W, 3]`` at increasing times inside the stated duration, audio finite float32.
Examples are derandomised (the same every run, so CI never flakes) and bounded in number and time; set
``V2MEOW_FUZZ_EXAMPLES`` to fuzz longer with fresh random examples, e.g. ``V2MEOW_FUZZ_EXAMPLES=5000``.
"""

from __future__ import annotations

import os
import signal
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media import make_audio, make_video

from v2meow.errors import UserError
from v2meow.io.audio import load_audio
from v2meow.io.video import iter_frames, probe

LONG = int(os.environ.get("V2MEOW_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=LONG or 1000,  # about 10 s on a loaded 2-core machine
    deadline=timedelta(seconds=10),  # a hang fails the example; the machine is shared, so generous per example
    derandomize=not LONG,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EXTENSIONS = (".mp4", ".wav", ".mkv", ".webm", ".avi", ".ts", ".mov", ".flac", ".m4a", ".ogg", ".bin")


@pytest.fixture(scope="module", autouse=True)
def _alarm():
    """The whole module is bounded too: a decoder stuck in C code fails the run instead of stalling CI."""

    def expired(signum, frame):
        raise TimeoutError("fuzzing ran past its time bound")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(300)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _seed_files() -> dict[str, bytes]:
    """Small valid files whose bytes the fuzzer damages: MP4 (H.264 + AAC), MPEG-4 part 2, WAV, FLAC, Ogg/Opus."""
    out = {}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        out[".mp4"] = Path(make_video(d / "a.mp4", seconds=0.6, fps=10, size=(32, 24), pattern="move", audio=True,
                                      gop=3)).read_bytes()
        out[".m4v"] = Path(make_video(d / "b.mp4", seconds=0.5, fps=10, size=(32, 24), codec="mpeg4")).read_bytes()
        out[".wav"] = Path(make_audio(d / "a.wav", seconds=0.2, sample_rate=8000)).read_bytes()
        out[".flac"] = Path(make_audio(d / "a.flac", seconds=0.2, sample_rate=8000)).read_bytes()
        out[".ogg"] = Path(make_audio(d / "a.ogg", seconds=0.2, sample_rate=48000)).read_bytes()
    return out


SEEDS = _seed_files()


@st.composite
def damaged(draw) -> tuple[str, bytes]:
    """(extension, bytes): a seed file with a few random edits, keeping its extension most of the time."""
    ext = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[ext])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "overwrite", "delete", "insert", "truncate", "duplicate", "field"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "field" and ext == ".wav":
            # a header field: format tag, channels, sample rate, byte rate, block align, bits, data size
            offset, width = draw(st.sampled_from([(20, 2), (22, 2), (24, 4), (28, 4), (32, 2), (34, 2), (40, 4)]))
            value = draw(st.sampled_from([0, 1, 2, 3, 7, 8, 255, 65535, 2**31 - 1, 2**32 - 1]) | st.integers(0, 2**16))
            data[offset:offset + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")
        elif kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16)) if draw(st.booleans()) else b"\xff" * draw(
                st.integers(1, 64))
            data[pos:pos + len(chunk)] = chunk
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 256))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "duplicate":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 512))]
    if draw(st.integers(0, 9)) == 0:
        ext = draw(st.sampled_from(EXTENSIONS))  # and sometimes a misleading name
    return (".mp4" if ext == ".m4v" else ext), bytes(data)


random_files = st.tuples(st.sampled_from(EXTENSIONS), st.binary(max_size=2048))


def _write(tmp: Path, ext: str, data: bytes) -> Path:
    fd, name = tempfile.mkstemp(suffix=ext, dir=tmp)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


def _check_video(path: Path) -> None:
    try:
        info = probe(path)
    except UserError:
        return
    assert info.duration > 0 and np.isfinite(info.duration)
    assert info.width > 0 and info.height > 0 and info.rotation in (0, 90, 180, 270)
    last = -1.0
    try:
        for i, (t, frame) in enumerate(iter_frames(path, fps=10, size=(16, 12))):
            assert frame.dtype == np.uint8 and frame.shape == (12, 16, 3)
            assert last < t < info.duration + 1e-6
            last = t
            assert i < 10 * info.duration + 2
    except UserError:
        pass


def _check_audio(path: Path) -> None:
    try:
        wav = load_audio(path, sample_rate=8000)
    except UserError:
        return
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert np.isfinite(wav).all()


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def test_seed_files_are_valid(tmp):
    """The fuzzer starts from files that load, so its edits explore the decoders, not just the openers."""
    for ext, data in SEEDS.items():
        path = _write(tmp, ".mp4" if ext == ".m4v" else ext, data)
        if ext in (".mp4", ".m4v"):
            assert probe(path).duration > 0 and len(list(iter_frames(path, fps=10))) > 0
        if ext != ".m4v":
            assert len(load_audio(path, sample_rate=8000)) > 0


@FUZZ
@given(damaged())
def test_damaged_files_give_results_or_user_errors(tmp, case):
    ext, data = case
    path = _write(tmp, ext, data)
    try:
        _check_video(path)
        _check_audio(path)
    finally:
        path.unlink()


@settings(FUZZ, max_examples=LONG or 500)
@given(random_files)
def test_random_bytes_give_user_errors(tmp, case):
    ext, data = case
    path = _write(tmp, ext, data)
    try:
        _check_video(path)
        _check_audio(path)
    finally:
        path.unlink()


def _wav_field(data: bytes, offset: int, width: int, value: int) -> bytes:
    out = bytearray(data)
    out[offset:offset + width] = value.to_bytes(width, "little")
    return bytes(out)


@pytest.mark.parametrize("edit, phrase", [
    (lambda d: _wav_field(d, 24, 4, 1), "sample rate of 1 Hz"),  # 8 KB claiming 1 Hz: 64 M samples at 16 kHz
    (lambda d: _wav_field(d, 24, 4, 2**31 - 1), "sample rate"),
    # the same bytes read as 32-bit floats: NaNs and infinities among them
    (lambda d: _wav_field(_wav_field(_wav_field(d, 20, 2, 3), 32, 2, 4), 34, 2, 32), "NaN or infinite"),
])
def test_audio_headers_that_lie(edit, phrase, tmp):
    rng = np.random.default_rng(0)
    pcm = (rng.integers(-32768, 32767, 8000, dtype=np.int16)).tobytes()
    header = _wav_field(_wav_field(bytes(44), 0, 4, int.from_bytes(b"RIFF", "little")), 4, 4, 36 + len(pcm))
    header = header[:8] + b"WAVEfmt " + (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + \
        (1).to_bytes(2, "little") + (8000).to_bytes(4, "little") + (16000).to_bytes(4, "little") + \
        (2).to_bytes(2, "little") + (16).to_bytes(2, "little") + b"data" + len(pcm).to_bytes(4, "little")
    good = header + pcm
    path = _write(tmp, ".wav", good)
    assert len(load_audio(path, sample_rate=8000)) == 8000
    path.write_bytes(edit(good))
    with pytest.raises(UserError, match=phrase):
        load_audio(path, sample_rate=16000)
