"""The acoustic codec interface (wav ↔ RVQ codes ``[B, N_q, T_a]``) and identity helpers shared by tokenizers.

Every tokenizer stamps what it produces with :meth:`identity`; a consumer compares stamps before reading
tokens (DESIGN.md: tokens made by one tokenizer are never read as another's). An identity holds the
configuration hash *and* a fingerprint of the weights, because two trainings of one config make different
codes.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from v2meow.configbase import config_property
from v2meow.errors import IdentityMismatch, UserError
from v2meow.identity import config_hash, weights_fingerprint

__all__ = ["AcousticCodec", "config_hash", "weights_fingerprint", "compare_identities"]


def compare_identities(expected: dict[str, Any], got: dict[str, Any], subject: str) -> None:
    """Raise :class:`IdentityMismatch` naming the first key where ``got`` differs from ``expected``.

    ``subject`` starts the sentence, e.g. ``"these acoustic codes were made with"``. When both carry ``codes``
    (the fingerprint of what decides the codes: a codec's encoder and codebooks), ``weights`` may differ: a decoder
    trained on with the rest frozen reads the same codes. A stamp made before ``codes`` existed is compared by its
    ``weights``.
    """
    keys = set(expected) | set(got)
    keys.discard("weights" if "codes" in expected and "codes" in got else "codes")  # a stamp older than codes: weights
    for key in sorted(keys):
        if expected.get(key) != got.get(key):
            raise IdentityMismatch(
                f"{subject} {key}={got.get(key)!r}, but this {expected.get('name', 'backend')} has "
                f"{key}={expected.get(key)!r}."
            )


class AcousticCodec(nn.Module, abc.ABC):
    """A neural audio codec: waveform ``[B, T]`` ↔ codes ``[B, N_q, T_a]`` with ``T_a = ceil(T / hop_length)``.

    A codec's numbers are the ones its ``config`` declares: ``sample_rate``, ``hop_length``, ``frame_rate`` (code
    frames per second), ``num_levels`` and ``codebook_size``. Subclasses set ``self.config`` and implement
    :meth:`identity`, :meth:`_encode_padded` and :meth:`decode`.
    """

    sample_rate = config_property("sample_rate")
    hop_length = config_property("hop_length")
    frame_rate = config_property("frame_rate")
    num_levels = config_property("num_levels")
    codebook_size = config_property("codebook_size")

    @property
    def frame_cycle(self) -> int:
        """Windows that encode or decode part of a longer signal must start on a multiple of this many frames
        (counted from the signal's first frame) to agree with coding it whole: 1 for a shift-invariant codec."""
        return 1

    def aligned_start(self, frame: int) -> int:
        """The window start at or before ``frame`` that keeps the codec's :attr:`frame_cycle`."""
        return max(0, frame) // self.frame_cycle * self.frame_cycle

    @abc.abstractmethod
    def identity(self) -> dict[str, Any]:
        """JSON-able stamp: name, version, sample_rate, frame_rate, num_levels, codebook_size, config hash, weights."""

    def num_frames(self, num_samples: int) -> int:
        """Code frames for ``num_samples`` samples: ``ceil(T / hop_length)``."""
        return math.ceil(num_samples / self.hop_length)

    def pad_to_hop(self, wav: Tensor) -> Tensor:
        """Zero-pad ``wav [B, T]`` at the end to a multiple of ``hop_length``."""
        if wav.dim() != 2:
            raise ValueError(f"wav must be [B, T], got shape {tuple(wav.shape)}.")
        extra = -wav.shape[-1] % self.hop_length
        return F.pad(wav, (0, extra)) if extra else wav

    @torch.no_grad()
    def encode(self, wav: Tensor, n_levels: int | None = None) -> Tensor:
        """``wav [B, T]`` at :attr:`sample_rate` → codes ``[B, n, ceil(T / hop)]`` (all levels by default)."""
        if wav.dim() != 2 or wav.shape[-1] == 0:
            raise ValueError(f"wav must be a non-empty [B, T], got shape {tuple(wav.shape)}.")
        return self._encode_padded(self.pad_to_hop(wav), n_levels)

    @abc.abstractmethod
    def _encode_padded(self, wav: Tensor, n_levels: int | None) -> Tensor:
        """``wav [B, T_a * hop]`` → codes ``[B, n, T_a]``."""

    @abc.abstractmethod
    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, n, T_a]`` of the first ``n`` levels → ``wav [B, T_a * hop]``."""

    def decode_window(self, codes: Tensor, first: int, keep_from: int, carry: Any = None) -> tuple[Tensor, Any]:
        """Decode one window ``codes [B, n, T_a]`` of a longer sequence, starting at its frame ``first``, whose
        output is kept from frame ``keep_from`` on: (``wav [B, T_a * hop]``, carry for the next window). A codec
        whose decode carries state from frame to frame (a phase integrated over time) continues it from ``carry``,
        what the window before returned; this one has none."""
        return self.decode(codes), None

    def decode_windows(self, codes: Tensor, window: int, context: int,
                       progress: Callable[[int, int], None] | None = None) -> Tensor:
        """Codes ``[B, n, T_a]`` → ``wav [B, T_a * hop]`` decoded ``window`` frames at a time, each seeing
        ``context`` frames on both sides (started on the :attr:`frame_cycle`), so memory stays flat with length;
        each window continues the one before (:meth:`decode_window`). ``progress(done, total)`` in frames."""
        hop, total = self.hop_length, codes.shape[-1]
        pieces, carry = [], None
        for a in range(0, total, window):
            b = min(total, a + window)
            lo, hi = self.aligned_start(a - context), min(total, b + context)  # where it codes as whole
            wav, carry = self.decode_window(codes[..., lo:hi], lo, a, carry)
            pieces.append(wav[..., (a - lo) * hop : (b - lo) * hop])
            if progress is not None:
                progress(b, total)
        return torch.cat(pieces, -1) if pieces else codes.new_zeros(*codes.shape[:-2], 0, dtype=torch.float32)

    def check_codes(self, codes: Tensor, identity: dict[str, Any]) -> None:
        """Refuse codes stamped by another codec, or codes that cannot be this codec's.

        ``identity`` is the stamp stored beside the codes. Raises :class:`IdentityMismatch` when it differs from
        :meth:`identity`, and :class:`UserError` when ``codes [B, n, T_a]`` do not fit this codec.
        """
        compare_identities(self.identity(), identity, "these acoustic codes were made with")
        if codes.dim() not in (2, 3):
            raise UserError(f"acoustic codes must be [N_q, T_a] or [B, N_q, T_a], got shape {tuple(codes.shape)}.")
        levels = codes.shape[-2]
        if not 1 <= levels <= self.num_levels:
            raise UserError(f"acoustic codes have {levels} levels, but this codec has {self.num_levels}.")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise UserError(f"acoustic codes lie outside this codec's vocabulary [0, {self.codebook_size}).")
