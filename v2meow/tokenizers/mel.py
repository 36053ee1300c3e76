"""Shared spectral frontends in plain torch: log-mel and chroma spectrograms (no torchaudio, no librosa).

The filterbanks are computed in numpy once, at construction, and kept as non-persistent buffers: they are a
pure function of the constructor arguments, so they never enter a state_dict.

Two framings:
- ``"center"`` (torch.stft style): ``T // hop + 1`` frames, frame ``i`` centred on sample ``i * hop``;
- ``"same"``: the input is first padded at the end to a multiple of ``hop``, giving exactly
  ``ceil(T / hop)`` frames, frame ``i`` centred on the middle of hop ``i`` (what token streams need).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "hz_to_mel",
    "mel_to_hz",
    "mel_filterbank",
    "chroma_filterbank",
    "frame_padding",
    "power_spectrogram",
    "LogMel",
    "Chroma",
]


def hz_to_mel(f: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Hz → mel. Slaney's scale (linear below 1 kHz, logarithmic above) unless ``htk``."""
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Mel → Hz, the inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]`` (float32).

    ``norm="slaney"`` scales each filter to unit area in Hz, so bands of different width weigh energy alike.
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2, got fmin={fmin}, fmax={fmax}.")
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}.")
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)  # [n_mels + 2]
    widths = np.diff(edges)
    slopes = edges[:, None] - fft_freqs[None, :]  # [n_mels + 2, F]
    lower = -slopes[:-2] / widths[:-1, None]
    upper = slopes[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def chroma_filterbank(
    sample_rate: int, n_fft: int, n_chroma: int = 12, fmin: float = 55.0, fmax: float = 5000.0, width: float = 1.0
) -> np.ndarray:
    """Pitch-class filters ``[n_chroma, n_fft // 2 + 1]`` (float32), row 0 = C.

    Each FFT bin between ``fmin`` and ``fmax`` votes for the pitch classes near its frequency with a Gaussian
    of ``width`` chroma bins (circular distance), so a bin between two semitones is shared between them.
    """
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    valid = (freqs >= fmin) & (freqs <= min(fmax, sample_rate / 2))
    # Chroma position of each bin in [0, n_chroma): C = 0 (MIDI 60 is C4, 440 Hz is MIDI 69).
    midi = 69.0 + 12.0 * np.log2(np.maximum(freqs, 1e-6) / 440.0)
    pos = np.mod(midi * n_chroma / 12.0, n_chroma)
    classes = np.arange(n_chroma)[:, None]
    dist = np.abs(pos[None, :] - classes)
    dist = np.minimum(dist, n_chroma - dist)
    weights = np.exp(-0.5 * (dist / width) ** 2) * valid[None, :]
    return weights.astype(np.float32)


def frame_padding(num_samples: int, n_fft: int, hop_length: int, padding: str) -> tuple[int, int]:
    """(left, right) zero padding that gives the framing named by ``padding`` ("center" or "same")."""
    if padding == "center":
        return n_fft // 2, n_fft // 2
    if padding == "same":
        if n_fft < hop_length:
            raise ValueError(f"'same' framing needs n_fft >= hop_length, got {n_fft} < {hop_length}.")
        extra = -num_samples % hop_length
        left = (n_fft - hop_length) // 2
        return left, n_fft - hop_length - left + extra
    raise ValueError(f"padding must be 'center' or 'same', got {padding!r}.")


def power_spectrogram(wav: Tensor, n_fft: int, hop_length: int, window: Tensor, padding: str = "center") -> Tensor:
    """``wav [B, T]`` → power spectrogram ``[B, n_fft // 2 + 1, frames]`` (float32)."""
    if wav.dim() != 2:
        raise ValueError(f"wav must be [B, T], got shape {tuple(wav.shape)}.")
    left, right = frame_padding(wav.shape[-1], n_fft, hop_length, padding)
    # Zero padding rather than reflection: reflection fails on clips shorter than half a window.
    x = F.pad(wav.float(), (left, right))
    spec = torch.stft(x, n_fft, hop_length, window=window, center=False, return_complex=True)
    return spec.real.square() + spec.imag.square()


class _Spectral(nn.Module):
    def __init__(self, n_fft: int, hop_length: int, padding: str) -> None:
        super().__init__()
        frame_padding(n_fft, n_fft, hop_length, padding)  # validates
        self.n_fft, self.hop_length, self.padding = n_fft, hop_length, padding
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def num_frames(self, num_samples: int) -> int:
        if self.padding == "same":
            return math.ceil(num_samples / self.hop_length)
        return num_samples // self.hop_length + 1

    def power(self, wav: Tensor) -> Tensor:
        return power_spectrogram(wav, self.n_fft, self.hop_length, self.window, self.padding)


class LogMel(_Spectral):
    """``wav [B, T]`` → natural-log mel spectrogram ``[B, n_mels, frames]``."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 320,
        n_mels: int = 80,
        fmin: float = 0.0,
        fmax: float | None = None,
        power: float = 2.0,
        log_floor: float = 1e-5,
        padding: str = "center",
        htk: bool = False,
    ) -> None:
        super().__init__(n_fft, hop_length, padding)
        self.sample_rate, self.n_mels, self.power_exp, self.log_floor = sample_rate, n_mels, power, log_floor
        fb = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, htk=htk)
        self.register_buffer("filters", torch.from_numpy(fb), persistent=False)  # [n_mels, F]

    def forward(self, wav: Tensor) -> Tensor:
        spec = self.power(wav)  # [B, F, frames]
        if self.power_exp != 2.0:
            spec = spec.clamp_min(1e-20).pow(self.power_exp / 2.0)
        mel = torch.einsum("mf,bft->bmt", self.filters, spec)
        return mel.clamp_min(self.log_floor).log()


class Chroma(_Spectral):
    """``wav [B, T]`` → chroma ``[B, n_chroma, frames]``, each frame scaled to max 1 (silence stays 0)."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 2048,
        hop_length: int = 320,
        n_chroma: int = 12,
        padding: str = "center",
    ) -> None:
        super().__init__(n_fft, hop_length, padding)
        fb = chroma_filterbank(sample_rate, n_fft, n_chroma)
        self.register_buffer("filters", torch.from_numpy(fb), persistent=False)  # [n_chroma, F]

    def forward(self, wav: Tensor) -> Tensor:
        chroma = torch.einsum("cf,bft->bct", self.filters, self.power(wav))
        return chroma / chroma.amax(dim=1, keepdim=True).clamp_min(1e-8)
