"""Residual vector quantisation (SoundStream): N codebooks, each quantising what the previous ones left.

Training features, each switched by :class:`RVQConfig`:

- k-means initialisation of each level's codebook from the first training batch that reaches it;
- EMA codebook updates with Laplace smoothing (codebooks are then buffers, not trained by gradient);
- dead-code restart: a code whose EMA usage falls below a threshold is moved onto a random current residual;
- quantiser dropout: a training batch sometimes uses only the first ``n ~ U{1..N}`` levels, so the first
  levels learn to carry the coarse content (what makes the coarse/fine split of AudioLM work).

Under DDP (torch.distributed initialised) the EMA statistics are all-reduced and the random parts (level
count, k-means initialisation, restarts) are taken from rank 0, so every rank keeps identical codebooks.
All state is float tensors, so a state_dict goes through safetensors as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from v2meow.configbase import Config, check, config_property

__all__ = ["RVQConfig", "ResidualVQ", "kmeans_torch"]


@dataclass
class RVQConfig(Config):
    """Residual VQ: ``num_levels`` codebooks of ``codebook_size`` codes of dimension ``dim``."""

    num_levels: int = 8
    codebook_size: int = 1024
    dim: int = 128
    ema: bool = True  # EMA codebooks (buffers); False: codebooks are parameters trained by a codebook loss
    decay: float = 0.99  # EMA decay of code usage and code sums
    epsilon: float = 1e-5  # Laplace smoothing of the EMA usage counts
    kmeans_init: bool = True
    kmeans_iters: int = 10
    # EMA usage (vectors per batch) below which a code is restarted; 0 turns restarts off. A batch has
    # B*T vectors, so a code of a uniformly used codebook sees B*T/K of them: keep the threshold well below.
    dead_code_threshold: float = 1.0
    # Probability that a training batch uses a random number U{1..N} of levels instead of all N.
    quantizer_dropout: float = 0.5

    def validate(self) -> None:
        check(self.num_levels >= 1, f"RVQ num_levels must be >= 1, got {self.num_levels}.")
        check(self.codebook_size >= 2, f"RVQ codebook_size must be >= 2, got {self.codebook_size}.")
        check(self.dim >= 1, f"RVQ dim must be >= 1, got {self.dim}.")
        check(0.0 < self.decay < 1.0, f"RVQ decay must be in (0, 1), got {self.decay}.")
        check(self.epsilon > 0.0, f"RVQ epsilon must be > 0, got {self.epsilon}.")
        check(self.kmeans_iters >= 0, f"RVQ kmeans_iters must be >= 0, got {self.kmeans_iters}.")
        check(self.dead_code_threshold >= 0.0, "RVQ dead_code_threshold must be >= 0.")
        check(0.0 <= self.quantizer_dropout <= 1.0, "RVQ quantizer_dropout must be a probability in [0, 1].")

    @classmethod
    def debug(cls) -> RVQConfig:
        """Tiny preset for tests (the quantiser of ``SoundStreamConfig.debug()``)."""
        return cls(num_levels=4, codebook_size=64, dim=16, dead_code_threshold=0.1)


# ---- distributed helpers (no-ops unless torch.distributed is initialised) -------------------------------


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _all_reduce_sum(t: Tensor) -> Tensor:
    if _distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _broadcast_from_rank0(t: Tensor) -> Tensor:
    if _distributed():
        dist.broadcast(t, src=0)
    return t


# ---- plain k-means, used for codebook initialisation ----------------------------------------------------


def _sq_distances(x: Tensor, c: Tensor) -> Tensor:
    """Squared Euclidean distances ``[M, K]`` between rows of ``x [M, D]`` and ``c [K, D]``."""
    return x.pow(2).sum(1, keepdim=True) - 2.0 * (x @ c.t()) + c.pow(2).sum(1)[None, :]


def _sample_rows(x: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` random rows of ``x [M, D]`` (with replacement only when ``M < n``)."""
    m = x.shape[0]
    if m >= n:
        idx = torch.randperm(m, device=x.device, generator=generator)[:n]
    else:
        idx = torch.randint(0, m, (n,), device=x.device, generator=generator)
    return x[idx]


def kmeans_torch(x: Tensor, k: int, iters: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on ``x [M, D]`` → (centroids ``[K, D]``, counts ``[K]``). Empty clusters keep their seed."""
    centroids = _sample_rows(x, k, generator).clone()
    counts = torch.zeros(k, device=x.device, dtype=x.dtype)
    for _ in range(max(iters, 1)):
        assign = _sq_distances(x, centroids).argmin(1)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        nonempty = counts > 0
        centroids[nonempty] = sums[nonempty] / counts[nonempty, None]
    return centroids, counts


class ResidualVQ(nn.Module):
    """Residual vector quantiser.

    State (all float, shape-stable, saved in the state_dict):
      ``embed [N, K, D]`` codebooks (a buffer with EMA, a parameter without),
      ``cluster_size [N, K]`` EMA usage, ``embed_sum [N, K, D]`` EMA code sums,
      ``initialized [N]`` 1.0 once a level's codebook was set from data (or when k-means init is off).
    """

    def __init__(self, config: RVQConfig) -> None:
        super().__init__()
        self.config = config
        n, k, d = config.num_levels, config.codebook_size, config.dim
        embed = torch.randn(n, k, d) / d**0.5
        if config.ema:
            self.register_buffer("embed", embed)
        else:
            self.embed = nn.Parameter(embed)
        # Usage 1 and sum = code keep embed == embed_sum / cluster_size from the start, so the first EMA
        # update moves a random (not k-means initialised) code smoothly instead of dividing by ~0.
        self.register_buffer("cluster_size", torch.ones(n, k))
        self.register_buffer("embed_sum", embed.clone())
        self.register_buffer("initialized", torch.full((n,), 0.0 if config.kmeans_init else 1.0))

    num_levels = config_property("num_levels")
    codebook_size = config_property("codebook_size")
    dim = config_property("dim")

    def _check_levels(self, n_levels: int | None) -> int:
        n = self.num_levels if n_levels is None else int(n_levels)
        if not 1 <= n <= self.num_levels:
            raise ValueError(f"n_levels must be in [1, {self.num_levels}], got {n_levels}.")
        return n

    def _training_levels(self) -> int:
        """Level count for a training batch: all, or with probability ``quantizer_dropout`` U{1..N}."""
        n = self.num_levels
        if self.config.quantizer_dropout > 0 and torch.rand(()).item() < self.config.quantizer_dropout:
            n = int(torch.randint(1, self.num_levels + 1, ()).item())
        if _distributed():  # every rank must run the same levels, or the all-reduces below would not pair up
            t = torch.tensor([n], device=self.embed.device, dtype=torch.float32)
            n = int(_broadcast_from_rank0(t).item())
        return n

    # ---- public API -----------------------------------------------------------------------------------

    def forward(self, x: Tensor, n_levels: int | None = None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Quantise ``x [B, D, T]`` → (quantized ``[B, D, T]``, codes ``[B, n, T]``, losses).

        In training mode, ``n_levels=None`` applies quantiser dropout, the codebooks are initialised/updated,
        and the output passes gradients straight through to ``x``. ``losses["commitment"]`` is the sum over
        the used levels of the MSE between each residual and its (detached) code; ``losses["codebook"]`` is
        the matching codebook loss when codebooks are trained by gradient (zero with EMA).
        """
        if n_levels is None:
            n = self._training_levels() if self.training else self.num_levels
        else:
            n = self._check_levels(n_levels)
        return self._quantize(x, n, update=self.training)

    @torch.no_grad()
    def encode(self, x: Tensor, n_levels: int | None = None) -> Tensor:
        """``x [B, D, T]`` → codes ``[B, n, T]`` (first ``n`` levels, all by default). Never changes state."""
        return self._quantize(x, self._check_levels(n_levels), update=False)[1]

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, n, T]`` of the first ``n <= N`` levels → quantized vectors ``[B, D, T]``."""
        if codes.dim() != 3:
            raise ValueError(f"codes must be [B, n, T], got shape {tuple(codes.shape)}.")
        n = self._check_levels(codes.shape[1])
        codes = codes.long()
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}).")
        b, _, t = codes.shape
        out = torch.zeros(b, t, self.dim, device=codes.device, dtype=self.embed.dtype)
        for level in range(n):
            out = out + F.embedding(codes[:, level], self.embed[level])  # [B, T, D]
        return out.transpose(1, 2)

    # ---- internals ------------------------------------------------------------------------------------

    def _quantize(self, x: Tensor, n: int, update: bool) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        if x.dim() != 3 or x.shape[1] != self.dim:
            raise ValueError(f"x must be [B, {self.dim}, T], got shape {tuple(x.shape)}.")
        b, d, t = x.shape
        in_dtype = x.dtype
        # Distances and EMA sums in float32 even under autocast: bf16 argmins are noisy.
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat = x.float().transpose(1, 2).reshape(-1, d)  # [B*T, D]
            residual = flat
            quantized = torch.zeros_like(flat)
            codes = []
            commitment = flat.new_zeros(())
            codebook_loss = flat.new_zeros(())
            for level in range(n):
                if update and self.initialized[level] < 0.5:
                    self._init_level(level, residual.detach())
                codebook = self.embed[level]  # [K, D]
                with torch.no_grad():
                    idx = _sq_distances(residual.detach(), codebook.detach()).argmin(1)  # [B*T]
                q = F.embedding(idx, codebook)  # [B*T, D]; carries a gradient into a non-EMA codebook
                commitment = commitment + F.mse_loss(residual, q.detach())
                if not self.config.ema:
                    codebook_loss = codebook_loss + F.mse_loss(q, residual.detach())
                if update:
                    self._update_level(level, residual.detach(), idx)
                quantized = quantized + q.detach()
                # The next level sees what this one left; gradients reach the codebook only via its loss.
                residual = residual - q.detach()
                codes.append(idx.view(b, t))
            # Straight-through: forward value is the quantisation, gradient to x is the identity.
            out = (flat + (quantized - flat).detach()).view(b, t, d).transpose(1, 2).to(in_dtype)
        return out, torch.stack(codes, dim=1), {"commitment": commitment, "codebook": codebook_loss}

    @torch.no_grad()
    def _init_level(self, level: int, residual: Tensor) -> None:
        centroids, counts = kmeans_torch(residual, self.codebook_size, self.config.kmeans_iters)
        _broadcast_from_rank0(centroids)
        _broadcast_from_rank0(counts)
        self.embed[level].copy_(centroids)
        self.cluster_size[level].copy_(counts)
        self.embed_sum[level].copy_(centroids * counts[:, None])
        self.initialized[level].fill_(1.0)

    @torch.no_grad()
    def _update_level(self, level: int, residual: Tensor, idx: Tensor) -> None:
        cfg = self.config
        counts = torch.bincount(idx, minlength=self.codebook_size).to(residual.dtype)  # [K]
        sums = torch.zeros(self.codebook_size, self.dim, device=residual.device).index_add_(0, idx, residual)
        _all_reduce_sum(counts)
        _all_reduce_sum(sums)
        self.cluster_size[level].mul_(cfg.decay).add_(counts, alpha=1 - cfg.decay)
        self.embed_sum[level].mul_(cfg.decay).add_(sums, alpha=1 - cfg.decay)
        if cfg.ema:
            size = self.cluster_size[level]
            total = size.sum()
            # Laplace smoothing keeps a rarely used code from dividing by ~0.
            smoothed = (size + cfg.epsilon) / (total + self.codebook_size * cfg.epsilon) * total
            self.embed[level].copy_(self.embed_sum[level] / smoothed[:, None])
        if cfg.dead_code_threshold > 0:
            self._restart_dead_codes(level, residual)

    @torch.no_grad()
    def _restart_dead_codes(self, level: int, residual: Tensor) -> None:
        thr = self.config.dead_code_threshold
        dead = self.cluster_size[level] < thr  # identical on every rank: cluster_size is all-reduced
        if not bool(dead.any()):
            return
        candidates = _broadcast_from_rank0(_sample_rows(residual, self.codebook_size))  # [K, D]
        self.embed[level][dead] = candidates[dead]
        # Give a restarted code exactly the threshold usage, so it survives if it is used at that rate.
        self.cluster_size[level][dead] = thr
        self.embed_sum[level][dead] = candidates[dead] * thr

    def code_usage(self) -> Tensor:
        """Fraction of codes per level ``[N]`` whose EMA usage is at least the restart threshold (or > 0)."""
        thr = max(self.config.dead_code_threshold, 1e-8)
        return (self.cluster_size >= thr).float().mean(1)
