"""Generation beyond one window: the plan of windows over the whole video, each after the first prompted with
the tail of the one before (AudioLM-style continuation), time <-> index conversion for the feature streams,
progress counted over the whole sweep, and the seeds of best-of-N candidates. Pure functions;
:class:`v2meow.pipeline.V2Meow` runs the stages.
"""

from __future__ import annotations

import math
import operator
import secrets
from collections.abc import Callable

import torch
from torch import Tensor

from v2meow.errors import UserError

MAX_CANDIDATES = 16  # soundtracks sampled together for best-of-N (memory grows with each)
SEED_LIMIT = 2**63


def candidate_seeds(seed: int | None, candidates: int) -> list[int]:
    """The seeds of ``candidates`` soundtracks: candidate ``i`` (from 0) uses ``seed + i``, so
    ``--seed S --candidates N`` samples what ``--seed S``, ``--seed S+1``, ... ``--seed S+N-1`` sample alone.
    Without a seed, ``seed`` is drawn at random (and reported, so the kept candidate can be made again)."""
    if isinstance(candidates, bool) or not isinstance(candidates, int) or not 1 <= candidates <= MAX_CANDIDATES:
        raise UserError(f"--candidates must be a whole number from 1 to {MAX_CANDIDATES}, got {candidates}.")
    if seed is None:
        seed = secrets.randbelow(SEED_LIMIT - MAX_CANDIDATES)
    try:
        seed = operator.index(seed)
    except TypeError:
        raise UserError(f"The seed must be a whole number, got {seed!r}.") from None
    if not 0 <= seed <= SEED_LIMIT - candidates:
        raise UserError(f"--seed must be a whole number from 0 to 2^63-{candidates} with {candidates} "
                        f"candidate(s) (candidate i uses seed + i), got {seed}.")
    return [seed + i for i in range(candidates)]


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
