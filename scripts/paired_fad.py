"""FAD of `v2meow evaluate` folders on the same videos, with a paired bootstrap over the videos: how much of a FAD
difference between two models the draw of videos (and of each video's soundtrack) alone would give.

FAD is one number per set, so the release gate had no noise for it. Here each folder's soundtracks and the videos'
real music are embedded clip by clip (the encoders `evaluate` uses: the pinned semantic encoder and the codec's),
then the videos are resampled with replacement B times; each resample scores every folder against the same
resampled real music. The spread of (FAD of a folder − FAD of the first) over the resamples is that difference's
standard error. Resampled sets hold repeated clips, so their FADs run higher than the full set's; the difference,
computed on the same resample for both, is what is read.

    python scripts/paired_fad.py VIDEOS EVAL_DIR [EVAL_DIR ...] [--boot 500]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

BACKENDS = {"semantic": "fad", "codec": "fad_codec"}  # backend -> evaluate's column


def clip_embeddings(videos_dir: str | Path, folders: list[str], backends: tuple[str, ...] = ("semantic", "codec"),
                    seconds: float = 10.0) -> dict[str, dict[str, list[np.ndarray]]]:
    """Per backend, per folder (and ``"real"`` for the videos' music): each clip's frame embeddings ``[frames, D]``."""
    from v2meow.io.audio import load_audio
    from v2meow.metrics.evaluate import EvalOptions, _fad_embedder
    from v2meow.metrics.fad import embed_audio

    videos = sorted(Path(videos_dir).glob("*.mp4"))
    sr = 16000
    sets = {"real": [load_audio(str(v), sample_rate=sr, duration=seconds) for v in videos]}
    for folder in folders:
        wavs = sorted((Path(folder) / "audio").glob("*.wav"))
        if len(wavs) != len(videos):
            raise SystemExit(f"{folder} holds {len(wavs)} soundtracks for {len(videos)} videos: not the same set.")
        sets[folder] = [load_audio(str(w), sample_rate=sr) for w in wavs]
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for backend in backends:
        emb = _fad_embedder(backend, EvalOptions())
        out[backend] = {k: [embed_audio(emb, w, sr) for w in ws] for k, ws in sets.items()}
    return out


class _Sums:
    """Each clip's count, Σx and Σxxᵀ, so that any multiset of clips gives its Gaussian at once."""

    def __init__(self, clips: list[np.ndarray]) -> None:
        clips = [np.asarray(c, dtype=np.float64) for c in clips]
        self.n = np.array([len(c) for c in clips], dtype=np.float64)
        self.s = np.stack([c.sum(0) for c in clips])
        self.o = np.stack([c.T @ c for c in clips])

    def gaussian(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from v2meow.metrics.fad import gaussian_from_sums

        n = int(round(counts @ self.n))
        return gaussian_from_sums(n, counts @ self.s, np.tensordot(counts, self.o, axes=1))


def paired_bootstrap(real: list[np.ndarray], sets: list[list[np.ndarray]], boot: int = 500,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """FAD of each set on all clips ``[S]``, and on ``boot`` resamples of the clips ``[boot, S]`` (the same
    resample, with the real music resampled alike, for every set)."""
    from v2meow.metrics.fad import frechet_distance

    n = len(real)
    sums_r, sums = _Sums(real), [_Sums(s) for s in sets]
    rng = np.random.default_rng(seed)

    def fads(counts: np.ndarray) -> np.ndarray:
        mr, sr = sums_r.gaussian(counts)
        return np.array([frechet_distance(mr, sr, *s.gaussian(counts)) for s in sums])

    full = fads(np.ones(n))
    draws = np.stack([fads(np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64))
                      for _ in range(boot)])
    return full, draws


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("videos")
    p.add_argument("folders", nargs="+", help="evaluate folders (with audio/); the first is the one others pair with")
    p.add_argument("--boot", type=int, default=500)
    p.add_argument("--backends", default="semantic,codec")
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args(argv)
    backends = tuple(args.backends.split(","))
    emb = clip_embeddings(args.videos, args.folders, backends, args.seconds)
    for backend in backends:
        full, draws = paired_bootstrap(emb[backend]["real"], [emb[backend][f] for f in args.folders], args.boot)
        print(f"FAD, {backend} encoder ({len(emb[backend]['real'])} videos, {args.boot} paired resamples):")
        for j, folder in enumerate(args.folders):
            line = f"  {folder}: {full[j]:.3f} (resamples {np.median(draws[:, j]):.3f} median)"
            if j:
                d = draws[:, j] - draws[:, 0]
                line += (f"; minus the first {full[j] - full[0]:+.3f} ± {d.std(ddof=1):.3f} "
                         f"(lower in {np.mean(d < 0):.0%} of resamples)")
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
