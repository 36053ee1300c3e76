"""Token layouts: how RVQ codes ``[B, N, T]`` become one flat token stream for a language model and back.

AudioLM flattens the acoustic codes frame by frame: all levels of frame 0, then all levels of frame 1, ...
Each level gets its own slice of the vocabulary (``token = code + row * codebook_size``), so that the model
never confuses a level-0 code with a level-3 code and so that sampling can mask the logits to the slice the
next position allows.

Every layout is a :class:`Pattern` with ``build``/``revert`` and the position queries a sampler needs:

- :class:`FlatPattern` (AudioLM, the paper's): one token per step, ``N`` steps per frame;
- :class:`DelayPattern` (MusicGen): level ``k`` shifted right by ``k`` frames, so that one step holds one token of
  every level (``tokens_per_step = N``) and ``T`` frames take ``T + N - 1`` steps instead of ``N * T``. The
  positions a shift leaves empty hold a pad token; a model reading this layout sums a step's ``N`` token
  embeddings and predicts its ``N`` tokens at once.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Pattern", "FlatPattern", "DelayPattern", "split_levels", "join_levels", "coarse_fine_patterns"]


class Pattern(abc.ABC):
    """A reversible layout of codes ``[B, N, T]`` as tokens ``[B, L]`` over a vocabulary of ``vocab_size``;
    ``L`` is a whole number of steps of ``tokens_per_step`` tokens."""

    num_levels: int
    codebook_size: int
    tokens_per_step: int = 1

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Number of distinct token ids this layout produces."""

    @abc.abstractmethod
    def build(self, codes: Tensor) -> Tensor:
        """Codes ``[B, N, T]`` → tokens ``[B, L]``."""

    @abc.abstractmethod
    def revert(self, tokens: Tensor) -> Tensor:
        """Tokens ``[B, L]`` → codes ``[B, N, T]``; raises ValueError on anything ``build`` cannot produce."""

    @abc.abstractmethod
    def allowed_mask(self, positions: Tensor) -> Tensor:
        """Positions ``[P]`` → boolean ``[P, vocab_size]``: which token ids may stand at each flat position."""


@dataclass(frozen=True)
class FlatPattern(Pattern):
    """Frame-major flattening with a vocabulary slice per level (AudioLM).

    ``first_level`` is the index, in the codec's full RVQ stack, of this pattern's first row: a fine-token
    pattern of levels 4..11 has ``first_level=4``. Offsets are relative to the pattern, so its tokens are
    ``code + (level - first_level) * codebook_size`` and lie in ``[0, vocab_size)`` whatever ``first_level`` is.
    Flat positions are counted from the first token of a frame (position 0 holds row 0 of frame 0); a caller
    whose sequence has a prefix (semantic tokens, a prompt) subtracts the prefix length first.
    """

    num_levels: int
    codebook_size: int
    first_level: int = 0

    def __post_init__(self) -> None:
        if self.num_levels < 1:
            raise ValueError(f"FlatPattern needs num_levels >= 1, got {self.num_levels}.")
        if self.codebook_size < 1:
            raise ValueError(f"FlatPattern needs codebook_size >= 1, got {self.codebook_size}.")
        if self.first_level < 0:
            raise ValueError(f"FlatPattern needs first_level >= 0, got {self.first_level}.")

    @property
    def vocab_size(self) -> int:
        return self.num_levels * self.codebook_size

    @property
    def levels(self) -> range:
        """The codec levels this pattern covers, e.g. ``range(4, 12)`` for fine tokens."""
        return range(self.first_level, self.first_level + self.num_levels)

    def offsets(self, device: torch.device | str | None = None) -> Tensor:
        """Per-row token offset ``[N]``: ``row * codebook_size``."""
        return torch.arange(self.num_levels, device=device, dtype=torch.long) * self.codebook_size

    # ---- layout ---------------------------------------------------------------------------------------

    def build(self, codes: Tensor) -> Tensor:
        """Codes ``[B, N, T]`` (row ``i`` = codec level ``first_level + i``) → tokens ``[B, T * N]``, frame-major."""
        if codes.dim() != 3:
            raise ValueError(f"codes must be [B, N, T], got shape {tuple(codes.shape)}.")
        if codes.shape[1] != self.num_levels:
            raise ValueError(f"codes have {codes.shape[1]} levels but the pattern expects {self.num_levels}.")
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise ValueError(f"codes must be an integer tensor, got {codes.dtype}.")
        codes = codes.long()
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(
                f"codes must lie in [0, {self.codebook_size}), got values in [{int(codes.min())}, {int(codes.max())}]."
            )
        tokens = codes + self.offsets(codes.device)[None, :, None]  # [B, N, T]
        return tokens.transpose(1, 2).reshape(codes.shape[0], -1)  # [B, T, N] → [B, T*N]

    def revert(self, tokens: Tensor) -> Tensor:
        """Tokens ``[B, L]`` → codes ``[B, N, L // N]``.

        Strict: raises ValueError when ``L`` is not a whole number of frames or when a token lies outside
        the slice of its position's level, since either means the producer and this layout disagree.
        """
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, L], got shape {tuple(tokens.shape)}.")
        if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
            raise ValueError(f"tokens must be an integer tensor, got {tokens.dtype}.")
        b, length = tokens.shape
        if length % self.num_levels:
            raise ValueError(
                f"{length} tokens are not a whole number of frames of {self.num_levels} levels; "
                "use revert_partial to drop an incomplete last frame."
            )
        frames = tokens.long().reshape(b, length // self.num_levels, self.num_levels)  # [B, T, N]
        codes = frames - self.offsets(tokens.device)[None, None, :]
        bad = (codes < 0) | (codes >= self.codebook_size)
        if bad.any():
            bi, ti, ni = (int(i) for i in bad.nonzero()[0])
            lo, hi = self.allowed_range(ni)
            raise ValueError(
                f"token {int(frames[bi, ti, ni])} at batch {bi}, position {ti * self.num_levels + ni} "
                f"(level {self.first_level + ni}) is outside that level's range [{lo}, {hi})."
            )
        return codes.transpose(1, 2).contiguous()  # [B, N, T]

    def revert_partial(self, tokens: Tensor) -> Tensor:
        """Like :meth:`revert`, but drops a trailing incomplete frame (e.g. generation stopped mid-frame)."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, L], got shape {tuple(tokens.shape)}.")
        whole = tokens.shape[1] - tokens.shape[1] % self.num_levels
        return self.revert(tokens[:, :whole])

    def num_tokens(self, num_frames: int) -> int:
        """Flat length of ``num_frames`` frames."""
        return num_frames * self.num_levels

    # ---- position queries (for masking logits while sampling) ------------------------------------------

    def row_at(self, position: int) -> int:
        """Row of the pattern (0..N-1) at a flat position."""
        if position < 0:
            raise ValueError(f"position must be >= 0, got {position}.")
        return position % self.num_levels

    def level_at(self, position: int) -> int:
        """Codec level (in the full RVQ stack, so ``first_level``-based) of the token at a flat position."""
        return self.first_level + self.row_at(position)

    def allowed_range(self, position: int) -> tuple[int, int]:
        """Half-open range ``(lo, hi)`` of token ids allowed at a flat position."""
        lo = self.row_at(position) * self.codebook_size
        return lo, lo + self.codebook_size

    def allowed_mask(self, positions: Tensor) -> Tensor:
        """Flat positions ``[P]`` → ``[P, vocab_size]`` boolean, True where the token id is allowed."""
        positions = torch.as_tensor(positions, dtype=torch.long)
        if positions.dim() != 1:
            raise ValueError(f"positions must be 1-D, got shape {tuple(positions.shape)}.")
        if positions.numel() and positions.min() < 0:
            raise ValueError("positions must be >= 0.")
        lo = (positions % self.num_levels) * self.codebook_size  # [P]
        ids = torch.arange(self.vocab_size, device=positions.device)  # [V]
        return (ids[None, :] >= lo[:, None]) & (ids[None, :] < lo[:, None] + self.codebook_size)


@dataclass(frozen=True)
class DelayPattern(Pattern):
    """MusicGen's delay layout: step ``s`` holds level ``k``'s code of frame ``s - k`` for every ``k``.

    Tokens are the ``[B, S, N]`` grid of steps flattened step-major to ``[B, S * N]``; stream ``k`` has its own
    vocabulary slice of ``codebook_size + 1`` ids (``code + k * (codebook_size + 1)``), the last of which is the
    pad token of the positions before level ``k`` starts (``s < k``) and after it ends (``s - k >= T``). A frame's
    code at level ``k`` is written ``k`` steps after its level-0 code, so it is predicted knowing the lower
    levels of that frame, as in the flat layout, but ``N`` levels share one decoder step.
    """

    num_levels: int
    codebook_size: int
    first_level: int = 0

    def __post_init__(self) -> None:
        if self.num_levels < 1 or self.codebook_size < 1 or self.first_level < 0:
            raise ValueError(f"DelayPattern needs num_levels >= 1, codebook_size >= 1 and first_level >= 0, got "
                             f"{self.num_levels}, {self.codebook_size}, {self.first_level}.")

    @property
    def tokens_per_step(self) -> int:  # type: ignore[override]
        return self.num_levels

    @property
    def stride(self) -> int:
        """Ids per stream: the codes and the pad."""
        return self.codebook_size + 1

    @property
    def vocab_size(self) -> int:
        return self.num_levels * self.stride

    def pad_ids(self, device: torch.device | str | None = None) -> Tensor:
        """Each stream's pad id ``[N]``."""
        return torch.arange(self.num_levels, device=device) * self.stride + self.codebook_size

    def num_steps(self, num_frames: int) -> int:
        return num_frames + self.num_levels - 1 if num_frames > 0 else 0

    def num_tokens(self, num_frames: int) -> int:
        return self.num_steps(num_frames) * self.num_levels

    def data_mask(self, num_frames: int, device: torch.device | str | None = None) -> Tensor:
        """``[S, N]`` True where step ``s`` of stream ``k`` holds a code (``0 <= s - k < T``), False on pads."""
        s = torch.arange(self.num_steps(num_frames), device=device)[:, None]
        k = torch.arange(self.num_levels, device=device)[None, :]
        return (s >= k) & (s - k < num_frames)

    def build_mask(self, frames: Tensor) -> Tensor:
        """A per-code boolean ``[B, N, T]`` (valid frames, say) laid out as the tokens: ``[B, S * N]``, False on
        every pad."""
        b, n, t = frames.shape
        grid = torch.zeros(b, self.num_steps(t), n, dtype=torch.bool, device=frames.device)
        for k in range(n):
            grid[:, k : k + t, k] = frames[:, k].bool()
        return grid.reshape(b, -1)

    def build(self, codes: Tensor) -> Tensor:
        """Codes ``[B, N, T]`` → tokens ``[B, (T + N - 1) * N]``, step-major."""
        if codes.dim() != 3 or codes.shape[1] != self.num_levels:
            raise ValueError(f"codes must be [B, {self.num_levels}, T], got shape {tuple(codes.shape)}.")
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise ValueError(f"codes must be an integer tensor, got {codes.dtype}.")
        codes = codes.long()
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got values in "
                             f"[{int(codes.min())}, {int(codes.max())}].")
        b, n, t = codes.shape
        grid = self.pad_ids(codes.device)[None, None, :].repeat(b, self.num_steps(t), 1)  # [B, S, N]
        offsets = torch.arange(n, device=codes.device) * self.stride
        for k in range(n):
            grid[:, k : k + t, k] = codes[:, k] + offsets[k]
        return grid.reshape(b, -1)

    def revert(self, tokens: Tensor) -> Tensor:
        """Tokens ``[B, S * N]`` → codes ``[B, N, S - N + 1]``; strict: a pad where a code belongs, a code where a
        pad belongs or an id outside its stream's slice raises ValueError."""
        if tokens.dim() != 2 or tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
            raise ValueError(f"tokens must be an integer [B, L], got {tuple(tokens.shape)} {tokens.dtype}.")
        b, length = tokens.shape
        n = self.num_levels
        if length % n or (length and length // n < n):
            raise ValueError(f"{length} tokens are not a whole number of at least {n} steps of {n} tokens.")
        steps = length // n
        t = steps - n + 1 if steps else 0
        grid = tokens.long().reshape(b, steps, n) - (torch.arange(n, device=tokens.device) * self.stride)[None, None]
        data = self.data_mask(t, tokens.device)[None].expand(b, -1, -1)
        bad = (data & ((grid < 0) | (grid >= self.codebook_size))) | (~data & (grid != self.codebook_size))
        if bad.any():
            bi, si, ki = (int(i) for i in bad.nonzero()[0])
            what = "a code of [0, codebook_size)" if data[bi, si, ki] else "the pad"
            raise ValueError(f"token {int(tokens[bi, si * n + ki])} at batch {bi}, step {si}, level "
                             f"{self.first_level + ki} should be {what} of that level's slice.")
        codes = torch.stack([grid[:, k : k + t, k] for k in range(n)], dim=1) if t else grid.new_zeros(b, n, 0)
        return codes.contiguous()

    def allowed_mask(self, positions: Tensor) -> Tensor:
        """Flat positions ``[P]`` → ``[P, vocab_size]``: the codes of the position's stream, or only its pad
        before the stream starts (``s < k``). (Past the end, which depends on ``T``, the caller writes pads.)"""
        positions = torch.as_tensor(positions, dtype=torch.long)
        if positions.dim() != 1 or (positions.numel() and positions.min() < 0):
            raise ValueError("positions must be a 1-D tensor of values >= 0.")
        step, k = positions // self.num_levels, positions % self.num_levels
        lo = k * self.stride
        ids = torch.arange(self.vocab_size, device=positions.device)[None, :]
        codes = (ids >= lo[:, None]) & (ids < lo[:, None] + self.codebook_size)
        pad = ids == (lo + self.codebook_size)[:, None]
        return torch.where((step < k)[:, None], pad, codes)


# ---- splitting the RVQ stack into coarse and fine ------------------------------------------------------


def split_levels(codes: Tensor, n_coarse: int) -> tuple[Tensor, Tensor]:
    """Codes ``[B, N, T]`` → (coarse ``[B, n_coarse, T]``, fine ``[B, N - n_coarse, T]``)."""
    if codes.dim() != 3:
        raise ValueError(f"codes must be [B, N, T], got shape {tuple(codes.shape)}.")
    if not 0 < n_coarse < codes.shape[1]:
        raise ValueError(f"n_coarse must be in [1, {codes.shape[1] - 1}] for {codes.shape[1]} levels, got {n_coarse}.")
    return codes[:, :n_coarse], codes[:, n_coarse:]


def join_levels(coarse: Tensor, fine: Tensor) -> Tensor:
    """(coarse ``[B, N_c, T]``, fine ``[B, N_f, T]``) → codes ``[B, N_c + N_f, T]``."""
    if coarse.dim() != 3 or fine.dim() != 3:
        raise ValueError(f"coarse and fine must be [B, N, T], got {tuple(coarse.shape)} and {tuple(fine.shape)}.")
    if coarse.shape[0] != fine.shape[0] or coarse.shape[2] != fine.shape[2]:
        raise ValueError(
            f"coarse {tuple(coarse.shape)} and fine {tuple(fine.shape)} differ in batch size or frame count."
        )
    return torch.cat([coarse, fine], dim=1)


def coarse_fine_patterns(num_levels: int, n_coarse: int, codebook_size: int) -> tuple[FlatPattern, FlatPattern]:
    """The two patterns of an AudioLM split: levels ``0..n_coarse-1`` and ``n_coarse..num_levels-1``."""
    if not 0 < n_coarse < num_levels:
        raise ValueError(f"n_coarse must be in [1, {num_levels - 1}] for {num_levels} levels, got {n_coarse}.")
    return (
        FlatPattern(n_coarse, codebook_size, first_level=0),
        FlatPattern(num_levels - n_coarse, codebook_size, first_level=n_coarse),
    )
