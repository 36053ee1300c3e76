"""Preallocated key/value caches for incremental decoding.

The caller owns the cache: it is built once per generation (``Decoder.new_cache``), written at explicit
positions, and reset or dropped by the caller. Nothing is threaded through return values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


class KVCache:
    """Keys and values of one self-attention layer: ``[B, H, max_len, hd]`` each, filled up to ``length``."""

    def __init__(self, batch: int, heads: int, max_len: int, head_dim: int, dtype: torch.dtype, device):
        self.k = torch.zeros(batch, heads, max_len, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    def update(self, input_pos: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write ``k, v [B, H, L, hd]`` at ``input_pos``; return all keys/values up to ``input_pos + L``."""
        end = input_pos + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache of {self.max_len} positions cannot hold position {end - 1}")
        if input_pos > self.length:
            raise ValueError(f"KV cache written at {input_pos} but only {self.length} positions are filled")
        self.k[:, :, input_pos:end] = k
        self.v[:, :, input_pos:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def reset(self) -> None:
        self.length = 0

    def reorder(self, index: Tensor) -> None:
        """Keep batch rows ``index`` (e.g. for classifier-free guidance bookkeeping)."""
        self.k = self.k.index_select(0, index)
        self.v = self.v.index_select(0, index)


@dataclass
class DecoderCache:
    """All caches of one decoder stack: self-attention per layer, and the memory's keys/values."""

    layers: list[KVCache]
    cross: list[tuple[Tensor, Tensor]] | None
    cross_mask: Tensor | None
    memory_pos: Tensor | None = None  # [B, S] the memory's positions on the conditioning clock (< 0: untimed)
    # the self-attention bias of a key d positions before its query, at [:, max_len - 1 - d] ([H, max_len]):
    # a one-query step reads its row as a slice instead of bucketing every key again
    self_bias: Tensor | None = None

    @property
    def length(self) -> int:
        return self.layers[0].length if self.layers else 0

    def reset(self) -> None:
        for c in self.layers:
            c.reset()
