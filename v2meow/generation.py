"""Generation beyond one window: the plan of windows over the whole video, each after the first prompted with
the tail of the one before (AudioLM-style continuation), time <-> index conversion for the feature streams
(through :mod:`v2meow.timebase`, as everywhere), progress counted over the whole sweep, and the seeds of best-of-N
candidates. The sweeps that run each stage over the whole length with a :class:`v2meow.pipeline.V2Meow`, the
chunked codec decode, and the checks of ``--start`` / ``--seconds``.
"""

from __future__ import annotations

import math
import operator
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from v2meow.errors import UserError
from v2meow.timebase import index_at, units_in

SECONDS_SLACK = 0.05  # --seconds may exceed the video's length by this much (a length read off a player, rounded)
MAX_CANDIDATES = 16  # soundtracks sampled together for best-of-N (memory grows with each)
MAX_GUIDANCE = 20.0  # the largest classifier-free guidance scale a prompt may ask for
MAX_DRUM_REDRAWS = 16  # how often one candidate's stage-1 window of drums alone may be drawn again
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


def offset_progress(progress: Callable[[int, int], None] | None, base: int, total: int, span: int | None = None):
    """A window's ``(done, n)`` reports as ``(base + done, total)`` of the whole sweep; with ``span``, the
    window's ``n`` steps count as ``span`` units of ``total`` (a delay layout's pad steps are not frames)."""
    if progress is None:
        return None
    if span is None:
        return lambda done, _n: progress(base + done, total)
    return lambda done, n: progress(base + min(span, done * span // max(n, 1)), total)


def window_features(encoders: list, feats: dict[str, Tensor], names: list[str], t0: float, t1: float) -> dict:
    """Rows of each feature stream in ``names`` covering ``[t0, t1)`` seconds -> ``{name: [1, T, D]}``."""
    out = {}
    for e in encoders:
        if e.name in names:
            a = index_at(t0, e.rate)
            b = max(a + 1, units_in(t1, e.rate))
            rows = feats[e.name][a:b]
            if rows.shape[0] < b - a:  # past the features' end (a rounding step, or a fit's margin): the last held
                pad = feats[e.name][-1:].expand(b - a - rows.shape[0], -1)
                rows = torch.cat([rows, pad])
            out[e.name] = rows[None]
    return out


def sweep_semantic(model, feats, seconds, joint, guidance, gens, progress, redraws: int | None = None) -> Tensor:
    """Semantic tokens ``[B, T_s]``, one row per generator in ``gens`` (the candidates, in one batch); ``redraws``
    (default ``generation.drum_redraws``): how often a candidate's window of drums alone is drawn again."""
    rate = model.cfg.semantic.token_rate
    total = units_in(seconds, rate)
    windows = plan_windows(total, model.cfg.semantic.window_tokens, prompt_units(model.cfg, rate))
    names = [s.name for s in model.cfg.semantic.streams]
    rows = len(gens)
    out = torch.zeros(rows, total, dtype=torch.long)
    joint = None if joint is None else joint.expand(rows, -1)
    g = model.cfg.generation
    drums = torch.tensor(sorted(g.drum_tokens), dtype=torch.long)
    redraws = g.drum_redraws if redraws is None else redraws
    done = 0
    for a, pe, b in windows:
        f = _rows(window_features(model.encoders, feats, names, a / rate, b / rate), rows)

        def draw(keep: list[int], report=None) -> Tensor:
            rows_f = f if len(keep) == rows else {k: v[keep] for k, v in f.items()}
            return model.semantic.generate(
                rows_f, b - pe, joint=None if joint is None else joint[keep],
                prompt=out[keep, a:pe] if pe > a else None, guidance=guidance,
                generator=[gens[i] for i in keep], progress=report,
            ).cpu()  # from where the stage runs (V2Meow.place)

        tok = draw(list(range(rows)), offset_progress(progress, done, total))
        if len(drums) and redraws and (pe > a or g.drum_redraw_opening):  # pe > a: a window that continues one
            tok = redraw_drums(tok, drums, g.drum_share, redraws, draw)
        out[:, pe:b] = tok
        done += b - pe
    return out


def drum_share(tok: Tensor, drums: Tensor) -> Tensor:
    """The share of each row of ``tok [B, T]`` that is among the semantic tokens ``drums`` (drums alone) -> ``[B]``."""
    return torch.isin(tok, drums).float().mean(dim=1)


def redraw_drums(tok: Tensor, drums: Tensor, share: float, redraws: int, draw: Callable[[list[int]], Tensor]) -> Tensor:
    """``tok [B, T]`` (a window's new semantic tokens) with each row whose :func:`drum_share` is at least ``share``
    drawn again by ``draw(rows)`` (those rows, from their own generators), up to ``redraws`` times; each row keeps
    its draw with the smallest share."""
    tok = tok.clone()
    best = drum_share(tok, drums)
    for _ in range(redraws):
        again = [i for i in range(tok.shape[0]) if best[i] >= share]
        if not again:
            break
        new = draw(again)
        s = drum_share(new, drums)
        for j, i in enumerate(again):
            if s[j] < best[i]:
                tok[i], best[i] = new[j], s[j]
    return tok


def sweep_coarse(model, feats, semantic, seconds, gens, progress) -> Tensor:
    """Coarse codes ``[B, N_c, T_a]`` for ``semantic [B, T_s]``, one row per generator in ``gens``."""
    rate, s_rate = model.cfg.coarse.frame_rate, model.cfg.semantic.token_rate
    total = units_in(seconds, rate)
    windows = plan_windows(total, model.cfg.coarse.window_frames, prompt_units(model.cfg, rate))
    names = [s.name for s in model.cfg.coarse.streams]
    rows = len(gens)
    out = torch.zeros(rows, model.cfg.coarse.levels, total, dtype=torch.long)
    steps_total, done = total * model.cfg.coarse.levels, 0
    for a, pe, b in windows:
        t0, t1 = a / rate, b / rate
        sa = index_at(t0, s_rate)
        sb = min(semantic.shape[1], max(sa + 1, units_in(t1, s_rate)))
        codes = model.coarse.generate(
            semantic[:, sa:sb], b - pe, features=_rows(window_features(model.encoders, feats, names, t0, t1), rows),
            prompt_codes=out[:, :, a:pe] if pe > a else None, generator=gens,
            progress=offset_progress(progress, done, steps_total, (b - pe) * model.cfg.coarse.levels),
        )
        out[:, :, pe:b] = codes
        done += (b - pe) * model.cfg.coarse.levels
    return out


_THREADS_LOCK = threading.Lock()
_threads_held = [0, 0]  # blocks inside step_threads now, and torch's setting before the first of them


@contextmanager
def step_threads(n: int) -> Iterator[None]:
    """Within the block, torch's intra-op threads are at most ``n`` (0: as they are). The setting is the process's:
    blocks that overlap (the web server's concurrent generations) share it, and the last one out restores what
    torch had before the first came in."""
    if n <= 0:
        yield
        return
    with _THREADS_LOCK:
        if _threads_held[0] == 0:
            _threads_held[1] = torch.get_num_threads()
        _threads_held[0] += 1
        if n < torch.get_num_threads():
            torch.set_num_threads(n)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_held[0] -= 1
            if _threads_held[0] == 0 and torch.get_num_threads() != _threads_held[1]:
                torch.set_num_threads(_threads_held[1])


def prompt_units(cfg, rate: float, fine: bool = False) -> int:
    """Units at ``rate`` per second of the prompt each window after the first continues from."""
    g = cfg.generation
    return int(round((g.fine_prompt_seconds if fine else g.prompt_seconds) * rate))


def decode_chunks(model, codes: Tensor, progress: Callable[[int, int], None] | None = None) -> Tensor:
    """Codec decode of ``codes [B, N_q, T_a]`` -> ``[B, T_a * hop]`` in chunks with context on both sides,
    so memory stays flat with length."""
    g = model.cfg.generation
    rate = model.cfg.codec.frame_rate
    chunk = max(1, int(round(g.decode_chunk_seconds * rate)))
    codes = codes.to(next(model.codec.parameters(), codes).device)  # where the codec runs (V2Meow.place)
    return model.codec.decode_windows(codes, chunk, int(round(g.decode_margin_seconds * rate)), progress)


def check_start(cfg, start: float, duration: float) -> float:
    """``start`` (seconds) as a float when it falls inside the video, else a :class:`UserError`."""
    try:
        start = float(start)
    except (TypeError, ValueError):
        raise UserError(f"--start must be a number of seconds, got {start!r}.") from None
    if not math.isfinite(start) or start < 0:
        raise UserError(f"--start must be 0 or more seconds, got {start:g}.")
    if start > 0 and start >= duration - 1.0 / cfg.codec.frame_rate:
        raise UserError(f"--start {start:g} is at or past the end of the video ({duration:.2f} s).")
    return start


def check_seconds(cfg, seconds: float | None, duration: float, start: float = 0.0) -> float:
    """The length to generate: ``seconds`` (at most the configured maximum) or the length of the video
    (``duration``: what is left of it after ``start``)."""
    limit = cfg.generation.max_seconds
    rest = f"the rest of the video after --start {start:g}" if start > 0 else "the video"
    if seconds is None:
        seconds = duration
        if seconds > limit:
            raise UserError(f"{rest[0].upper()}{rest[1:]} lasts {duration:g} s; this model writes at most "
                            f"{limit:g} s per call (pass --seconds to score part of it).")
    elif not math.isfinite(seconds) or seconds <= 0:
        raise UserError(f"--seconds must be a positive number, got {seconds}.")
    elif seconds > limit:
        raise UserError(f"--seconds {seconds:g} is more than this model's limit of {limit:g} s.")
    elif seconds > duration + SECONDS_SLACK:
        raise UserError(f"--seconds {seconds:g} is longer than {rest} ({duration:.2f} s); leave it out to "
                        f"score all of {rest}.")
    if seconds < 1.0 / cfg.codec.frame_rate:
        raise UserError(f"The video is too short ({duration:.3f} s) to write a soundtrack for.")
    return float(seconds)


def _rows(features: dict[str, Tensor], rows: int) -> dict[str, Tensor]:
    """Feature windows ``{name: [1, T, D]}`` repeated for ``rows`` candidates -> ``[rows, T, D]``."""
    return features if rows == 1 else {k: v.expand(rows, -1, -1) for k, v in features.items()}
