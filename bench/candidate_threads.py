"""Best of N in one batch against the candidates split over Python threads: would the second core help?

Anchor: stages 1 and 2 sampling the model's N candidates as one batch with the process's thread count (what
``generate`` does). Against it, the same candidates split into groups, each group sampled by its own Python thread
with one intra-op thread (the cores then work on different candidates instead of splitting each small matrix
product); and, for comparison, batches of part of the candidates on one thread (what one of two processes would
do). The tokens are the same either way (each candidate draws from its own generator); only the time differs.

    python -m bench.candidate_threads [--seconds 10] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from bench.embedded import load_model
    from bench.rhythm import make_video
    from v2meow.features.registry import extract_features
    from v2meow.generation import sweep_coarse, sweep_semantic
    from v2meow.sampling import make_generator

    model, what = load_model()
    n = max(2, model.cfg.generation.candidates)
    with tempfile.TemporaryDirectory() as tmp:
        video = str(make_video(Path(tmp) / "figure.mp4", "figure", 120.0, 0.1, args.seconds))
        feats = extract_features(video, model.encoders, start=0.0, duration=args.seconds)
    feats = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in feats.items()}

    def sample(seeds: list[int], threads: int) -> tuple[Tensor, Tensor]:
        torch.set_num_threads(threads)
        gens = [make_generator(s) for s in seeds]
        with torch.inference_mode():
            semantic = sweep_semantic(model, feats, args.seconds, None, 1.0, gens, None)
            return semantic, sweep_coarse(model, feats, semantic, args.seconds, gens, None)

    def batched() -> tuple[float, Tensor]:
        t = time.perf_counter()
        _, codes = sample(list(range(n)), args.threads)
        return time.perf_counter() - t, codes

    def split(groups: int) -> tuple[float, Tensor]:
        parts = [list(range(n))[i * n // groups:(i + 1) * n // groups] for i in range(groups)]
        t = time.perf_counter()
        with ThreadPoolExecutor(groups) as pool:
            out = list(pool.map(lambda seeds: sample(seeds, 1), parts))
        took = time.perf_counter() - t
        torch.set_num_threads(args.threads)
        return took, torch.cat([codes for _, codes in out])

    def one(rows: int) -> tuple[float, Tensor]:
        t = time.perf_counter()
        _, codes = sample(list(range(rows)), 1)
        took = time.perf_counter() - t
        torch.set_num_threads(args.threads)
        return took, codes

    ways = {f"one batch of {n}, {args.threads} thread(s)": batched}
    for groups in sorted({args.threads, n} - {1}):
        ways[f"{groups} Python threads of {n // groups}, 1 thread each"] = lambda g=groups: split(g)
    # what one process would do with part of the candidates (the first ``rows`` of them)
    ways.update({f"one batch of {rows} alone, 1 thread": lambda r=rows: one(r) for rows in sorted({n, n // 2, 1})})
    for fn in ways.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in ways}
    same = True
    for _ in range(args.repeats):  # alternated, so drift in the machine's load reaches every way alike
        anchor = None
        for name, fn in ways.items():
            took, codes = fn()
            times[name].append(took)
            anchor = codes if anchor is None else anchor
            same = same and torch.equal(codes, anchor[: len(codes)])
    base = min(next(iter(times.values())))
    print(f"{what}: stages 1 and 2 for {n} candidates of {args.seconds:g} s, best of {args.repeats}")
    print(f"{'way':<44} {'seconds':>8} {'x anchor time':>14}")
    for name, ts in times.items():
        print(f"{name:<44} {min(ts):>8.2f} {min(ts) / base:>14.2f}")
    print(f"same tokens every way: {same}")


if __name__ == "__main__":
    main()
