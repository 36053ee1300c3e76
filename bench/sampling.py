"""The sampler's cost: drawing tokens by the inverse CDF (``v2meow.sampling.draw``) against ``torch.multinomial``.

Anchor: ``torch.multinomial`` on the same probabilities, in the same process. Two rows: the draw alone (a batch of
rows of the codec's 1024 tokens, one generator per row as best-of-N generation draws), and the shipped model
generating a best-of-4 soundtrack with each sampler in turn (alternated, so load on the machine hits both alike).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch

from v2meow import sampling


def multinomial_sample(logits, cfg, generator=None):
    """``v2meow.sampling.sample`` as it drew before: one ``torch.multinomial`` call per generator."""
    logits = logits.float()
    if cfg.temperature == 0.0:
        return logits.argmax(-1)
    probs = sampling.apply_top_p(sampling.apply_top_k(logits / cfg.temperature, cfg.top_k), cfg.top_p).softmax(-1)
    if isinstance(generator, Sequence):
        return torch.cat([torch.multinomial(probs[i: i + 1], 1, generator=g) for i, g in enumerate(generator)])[:, 0]
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def per_call(fn, calls: int = 2000) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls


def draw_alone(rows: int, vocab: int = 1024) -> tuple[float, float]:
    """Seconds a call: multinomial, inverse CDF (both with one generator per row)."""
    torch.manual_seed(0)
    logits = torch.randn(rows, vocab)
    cfg = sampling.SamplingConfig(temperature=1.0)
    gens = [torch.Generator().manual_seed(i) for i in range(rows)]
    return (per_call(lambda: multinomial_sample(logits, cfg, gens)),
            per_call(lambda: sampling.sample(logits, cfg, gens)))


def soundtrack(video: str, seconds: float, candidates: int, repeats: int) -> tuple[list[float], list[float]]:
    """Seconds of ``generate`` with each sampler, alternated ``repeats`` times."""
    import v2meow.stages.base as stages
    from v2meow.pipeline import V2Meow
    from v2meow.soundtrack import model_path

    model = V2Meow.from_pretrained(model_path("embedded"))  # the shipped, trained stages
    model.generate(video, seconds=min(seconds, 2.0), seed=0, candidates=candidates)  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    try:
        for rep in range(repeats):
            for fn, out in ((multinomial_sample, times[0]), (sampling.sample, times[1])):
                stages.sample = fn
                t = time.perf_counter()
                model.generate(video, seconds=seconds, seed=rep, candidates=candidates)
                out.append(time.perf_counter() - t)
    finally:
        stages.sample = sampling.sample
    return times


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-model", action="store_true", help="only the draw alone")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| rows × 1024 tokens | multinomial µs | inverse CDF µs | × multinomial's speed |")
    print("|---|---|---|---|")
    for rows in (1, 4):
        a, b = draw_alone(rows)
        print(f"| {rows} | {a * 1e6:.1f} | {b * 1e6:.1f} | {a / b:.2f} |")
    if args.no_model:
        return
    import tempfile
    from pathlib import Path

    from bench.rhythm import make_video

    with tempfile.TemporaryDirectory() as tmp:
        # a moving figure on a 120 BPM beat (bench.rhythm's periodic-motion videos), as bench.embedded times
        video = str(make_video(Path(tmp) / "figure.mp4", "figure", 120.0, 0.1, args.seconds))
        old, new = soundtrack(video, args.seconds, args.candidates, args.repeats)
    print(f"\nshipped model, best of {args.candidates}, {args.seconds:g} s, alternated {args.repeats}x: "
          f"multinomial {min(old):.2f}-{max(old):.2f} s, inverse CDF {min(new):.2f}-{max(new):.2f} s, "
          f"× {min(old) / min(new):.2f} speed (best against best)")



if __name__ == "__main__":
    main()
