"""Stage 2's token layouts side by side: seconds to write 10 s of coarse codes, flat against delay.

    python -m bench.layouts            # the embedded preset's stage 2, random weights, one thread

The flat layout (the paper's) takes one decoder step per level per frame; the delay layout (MusicGen's) one
step per frame for every level, plus ``levels - 1``. Both stages are built from the same preset, differ only in
``coarse.layout`` and generate in the same process, alternately, best of ``--repeats``: the result is the ratio.
"""

from __future__ import annotations

import argparse
import time

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="embedded")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from v2meow.config import load_preset, resolve_streams
    from v2meow.features.registry import build_encoder
    from v2meow.sampling import make_generator
    from v2meow.stages.coarse import CoarseStage

    cfg = load_preset(args.preset)
    resolve_streams(cfg, [build_encoder(e, load_weights=False) for e in cfg.encoders])
    c = cfg.coarse
    frames = int(round(args.seconds * c.frame_rate))
    sem = torch.randint(0, c.semantic_vocab, (1, int(round(args.seconds * c.semantic_rate))))
    feats = {s.name: torch.randn(1, max(1, int(round(args.seconds * s.rate))), s.dim) for s in c.streams}
    stages = {}
    for layout in ("flat", "delay"):
        torch.manual_seed(0)
        stages[layout] = CoarseStage(c.replace(layout=layout)).eval()
    best = {k: float("inf") for k in stages}
    with torch.inference_mode():
        for _ in range(args.repeats):
            for k, st in stages.items():
                t = time.perf_counter()
                st.generate(sem, frames, features=feats, generator=make_generator(0))
                best[k] = min(best[k], time.perf_counter() - t)
    steps = {"flat": frames * c.levels, "delay": frames + c.levels - 1}
    print(f"stage 2 of {args.preset!r} ({c.levels} levels, {args.seconds:g} s = {frames} frames, {args.threads} "
          f"thread(s), random weights; best of {args.repeats})")
    print(f"| {'layout':<6} | {'decoder steps':>13} | {'seconds':>7} | {'ms/step':>7} | {'x flat speed':>12} |")
    print("|--------|---------------|---------|---------|--------------|")
    for k in stages:
        print(f"| {k:<6} | {steps[k]:>13} | {best[k]:>7.2f} | {1e3 * best[k] / steps[k]:>7.2f} | "
              f"{best['flat'] / best[k]:>12.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
