"""What every trainer (stages, tokenizers, joint model) shares: the warmup + cosine learning-rate schedule, the
per-step random numbers (a numpy generator and a torch reseed, both from the seed and the step, so a resumed run
continues exactly as an uninterrupted one), the JSON-lines log (and TensorBoard scalars when asked for and
installed), and resuming: the latest checkpoint of a run, refused in one sentence when it trains something else.

The trainers came to seed their steps in different orders; each keeps its own (named below), so the runs each
wrote before resume bit-exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v2meow.errors import UserError
from v2meow.train.checkpoint import latest_checkpoint, load_checkpoint

# ---- learning rate ----------------------------------------------------------------------------------------------


def warmup_cosine(step: int, lr: float, warmup: int, max_steps: int, min_ratio: float) -> float:
    """Linear warmup to ``lr`` over ``warmup`` steps, then cosine decay to ``lr * min_ratio`` at ``max_steps``."""
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def lr_at(step: int, cfg: Any) -> float:
    """:func:`warmup_cosine` with a config's ``lr``, ``warmup_steps``, ``max_steps`` and ``min_lr_ratio``."""
    return warmup_cosine(step, cfg.lr, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)


# ---- step randomness --------------------------------------------------------------------------------------------

# numpy generator seeding orders: the tokenizer trainers seed with [seed, stream, step], the joint trainer with
# [seed, step, stream]
STREAM_STEP = "stream-step"
STEP_STREAM = "step-stream"

# torch reseeding schemes: "affine" (tokenizer trainers), "sha256" (joint trainer), "hash" (stage trainer: one
# seed per step, micro-batch and rank)
TORCH_SCHEMES = ("affine", "sha256", "hash")


def step_rng(seed: int, step: int, stream: int = 0, *, order: str) -> np.random.Generator:
    """The numpy generator of ``(seed, step, stream)``, seeded in the trainer's ``order``."""
    if order == STREAM_STEP:
        return np.random.default_rng([seed, stream, step])
    if order == STEP_STREAM:
        return np.random.default_rng([seed, step, stream])
    raise ValueError(f"order must be {STREAM_STEP!r} or {STEP_STREAM!r}, got {order!r}.")


def torch_seed(seed: int, step: int, *, scheme: str, micro: int = 0, rank: int = 0) -> int:
    """The torch seed of a step (and, for ``scheme="hash"``, of its micro-batch and rank)."""
    if scheme == "affine":
        return (seed * 1_000_003 + step) % (2**63)
    if scheme == "sha256":
        return int.from_bytes(hashlib.sha256(f"{seed}:{step}".encode()).digest()[:7], "little")
    if scheme == "hash":
        return hash((seed, step, micro, rank)) % (2**63)
    raise ValueError(f"scheme must be one of {TORCH_SCHEMES}, got {scheme!r}.")


def reseed(seed: int, step: int, *, scheme: str, micro: int = 0, rank: int = 0) -> None:
    """Reseed torch so that every random draw of a step (dropout, masks, quantiser dropout, k-means restarts)
    follows from the seed and the step alone."""
    torch.manual_seed(torch_seed(seed, step, scheme=scheme, micro=micro, rank=rank))


# ---- logging ----------------------------------------------------------------------------------------------------


class JsonlLog:
    """Appends records to ``run_dir/log.jsonl``; with ``tb_prefix``, numbers also go to TensorBoard in
    ``run_dir/tb`` (as ``{tb_prefix}/{key}`` at the record's step) when it is installed. A disabled log (e.g. on
    ranks other than 0) writes nothing."""

    def __init__(self, run_dir: str | os.PathLike, tb_prefix: str | None = None, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "log.jsonl"
        self.tb_prefix = tb_prefix
        self.enabled = enabled
        self._tb: Any = None if tb_prefix is not None else False

    def __call__(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tb"))
            except Exception:  # tensorboard is optional
                self._tb = False
        if self._tb:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self._tb.add_scalar(f"{self.tb_prefix}/{k}", v, record["step"])

    def close(self) -> None:
        if self._tb:
            self._tb.close()


# ---- resuming ---------------------------------------------------------------------------------------------------


def latest_of_kind(run_dir: str | os.PathLike, kind: Any = None, *, field: str = "kind", refusal: str = "",
                   same: Mapping[str, tuple[tuple[str, ...], Any]] | None = None,
                   missing: str | None = None) -> dict[str, Any] | None:
    """The latest checkpoint of ``run_dir`` (as :func:`load_checkpoint` returns it), or None when it has none
    (or a UserError saying ``missing``, when given).

    A checkpoint whose state's ``field`` is not ``kind`` (``kind=None``: any) is refused with the one sentence
    ``refusal`` (formatted with ``run`` and ``found``, the state's value). ``same`` names the parts of the config
    that must not have changed since the run started: name -> (their keys in the saved state, the current value).
    """
    path = latest_checkpoint(run_dir)
    if path is None:
        if missing is not None:
            raise UserError(missing)
        return None
    ck = load_checkpoint(path)
    st = ck["state"]
    if kind is not None and st.get(field) != kind:
        raise UserError(refusal.format(run=run_dir, found=st.get(field)))
    for name, (keys, current) in (same or {}).items():
        saved = st
        for key in keys[:-1]:
            saved = saved.get(key, {})
        if saved.get(keys[-1]) != current:
            raise UserError(f"Run {run_dir} was started with another {name} config; use a new run directory.")
    return ck
