"""Generation beyond one window: the plan of windows over the whole video, each after the first prompted with
the tail of the one before (AudioLM-style continuation), time <-> index conversion for the feature streams,
and progress counted over the whole sweep. Pure functions; :class:`v2meow.pipeline.V2Meow` runs the stages.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def plan_windows(total: int, window: int, prompt: int) -> list[tuple[int, int, int]]:
    """Cover ``total`` units with windows of ``window`` units, each after the first prompted with the last
    ``prompt`` units of the one before. Returns ``(start, new_from, end)``: units ``[start, new_from)`` are
    the prompt, ``[new_from, end)`` are generated."""
    if total <= 0:
        return []
    prompt = min(prompt, window - 1)
    out = [(0, 0, min(window, total))]
    while out[-1][2] < total:
        end = out[-1][2]
        start = end - prompt
        out.append((start, end, min(start + window, total)))
    return out


def offset_progress(progress: Callable[[int, int], None] | None, base: int, total: int):
    if progress is None:
        return None
    return lambda done, _n: progress(base + done, total)


def window_features(encoders: list, feats: dict[str, Tensor], names: list[str], t0: float, t1: float) -> dict:
    """Rows of each feature stream in ``names`` covering ``[t0, t1)`` seconds -> ``{name: [1, T, D]}``."""
    out = {}
    for e in encoders:
        if e.name in names:
            a = int(math.floor(t0 * e.rate + 1e-6))
            b = max(a + 1, int(math.ceil(t1 * e.rate - 1e-6)))
            rows = feats[e.name][a:b]
            if rows.shape[0] < b - a:  # the last window may run past the features by a rounding step
                pad = rows[-1:].expand(b - a - rows.shape[0], -1)
                rows = torch.cat([rows, pad])
            out[e.name] = rows[None]
    return out
