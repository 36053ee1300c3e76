"""The one Transformer every stage uses: encoder, decoder (self + cross attention), decoder-only.

Pre-norm blocks, T5-style bucketed relative position bias (shared by all layers of a stack), a
time-aligned relative bias on cross-attention (a decoder token at time t sees how far each encoder item
is from t on the conditioning clock, so it can attend to what happens *now* in the video),
``scaled_dot_product_attention``, and a preallocated KV cache (see :mod:`v2meow.modules.kv_cache`)
for incremental decoding. Networks take tensors and return tensors; no I/O here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from v2meow.configbase import Config, check
from v2meow.modules.kv_cache import DecoderCache, KVCache


@dataclass
class TransformerConfig(Config):
    """Sizes of one stage's Transformer. ``encoder_layers=0`` makes it decoder-only."""

    width: int = 256
    heads: int = 4
    ff: int = 1024
    encoder_layers: int = 4
    decoder_layers: int = 4
    dropout: float = 0.0
    rel_buckets: int = 32
    rel_max_distance: int = 128
    max_len: int = 4096  # longest decoder sequence the cache is allowed to hold
    # cross-attention bias by time offset between a decoder token and each encoder item (relative position
    # bias alone gives the encoder no absolute time, so without it a decoder cannot tell which moment of
    # the video it is writing music for)
    cross_time_bias: bool = True

    def validate(self) -> None:
        check(1 <= self.width <= 16384, f"width must be in 1..16384, got {self.width}.")
        check(1 <= self.heads <= 256 and self.width % self.heads == 0,
              f"width ({self.width}) must be divisible by heads ({self.heads}).")
        check(1 <= self.ff <= 65536, f"ff must be in 1..65536, got {self.ff}.")
        check(0 <= self.encoder_layers <= 128, f"encoder_layers must be in 0..128, got {self.encoder_layers}.")
        check(1 <= self.decoder_layers <= 128, f"decoder_layers must be in 1..128, got {self.decoder_layers}.")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}.")
        check(2 <= self.rel_buckets <= 1024, f"rel_buckets must be in 2..1024, got {self.rel_buckets}.")
        check(self.rel_max_distance >= self.rel_buckets // 2,
              "rel_max_distance must be at least half of rel_buckets.")
        check(1 <= self.max_len <= 1_000_000, f"max_len must be in 1..1000000, got {self.max_len}.")


def relative_bucket(relative: Tensor, bidirectional: bool, num_buckets: int, max_distance: int) -> Tensor:
    """T5 bucketing of ``relative = key_pos - query_pos``: exact for small distances, log-spaced beyond.

    Returns bucket ids in ``[0, num_buckets)`` with the shape of ``relative``.
    """
    buckets = torch.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative > 0).long() * num_buckets
        n = relative.abs()
    else:
        n = (-relative).clamp(min=0)  # causal: only keys at or before the query matter
    max_exact = max(1, num_buckets // 2)
    is_small = n < max_exact
    # log-spaced buckets for distances in [max_exact, max_distance)
    scaled = torch.log(n.float().clamp(min=1) / max_exact) / math.log(max(max_distance / max_exact, 1.0 + 1e-6))
    large = max_exact + (scaled * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, n, large)


class RelativePositionBias(nn.Module):
    """A learned scalar per (bucket, head), added to attention logits: ``[B|1, H, Lq, Lk]``."""

    def __init__(self, heads: int, num_buckets: int, max_distance: int, bidirectional: bool):
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional
        self.table = nn.Embedding(num_buckets, heads)

    def forward(self, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        """``q_pos [Lq]`` or ``[B, Lq]``, ``k_pos [Lk]`` or ``[B, Lk]`` (integer positions)."""
        if q_pos.dim() == 1:
            q_pos = q_pos[None]
        if k_pos.dim() == 1:
            k_pos = k_pos[None]
        rel = k_pos[:, None, :] - q_pos[:, :, None]  # [B, Lq, Lk]
        b = relative_bucket(rel, self.bidirectional, self.num_buckets, self.max_distance)
        return self.table(b).permute(0, 3, 1, 2)  # [B, H, Lq, Lk]


class Attention(nn.Module):
    """Multi-head attention over ``scaled_dot_product_attention``; self or cross."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.head_dim = width // heads
        self.q = nn.Linear(width, width, bias=False)
        self.kv = nn.Linear(width, 2 * width, bias=False)
        self.o = nn.Linear(width, width, bias=False)
        self.dropout = dropout

    def split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # [B, H, T, hd]

    def project_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def forward(self, x: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None) -> Tensor:
        """``x [B, Lq, D]`` queries; ``k, v [B, H, Lk, hd]``; ``attn_mask`` additive ``[B|1, H|1, Lq, Lk]``."""
        q = self.split(self.q(x))
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # [B, H, Lq, hd]
        b, _, t, _ = y.shape
        return self.o(y.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    def __init__(self, width: int, ff: int, dropout: float):
        super().__init__()
        self.up = nn.Linear(width, ff)
        self.down = nn.Linear(ff, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.down(F.gelu(self.up(x))))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width)
        self.attn = Attention(cfg.width, cfg.heads, cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.width)
        self.ff = FeedForward(cfg.width, cfg.ff, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, attn_mask: Tensor) -> Tensor:
        h = self.norm1(x)
        k, v = self.attn.project_kv(h)
        x = x + self.drop(self.attn(h, k, v, attn_mask))
        return x + self.ff(self.norm2(x))


def padding_mask_to_additive(valid: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """``valid [B, Lk]`` (True = attend) to an additive mask ``[B, 1, 1, Lk]``."""
    if valid is None:
        return None
    neg = torch.finfo(dtype).min
    return torch.zeros(valid.shape, dtype=dtype, device=valid.device).masked_fill(~valid, neg)[:, None, None, :]


class Encoder(nn.Module):
    """Bidirectional pre-norm Transformer encoder with relative position bias."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.bias = RelativePositionBias(cfg.heads, cfg.rel_buckets, cfg.rel_max_distance, bidirectional=True)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.encoder_layers))
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, x: Tensor, positions: Tensor, valid: Tensor | None = None) -> Tensor:
        """``x [B, S, D]``, ``positions [B, S]`` or ``[S]`` (ints), ``valid [B, S]`` -> ``[B, S, D]``."""
        mask = self.bias(positions, positions).to(x.dtype)
        pad = padding_mask_to_additive(valid, x.dtype)
        if pad is not None:
            mask = mask + pad
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig, cross: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width)
        self.self_attn = Attention(cfg.width, cfg.heads, cfg.dropout)
        self.cross = cross
        if cross:
            self.norm_x = nn.LayerNorm(cfg.width)
            self.cross_attn = Attention(cfg.width, cfg.heads, cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.width)
        self.ff = FeedForward(cfg.width, cfg.ff, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: Tensor,
        self_mask: Tensor,
        self_cache: KVCache | None,
        input_pos: int,
        cross_kv: tuple[Tensor, Tensor] | None,
        cross_mask: Tensor | None,
    ) -> Tensor:
        h = self.norm1(x)
        k, v = self.self_attn.project_kv(h)
        if self_cache is not None:
            k, v = self_cache.update(input_pos, k, v)
        x = x + self.drop(self.self_attn(h, k, v, self_mask))
        if self.cross:
            assert cross_kv is not None, "a cross-attention decoder needs encoder memory"
            x = x + self.drop(self.cross_attn(self.norm_x(x), cross_kv[0], cross_kv[1], cross_mask))
        return x + self.ff(self.norm2(x))


class Decoder(nn.Module):
    """Causal pre-norm Transformer decoder; with ``cross=True`` it attends to encoder memory.

    Full-sequence use (training): ``forward(x, memory)``. Incremental use (generation): make a cache
    with :meth:`new_cache`, then call ``forward(x_step, cache=cache, input_pos=p)`` for consecutive
    chunks; the cache holds self-attention keys/values and the memory's projected keys/values.
    """

    def __init__(self, cfg: TransformerConfig, cross: bool):
        super().__init__()
        self.cfg = cfg
        self.cross = cross
        self.bias = RelativePositionBias(cfg.heads, cfg.rel_buckets, cfg.rel_max_distance, bidirectional=False)
        self.cross_bias = (
            RelativePositionBias(cfg.heads, cfg.rel_buckets, cfg.rel_max_distance, bidirectional=True)
            if cross and cfg.cross_time_bias else None
        )
        self.layers = nn.ModuleList(DecoderLayer(cfg, cross) for _ in range(cfg.decoder_layers))
        self.norm = nn.LayerNorm(cfg.width)

    def cross_time_mask(self, query_pos: Tensor | None, memory_pos: Tensor | None, dtype: torch.dtype) -> Tensor | None:
        """Additive ``[B|1, H, Lq, S]`` bias from the time offset between queries and memory items.

        ``query_pos [Lq]``: each query's position on the conditioning clock; ``memory_pos [B, S]``: the memory's
        (negative = untimed, e.g. the joint embedding: no bias). None when the decoder has no time bias or no
        positions are given."""
        if self.cross_bias is None or query_pos is None or memory_pos is None:
            return None
        bias = self.cross_bias(query_pos, memory_pos.clamp(min=0)).to(dtype)  # [B, H, Lq, S]
        return bias * (memory_pos >= 0)[:, None, None, :].to(dtype)

    def cross_kv(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        return [layer.cross_attn.project_kv(memory) for layer in self.layers]

    def new_cache(
        self, batch: int, max_len: int, memory: Tensor | None = None, memory_valid: Tensor | None = None,
        memory_pos: Tensor | None = None,
    ) -> DecoderCache:
        """Preallocate a cache for ``max_len`` positions; project ``memory [B, S, D]`` once."""
        if max_len > self.cfg.max_len:
            raise ValueError(f"sequence of {max_len} tokens exceeds the model's max_len {self.cfg.max_len}")
        p = next(self.parameters())
        hd = self.cfg.width // self.cfg.heads
        caches = [KVCache(batch, self.cfg.heads, max_len, hd, p.dtype, p.device) for _ in self.layers]
        # contiguous copies: a one-query step reads them whole at every step, and scaled_dot_product_attention
        # reads the projection's [B, H, S, hd] view of a [B, S, H, hd] tensor a quarter slower (stage 2, 4 rows)
        cross = ([(k.contiguous(), v.contiguous()) for k, v in self.cross_kv(memory)]
                 if (self.cross and memory is not None) else None)
        cross_mask = padding_mask_to_additive(memory_valid, p.dtype) if memory_valid is not None else None
        distance = torch.arange(max_len - 1, -1, -1, device=p.device)  # column j: a key max_len-1-j back
        self_bias = self.bias(distance.new_zeros(1), -distance)[0, :, 0].to(p.dtype)  # [H, max_len]
        return DecoderCache(caches, cross, cross_mask, memory_pos, self_bias)

    def self_mask(self, q_start: int, q_len: int, k_len: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Relative bias plus the causal mask for queries ``q_start..q_start+q_len-1`` over keys ``0..k_len-1``."""
        q_pos = torch.arange(q_start, q_start + q_len, device=device)
        k_pos = torch.arange(k_len, device=device)
        bias = self.bias(q_pos, k_pos).to(dtype)  # [1, H, Lq, Lk]
        causal = k_pos[None, :] > q_pos[:, None]
        return bias.masked_fill(causal[None, None], torch.finfo(dtype).min)

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None = None,
        memory_valid: Tensor | None = None,
        cache: DecoderCache | None = None,
        input_pos: int = 0,
        memory_pos: Tensor | None = None,
        query_pos: Tensor | None = None,
        time_mask: Tensor | None = None,
    ) -> Tensor:
        """``x [B, L, D]`` -> ``[B, L, D]``. Without a cache ``input_pos`` must be 0.

        ``memory_pos [B, S]`` (or the cache's) and ``query_pos [L]`` (this call's queries, on the same clock)
        switch on the time-aligned cross-attention bias; ``time_mask`` is that bias already computed
        (:meth:`cross_time_mask`), for callers that compute it for many steps at once."""
        L = x.shape[1]
        if cache is None:
            if input_pos != 0:
                raise ValueError("input_pos needs a cache")
            mask = self.self_mask(0, L, L, x.device, x.dtype)
            cross = self.cross_kv(memory) if (self.cross and memory is not None) else None
            cross_mask = padding_mask_to_additive(memory_valid, x.dtype)
        else:
            if L == 1 and cache.self_bias is not None:  # one query sees every key so far: no causal mask
                n = cache.self_bias.shape[1]
                mask = cache.self_bias[None, :, None, n - 1 - input_pos:].to(x.dtype)
            else:
                mask = self.self_mask(input_pos, L, input_pos + L, x.device, x.dtype)
            cross, cross_mask, memory_pos = cache.cross, cache.cross_mask, cache.memory_pos
        if self.cross and cross is None:
            raise ValueError("this decoder attends to encoder memory; pass memory or a cache built with it")
        if time_mask is None:
            time_mask = self.cross_time_mask(query_pos, memory_pos, x.dtype)
        if time_mask is not None:
            cross_mask = time_mask if cross_mask is None else time_mask + cross_mask
        for i, layer in enumerate(self.layers):
            x = layer(
                x,
                mask,
                cache.layers[i] if cache is not None else None,
                input_pos,
                cross[i] if cross is not None else None,
                cross_mask,
            )
        return self.norm(x)
