"""Reconstruction losses for codec training, also usable as metrics (DESIGN.md: report spectral distances).

- :class:`MultiScaleSTFTLoss`: spectral convergence + L1 log-magnitude, averaged over several window sizes;
- :class:`MultiScaleMelLoss`: L1 between log-mel spectrograms at several window sizes (DAC's mel distance);
- :class:`OnsetEnvelopeLoss`: L1 between onset-strength envelopes (the rise of each mel band, 10 ms frames): a
  decoder that smears attacks loses the beats the stages placed, which the other two barely see.

Both take ``(estimate [B, T], reference [B, T])`` and return a scalar; they hold no trainable state and
their windows/filterbanks are non-persistent buffers, so they never appear in a checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from v2meow.tokenizers.mel import LogMel, power_spectrogram

__all__ = ["MultiScaleSTFTLoss", "MultiScaleMelLoss", "OnsetEnvelopeLoss"]


def _check_pair(est: Tensor, ref: Tensor) -> None:
    if est.shape != ref.shape or est.dim() != 2:
        raise ValueError(f"estimate and reference must both be [B, T], got {tuple(est.shape)} and {tuple(ref.shape)}.")


class MultiScaleSTFTLoss(nn.Module):
    """Mean over window sizes of ``||S - Ŝ||_F / ||S||_F + mean |log S - log Ŝ|`` (S = STFT magnitude)."""

    def __init__(self, n_ffts: Sequence[int] = (2048, 1024, 512, 256, 128, 64), eps: float = 1e-5) -> None:
        super().__init__()
        self.n_ffts = tuple(int(n) for n in n_ffts)
        self.eps = eps
        for n in self.n_ffts:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def forward(self, est: Tensor, ref: Tensor) -> Tensor:
        _check_pair(est, ref)
        total = est.new_zeros((), dtype=torch.float32)
        for n in self.n_ffts:
            window = getattr(self, f"window_{n}")
            s_est = power_spectrogram(est, n, n // 4, window).clamp_min(self.eps**2).sqrt()  # [B, F, frames]
            s_ref = power_spectrogram(ref, n, n // 4, window).clamp_min(self.eps**2).sqrt()
            convergence = torch.linalg.vector_norm(s_ref - s_est) / torch.linalg.vector_norm(s_ref).clamp_min(self.eps)
            log_mag = (s_ref.log() - s_est.log()).abs().mean()
            total = total + convergence + log_mag
        return total / len(self.n_ffts)


class MultiScaleMelLoss(nn.Module):
    """Mean over scales of L1 between log-mel spectrograms; each scale is ``(n_fft, n_mels)``, hop ``n_fft // 4``."""

    def __init__(
        self,
        sample_rate: int = 16000,
        scales: Sequence[tuple[int, int]] = ((2048, 160), (1024, 80), (512, 40), (256, 20), (128, 10)),
        log_floor: float = 1e-5,
    ) -> None:
        super().__init__()
        self.mels = nn.ModuleList(
            LogMel(sample_rate, n_fft, n_fft // 4, n_mels, log_floor=log_floor, power=1.0) for n_fft, n_mels in scales
        )

    def forward(self, est: Tensor, ref: Tensor) -> Tensor:
        _check_pair(est, ref)
        total = est.new_zeros((), dtype=torch.float32)
        for mel in self.mels:
            total = total + (mel(est) - mel(ref)).abs().mean()
        return total / len(self.mels)


class OnsetEnvelopeLoss(nn.Module):
    """Mean L1 between onset-strength envelopes: the half-wave rectified frame-to-frame rise of a log-mel
    spectrogram, averaged over bands (spectral flux, as onset detectors and beat trackers read music). Log
    magnitudes make it independent of the level."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 1024, hop_length: int | None = None,
                 n_mels: int = 64) -> None:
        super().__init__()
        hop = hop_length or sample_rate // 100
        self.mel = LogMel(sample_rate, n_fft, hop, n_mels, power=1.0)

    def envelope(self, wav: Tensor) -> Tensor:
        """``wav [B, T]`` → ``[B, frames - 1]``."""
        mel = self.mel(wav)
        return torch.relu(mel[:, :, 1:] - mel[:, :, :-1]).mean(1)

    def forward(self, est: Tensor, ref: Tensor) -> Tensor:
        _check_pair(est, ref)
        return (self.envelope(est) - self.envelope(ref)).abs().mean()
