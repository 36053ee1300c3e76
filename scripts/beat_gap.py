"""Per-clip beat F-measure of generated music against its own video's visual beats and against every other
video's (the mismatched control), with the mean gap and its standard error, from `v2meow evaluate` folders.

    python scripts/beat_gap.py VIDEOS EVAL_DIR [EVAL_DIR ...]   # later folders also paired with the first
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def clip_beats(videos_dir: str | Path, folders: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per folder, each clip's beat F against its own video's beats and against the other videos' ``(own, other)``."""
    import soundfile as sf

    from v2meow.metrics.beats import beat_f_own_and_others, track_beats
    from v2meow.metrics.evaluate import visual_beats

    videos = sorted(Path(videos_dir).glob("*.mp4"))
    beats = [visual_beats(str(v), 10.0)[0] for v in videos]
    out = {}
    for folder in folders:
        wavs = sorted((Path(folder) / "audio").glob("*.wav"))
        assert len(wavs) == len(videos), (folder, len(wavs), len(videos))
        m, o = [], []
        for i, w in enumerate(wavs):
            a, sr = sf.read(str(w), always_2d=True)
            own, other = beat_f_own_and_others(track_beats(a.mean(1).astype(np.float32), sr), beats[i],
                                               [b for j, b in enumerate(beats) if j != i])
            m.append(own)
            o.append(other)
        out[folder] = (np.array(m), np.array(o))
    return out


def main(argv: list[str]) -> int:
    print("| system | matched | other videos | gap ± s.e. | clips with gap > 0 |")
    print("|---|---|---|---|---|")
    gaps = []
    for folder, (m, o) in clip_beats(argv[0], argv[1:]).items():
        d = m - o
        gaps.append(d)
        print(f"| {Path(folder).name} | {np.mean(m):.3f} | {np.mean(o):.3f} | {d.mean():+.3f} ± "
              f"{d.std(ddof=1) / np.sqrt(len(d)):.3f} | {np.mean(d > 0):.0%} |")
    for folder, d in zip(argv[2:], gaps[1:]):  # the same videos: each folder's gap against the first's, clip by clip
        p = d - gaps[0]
        print(f"{folder} minus {argv[1]}: gap {p.mean():+.3f} ± {p.std(ddof=1) / np.sqrt(len(p)):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
