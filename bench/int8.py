"""Stages 1 and 2 with their linear layers quantised to int8 on the fly (``torch.ao.quantization.quantize_dynamic``)
against float32: seconds per part of best of N for 10 s of music, as ratios against float32 (the anchor), the two
alternated in one process; and how many of one soundtrack's tokens the int8 model samples the same.

    python -m bench.int8 [--seconds 10] [--candidates 4] [--repeats 3] [--threads 2]

Not in ``make bench``'s run of every module (it is a measured option that did not ship): run it by name.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path

import torch

RUN_BY_NAME_ONLY = True


def quantised(model):
    """A copy of ``model`` whose stage 1 and 2 linear layers compute in int8 with float activations."""
    q = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the eager quantisation API's deprecation notice
        for name in ("semantic", "coarse"):
            setattr(q, name, torch.ao.quantization.quantize_dynamic(getattr(q, name), {torch.nn.Linear},
                                                                   dtype=torch.qint8))
    return q


def main(argv: list[str] | None = None) -> None:
    from bench.embedded import best_of_args

    args = best_of_args(__doc__, argv)

    from bench.embedded import load_model, timed_generate
    from bench.rhythm import make_video

    base, what = load_model()
    models = {"float32": base.eval(), "int8": quantised(base).eval()}
    with tempfile.TemporaryDirectory() as tmp:
        video = str(make_video(Path(tmp) / "clip.mp4", "still", 100.0, 0.0, args.seconds + 1.0))
        for m in models.values():  # warm-up
            timed_generate(m, video, args.seconds, args.candidates)
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in models}
        for _ in range(args.repeats):
            for k, m in models.items():
                runs[k].append(timed_generate(m, video, args.seconds, args.candidates))
        one = {k: m.generate(video, seconds=args.seconds, seed=0, candidates=1) for k, m in models.items()}
    best = {k: {part: min(r[part] for r in rs) for part in rs[0]} for k, rs in runs.items()}
    print(f"{what}, best of {args.candidates}, {args.seconds:g} s, {args.threads} threads, best of {args.repeats} "
          "alternated runs")
    print("| part | float32 (s) | int8 (s) | int8 / float32 |")
    print("|---|---|---|---|")
    for part, t in best["float32"].items():
        q = best["int8"].get(part, float("nan"))
        print(f"| {part} | {t:.2f} | {q:.2f} | {q / t:.2f} |")
    a, b = (one[k].semantic for k in models)
    differ = (a != b).nonzero()
    first = f"first different at token {int(differ[0, 0])} of {a.numel()}" if len(differ) else "all the same"
    print(f"one soundtrack, seed 0: {(a == b).float().mean():.1%} of the semantic tokens the same, {first}")


if __name__ == "__main__":
    main()
