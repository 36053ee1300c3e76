"""Generation speed: decoder steps with and without the KV cache, and the real-time factor of a preset.

Anchor: the same model generating the same tokens without the cache (full recomputation each step),
measured in the same process. Ratios, not absolute times, are the result: they transfer across machines.
"""

from __future__ import annotations

import argparse
import time

import torch

from v2meow.modules.transformer import TransformerConfig
from v2meow.sampling import SamplingConfig
from v2meow.stages.base import TokenLM


def time_generate(lm: TokenLM, n: int, use_cache: bool, prefix: torch.Tensor, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        lm.generate(n, SamplingConfig(temperature=0.0), prefix=prefix, use_cache=use_cache)
        best = min(best, time.perf_counter() - t)
    return best


def cache_speedup(width: int, layers: int, tokens: int) -> tuple[float, float]:
    torch.manual_seed(0)
    cfg = TransformerConfig(width=width, heads=max(1, width // 64), ff=4 * width, encoder_layers=0,
                            decoder_layers=layers, max_len=tokens + 200)
    lm = TokenLM(cfg, 1024, prefix_vocab=1024).eval()
    prefix = torch.randint(0, 1024, (1, 100))
    cached = time_generate(lm, tokens, True, prefix)
    uncached = time_generate(lm, tokens, False, prefix)
    return cached / tokens * 1e3, uncached / cached


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tokens", type=int, default=200)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    print(f"{'model':<18} {'ms/step cached':>15} {'uncached / cached':>18}")
    for width, layers in ((32, 2), (256, 4), (256, 6)):
        ms, ratio = cache_speedup(width, layers, args.tokens)
        print(f"{f'{layers} x {width}':<18} {ms:>15.2f} {ratio:>17.1f}x")

    from v2meow.pipeline import V2Meow

    model = V2Meow.from_preset("debug")
    seconds = 2.0
    codes = None
    t = time.perf_counter()
    with torch.no_grad():
        sem = model.semantic.generate({s.name: torch.randn(1, 2, s.dim) for s in model.cfg.semantic.streams},
                                      int(seconds * 25))
        coarse = model.coarse.generate(sem, int(seconds * 50), features={
            s.name: torch.randn(1, 2, s.dim) for s in model.cfg.coarse.streams})
        fine = model.fine.generate(coarse)
        codes = torch.cat([coarse, fine], 1)
        model.decode(codes)
    took = time.perf_counter() - t
    print(f"debug preset: {seconds:.0f} s of audio in {took:.2f} s  (real-time factor {took / seconds:.2f})")


if __name__ == "__main__":
    main()
