"""Visual feature extraction of the default model against plain PyAV decoding: video frames a second of each.

    python -m bench.extraction                       # 20 s of 640x360 video at 24 fps
    python -m bench.extraction --size 1280x720 --seconds 10 --repeats 3

The video is written here (H.264 through ``v2meow.io.mux.write_video``): a random texture panning a few pixels a
frame, so it carries real detail for the decoder, with bench.rhythm's stepping figure on a 120 BPM beat over it.

Anchor: PyAV decoding every frame of the same file and doing nothing else (no conversion to RGB, no resizing; the
stream threads as ``v2meow.io.video`` sets them), measured in the same process. Every row is the number of the
video's frames covered a second of wall time, and its speed as a share of the anchor's. The rows: the frame
readers the extraction uses (``iter_frames``: decode, convert to RGB, resize), each visual encoder of the default
model alone (``extract_features`` with that encoder), all of them with the video decoded once per distinct decode
rate and frame size (as extraction did before it shared one decode), and all of them as ``generate`` runs them
(one decode, each sampling taken from it). Best of ``--repeats``, the rows alternated.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def make_textured_video(path: Path, seconds: float, size: tuple[int, int], fps: float) -> Path:
    """A panning random texture with bench.rhythm's stepping figure (120 BPM) drawn over it, H.264 in MP4."""
    from bench.rhythm import _frame
    from v2meow.io.mux import write_video

    w, h = size
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 160, (h, w + 4 * int(seconds * fps) + 1, 3), dtype=np.uint8)
    # smooth it a little along both axes, as real pictures are, so x264 does not spend everything on noise
    texture = ((texture.astype(np.uint16) + np.roll(texture, 1, 0) + np.roll(texture, 1, 1)) // 3).astype(np.uint8)

    def frames():
        for i in range(int(round(seconds * fps))):
            figure = _frame("figure", i / fps, 120.0, 0.1, size)
            yield np.maximum(texture[:, 4 * i: 4 * i + w], figure)

    write_video(str(path), frames(), size, fps, np.zeros((1, int(seconds * 16000)), np.float32), 16000, crf=23)
    return path


def pyav_decode(path: str) -> int:
    """Decode every video frame of ``path`` with PyAV and nothing else; the number of frames."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def default_encoders():
    """The default model's visual encoders (the shipped model's config, else the embedded preset's)."""
    from importlib import resources

    from v2meow.config import load_preset
    from v2meow.features.registry import EncoderConfig, build_encoder

    root = resources.files("v2meow") / "assets" / "embedded"
    if (root / "config.json").is_file():
        from v2meow.modeldir import read_model_config

        cfgs = [EncoderConfig.from_dict(e) for e in read_model_config(Path(str(root)))["config"]["encoders"]]
        what = "the shipped embedded model"
    else:
        cfgs, what = load_preset("embedded").encoders, "the embedded preset"
    return [build_encoder(c) for c in cfgs], what


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--size", default="640x360", help="WIDTHxHEIGHT of the test video")
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))

    from v2meow.features.registry import extract_features
    from v2meow.io.video import iter_frames, probe

    encoders, what = default_encoders()
    with tempfile.TemporaryDirectory() as tmp:
        video = str(make_textured_video(Path(tmp) / "textured.mp4", args.seconds, size, args.fps))
        info = probe(video)
        frames = pyav_decode(video)
        rows: dict[str, object] = {"PyAV decode, every frame (anchor)": lambda: pyav_decode(video)}
        readers = {(e.decode_fps, tuple(e.frame_size)) for e in encoders}
        for fps, fsize in sorted(readers, key=lambda r: (r[0] is not None, r[0] or 0.0)):
            rate = "every frame" if fps is None else f"{fps:g} a second"
            rows[f"iter_frames: {rate}, RGB {fsize[0]}x{fsize[1]}"] = (
                lambda fps=fps, fsize=fsize: sum(1 for _ in iter_frames(video, fps=fps, size=fsize)))
        for e in encoders:
            rows[f"encoder {e.name} ({e.rate:g}/s) alone"] = lambda e=e: extract_features(video, [e])
        groups: dict[tuple, list] = {}
        for e in encoders:
            groups.setdefault((e.decode_fps, tuple(e.frame_size)), []).append(e)
        rows[f"all {len(encoders)} encoders, one decode per sampling ({len(groups)} decodes)"] = (
            lambda: [extract_features(video, g) for g in groups.values()])
        rows[f"all {len(encoders)} encoders (as generate: one decode)"] = lambda: extract_features(video, encoders)
        best = {k: float("inf") for k in rows}
        for _ in range(args.repeats):
            for k, fn in rows.items():
                t = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t)
    anchor = best["PyAV decode, every frame (anchor)"]
    print(f"{what}'s visual encoders ({', '.join(f'{e.name} {e.rate:g}/s' for e in encoders)}) on "
          f"{info.duration:.1f} s of {size[0]}x{size[1]} H.264 at {args.fps:g} fps ({frames} frames); "
          f"best of {args.repeats}")
    width = max(len(k) for k in rows)
    print(f"| {'what':<{width}} | {'seconds':>7} | {'video frames/s':>14} | {'x PyAV decode speed':>19} |")
    print(f"|{'-' * (width + 2)}|---------|----------------|---------------------|")
    for k, s in best.items():
        print(f"| {k:<{width}} | {s:>7.2f} | {frames / s:>14.0f} | {anchor / s:>19.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
