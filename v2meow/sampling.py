"""Sampling from logits: pure functions, no model state.

Per-stage default temperatures follow the paper: 1.0 (semantic), 0.95 (coarse), 0.4 (fine).
Randomness comes only from the ``torch.Generator`` passed in, so a seed reproduces a soundtrack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from v2meow.configbase import Config, check

DEFAULT_TEMPERATURE = {"semantic": 1.0, "coarse": 0.95, "fine": 0.4}


@dataclass
class SamplingConfig(Config):
    """How one stage picks its next token. ``temperature == 0`` means greedy."""

    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off

    def validate(self) -> None:
        check(0.0 <= self.temperature <= 10.0, f"temperature must be in [0, 10], got {self.temperature}.")
        check(self.top_k >= 0, f"top_k must be >= 0, got {self.top_k}.")
        check(0.0 < self.top_p <= 1.0, f"top_p must be in (0, 1], got {self.top_p}.")


def apply_top_k(logits: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest logits per row ``[B, V]``; others become -inf."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def apply_top_p(logits: Tensor, p: float) -> Tensor:
    """Nucleus filtering: keep the smallest set of tokens whose probability reaches ``p``."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    # a token is dropped when the mass strictly before it already reaches p (the top token always stays)
    drop_sorted = (probs.cumsum(-1) - probs) >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def guide(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance on logits: ``uncond + scale * (cond - uncond)``; scale 1 returns ``cond``."""
    if scale == 1.0:
        return cond
    return uncond + scale * (cond - uncond)


Generators = torch.Generator | Sequence[torch.Generator]  # one for the batch, or one per row


def sample(logits: Tensor, cfg: SamplingConfig, generator: Generators | None = None) -> Tensor:
    """Draw one token per row of ``logits [B, V]`` -> ``[B]`` (long). Masked logits are -inf.

    ``generator`` may be a sequence of ``B`` generators, one per row: row ``i`` then draws from its own
    generator exactly as a batch of one would, so a row of a batch is the sample its seed gives alone."""
    logits = logits.float()
    if cfg.temperature == 0.0:
        return logits.argmax(-1)
    logits = logits / cfg.temperature
    logits = apply_top_k(logits, cfg.top_k)
    logits = apply_top_p(logits, cfg.top_p)
    probs = logits.softmax(-1)
    rows = probs.shape[0]
    # the uniform numbers come from each generator on its own device (the CPU's for make_generator's) and then go
    # to the logits' device, so a seed draws the same numbers wherever the stages run
    if isinstance(generator, Sequence):
        if len(generator) != rows:
            raise ValueError(f"got {len(generator)} generators for {rows} rows")
        u = torch.cat([torch.rand(1, generator=g, device=g.device) for g in generator])
    else:
        u = torch.rand(rows, generator=generator, device=probs.device if generator is None else generator.device)
    return draw(probs, u.to(probs.device, non_blocking=True))


def draw(probs: Tensor, u: Tensor) -> Tensor:
    """The token of each row of ``probs [B, V]`` at uniform draw ``u [B]`` in [0, 1) by the inverse of its
    cumulative distribution -> ``[B]`` (long); tokens of probability 0 are never drawn.

    One uniform number per row and a binary search: on the CPU a fifth of ``torch.multinomial``'s time for a batch
    of four rows of 1024 tokens, with no host synchronisation on a GPU."""
    cdf = probs.cumsum(-1)
    tok = torch.searchsorted(cdf, (u.to(cdf.dtype) * cdf[:, -1])[:, None], right=True)[:, 0]
    # rounding can put the draw at the very top of the distribution: take the last token that can be drawn
    last = probs.shape[-1] - 1 - (probs > 0).flip(-1).to(torch.uint8).argmax(-1)
    return torch.minimum(tok, last)


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded with ``seed`` (or from fresh entropy when ``None``)."""
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g
