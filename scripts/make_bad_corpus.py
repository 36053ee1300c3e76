"""Write the bad-input corpus under ``tests/data/bad/`` (small, deterministic, committed).

    python scripts/make_bad_corpus.py            # (re)write tests/data/bad/
    python scripts/make_bad_corpus.py OUT_DIR    # write it somewhere else

Every file is tiny (64×48 pixels, a couple of seconds; the 8K video is one flat-colour frame), so the whole
corpus stays far below 1 MB. What v2meow must do with each file is listed in ``docs/reliability.md`` and
checked by ``tests/reliability/test_bad_inputs.py``. The files come from the same factories as the unit tests
(``tests/media.py``), with single-threaded encoders so that a rerun with the same libraries writes the same bytes.
"""

from __future__ import annotations

import json
import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from media import make_audio, make_text_file, make_video, truncate_file  # noqa: E402

DEFAULT_OUT = ROOT / "tests" / "data" / "bad"

# name -> one line saying what the file is (written to index.json beside the files)
CASES = {
    "empty.mp4": "an empty file",
    "text.mp4": "a text file renamed .mp4",
    "random.mp4": "4 KB of random bytes named .mp4",
    "ftyp_garbage.mp4": "a valid MP4 'ftyp' box followed by random bytes",
    "truncated_10.mp4": "a 3 s MP4 with sound (index at the start) cut at 10% of its bytes",
    "truncated_50.mp4": "the same MP4 cut at 50%",
    "truncated_90.mp4": "the same MP4 cut at 90%",
    "truncated_50_index_at_end.mp4": "an MP4 whose index comes last, cut at 50% (the index is lost)",
    "audio_only.mp4": "an MP4 holding only an AAC track",
    "audio_only.wav": "a WAV file",
    "silent.mp4": "a 2 s video without an audio track",
    "zero_frames.mp4": "an MP4 with a video track that holds no frame",
    "one_frame.mp4": "a video of a single frame (1 fps, so it lasts 1 s)",
    "one_frame_short.mp4": "a video of a single frame lasting 1/25 s",
    "8k.mp4": "one 7680x4320 frame of a flat colour",
    "rotated.mp4": "a phone video: display matrix asks for a 90 degree rotation, with sound",
    "vfr.mp4": "variable frame rate (frame durations from 20 ms to 120 ms)",
    "sar.mp4": "non-square pixels (sample aspect ratio 2:1)",
    "mpeg4.mp4": "MPEG-4 part 2 video",
    "hevc.mp4": "H.265 video",
    "vp9.webm": "VP9 in WebM",
    "mjpeg.avi": "Motion JPEG in AVI",
    "ffv1.mkv": "FFV1 (lossless) in Matroska, with FLAC sound",
    "mpeg2.ts": "MPEG-2 video in an MPEG transport stream (timeline starts at 1.4 s)",
}


def _seeded_bytes(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


def _single_thread(stream: av.video.stream.VideoStream) -> None:
    stream.codec_context.thread_count = 1


def _write(path: Path, fmt: str, codec: str, size: tuple[int, int], frames: list[np.ndarray], fps: int,
           options: dict[str, str] | None = None, pix_fmt: str = "yuv420p", audio: str | None = None,
           seconds: float = 0.0) -> None:
    """A video of ``frames`` (RGB) at ``fps`` in container ``fmt`` with ``codec``; optional sound ``audio``."""
    # bitexact: no random segment ids or dates (Matroska/WebM), so reruns write the same bytes
    with av.open(str(path), mode="w", format=fmt, container_options={"fflags": "+bitexact"}) as c:
        v = c.add_stream(codec, rate=fps)
        v.width, v.height = size
        v.pix_fmt = pix_fmt
        _single_thread(v)
        if options:
            v.codec_context.options = options
        a = c.add_stream(audio, rate=16000 if audio != "mp2" else 44100, layout="mono") if audio else None
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        if a is not None:
            rate = a.codec_context.sample_rate
            n = int(seconds * rate)
            t = np.arange(n) / rate
            wav = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            hop = a.codec_context.frame_size or 1024
            fmt_name = a.codec_context.format.name
            for i in range(0, n, hop):
                fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(wav[:, i:i + hop]), format="fltp", layout="mono")
                fr.sample_rate = rate
                fr.pts = i
                fr.time_base = Fraction(1, rate)
                if fmt_name != "fltp":
                    fr = av.AudioResampler(format=fmt_name, layout="mono", rate=rate).resample(fr)[0]
                    fr.pts = i
                for p in a.encode(fr):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)


def _moving(n: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    """``n`` frames of a bright square sliding over a dark background (compresses well, decodes recognisably)."""
    w, h = size
    out = []
    for i in range(n):
        img = np.full((h, w, 3), 30 + 5 * (seed % 7), dtype=np.uint8)
        x = (i * 3) % (w - 12)
        img[h // 3: h // 3 + 12, x: x + 12] = (230, 200, 40)
        out.append(img)
    return out


def _zero_frames(path: Path) -> None:
    """An MP4 with a declared H.264 track and no frame in it."""
    with av.open(str(path), mode="w", format="mp4") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        _single_thread(v)
        c.start_encoding()  # the header is written even though no packet follows
        for p in v.encode(None):
            c.mux(p)


def make_corpus(out: Path) -> dict[str, int]:
    """Write every file of :data:`CASES` into ``out``; returns name -> size in bytes."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".tmp"
    tmp.mkdir(exist_ok=True)
    x264 = {"preset": "ultrafast", "crf": "30", "threads": "1"}
    try:
        (out / "empty.mp4").write_bytes(b"")
        make_text_file(out / "text.mp4")
        (out / "random.mp4").write_bytes(_seeded_bytes(4096, 1))
        ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
        (out / "ftyp_garbage.mp4").write_bytes(ftyp + _seeded_bytes(4096, 2))

        full = make_video(tmp / "full.mp4", seconds=3.0, fps=10, size=(64, 48), pattern="move", audio=True,
                          faststart=True, gop=10)
        for pct in (10, 50, 90):
            truncate_file(full, out / f"truncated_{pct}.mp4", pct / 100)
        late = make_video(tmp / "late.mp4", seconds=3.0, fps=10, size=(64, 48), pattern="move", audio=True,
                          faststart=False)
        truncate_file(late, out / "truncated_50_index_at_end.mp4", 0.5)

        make_audio(out / "audio_only.mp4", seconds=1.0, sample_rate=16000)
        make_audio(out / "audio_only.wav", seconds=0.5, sample_rate=8000)
        make_video(out / "silent.mp4", seconds=2.0, fps=10, size=(64, 48), pattern="flash")
        _zero_frames(out / "zero_frames.mp4")
        _write(out / "one_frame.mp4", "mp4", "libx264", (64, 48), _moving(1, (64, 48), 0), 1, x264)
        _write(out / "one_frame_short.mp4", "mp4", "libx264", (64, 48), _moving(1, (64, 48), 1), 25, x264)
        flat = np.empty((4320, 7680, 3), dtype=np.uint8)
        flat[:] = (40, 120, 200)
        _write(out / "8k.mp4", "mp4", "libx264", (7680, 4320), [flat], 1, {**x264, "preset": "medium"})
        make_video(out / "rotated.mp4", seconds=2.0, fps=10, size=(64, 48), pattern="static", audio=True, rotation=90)
        make_video(out / "vfr.mp4", seconds=2.0, fps=25, size=(64, 48), pattern="flash", vfr=True)
        make_video(out / "sar.mp4", seconds=2.0, fps=10, size=(64, 48), pattern="static", sar=(2, 1))
        frames = _moving(20, (64, 48), 3)
        make_video(out / "mpeg4.mp4", seconds=2.0, fps=10, size=(64, 48), pattern="move", codec="mpeg4")
        _write(out / "hevc.mp4", "mp4", "libx265", (64, 48), frames, 10,
               {"preset": "ultrafast", "crf": "30", "x265-params": "log-level=none:pools=none:frame-threads=1"})
        _write(out / "vp9.webm", "webm", "libvpx-vp9", (64, 48), frames, 10, {"deadline": "realtime", "crf": "40",
                                                                               "b": "0", "threads": "1"})
        _write(out / "mjpeg.avi", "avi", "mjpeg", (64, 48), frames, 10, {"q:v": "20"}, pix_fmt="yuvj420p")
        _write(out / "ffv1.mkv", "matroska", "ffv1", (64, 48), frames, 10, pix_fmt="yuv420p", audio="flac",
               seconds=2.0)
        _write(out / "mpeg2.ts", "mpegts", "mpeg2video", (64, 48), frames, 10, {"q:v": "10"})
    finally:
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    sizes = {name: (out / name).stat().st_size for name in CASES}
    index = {name: {"what": what, "bytes": sizes[name]} for name, what in CASES.items()}
    (out / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    return sizes


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DEFAULT_OUT
    sizes = make_corpus(out)
    extra = sorted(set(os.listdir(out)) - set(CASES) - {"index.json"})
    for name in extra:  # files of an older corpus
        (out / name).unlink()
    print(f"{out}: {len(sizes)} files, {sum(sizes.values()) / 1024:.1f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
