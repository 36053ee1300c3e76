"""What a codec (or any renderer) does to the sound, beyond one spectral distance: pure functions on ``[B, T]``.

A log-magnitude distance can hide a hum, a level error or clipping (DESIGN.md): these measure each directly.

- :func:`band_power_share`: the share of a signal's power inside a frequency band (a line at a codec's 50 Hz
  frame rate shows as a large 45–55 Hz share next to the input's);
- :func:`octave_band_db`: energy per octave band in dB (the band-energy error is its difference);
- :func:`rms_dbfs` and :func:`scale_to_dbfs`: levels, for a level sweep (a level-linear codec's gain in dB is the
  same at every input level);
- :func:`clipped_fraction`: the share of samples at full scale;
- :func:`msstft_l1`: the multi-scale STFT distance (mean L1 of linear plus of log magnitudes, summed over FFT
  sizes), per row, so that references (random phase, low-pass, Griffin-Lim) sit on the same scale;
- :func:`harmonic_tone` and :func:`partial_share`: whether steady partials come back at their own frequencies. A
  renderer can move every partial onto a grid (its STFT bins, or multiples of its frame rate) and still score well
  on STFT distances whose bins are as wide as the error: the share of power within a hertz or two of the input's
  partials, measured over seconds, is not fooled;
- :func:`fine_spectrum_db`: the same on music, the mean distance in dB of level-normalised spectra with 1 Hz
  resolution (1 s windows) in the bass and middle, where a partial's pitch error is a large part of its spacing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "band_power_share",
    "clipped_fraction",
    "fine_spectrum_db",
    "harmonic_tone",
    "msstft_l1",
    "octave_band_db",
    "octave_bands",
    "partial_share",
    "rms_dbfs",
    "scale_to_dbfs",
]


def _rows(wav: Tensor) -> Tensor:
    if wav.dim() == 1:
        wav = wav[None]
    if wav.dim() != 2 or wav.shape[-1] < 2:
        raise ValueError(f"wav must be [T] or [B, T] with T >= 2, got shape {tuple(wav.shape)}.")
    return wav.double()


def _power_spectrum(wav: Tensor) -> Tensor:
    """Hann-windowed periodogram of each whole row: ``[B, T // 2 + 1]``."""
    x = _rows(wav)
    x = x - x.mean(-1, keepdim=True)
    return torch.fft.rfft(x * torch.hann_window(x.shape[-1], dtype=x.dtype), dim=-1).abs().square()


def band_power_share(wav: Tensor, sample_rate: int, low: float, high: float) -> Tensor:
    """Share of each row's power (DC removed) with frequency in ``[low, high)`` Hz: ``[B]`` in [0, 1]."""
    p = _power_spectrum(wav)
    freqs = torch.fft.rfftfreq(_rows(wav).shape[-1], 1.0 / sample_rate).to(p.dtype)
    inside = (freqs >= low) & (freqs < high)
    return (p[:, inside].sum(-1) / p.sum(-1).clamp_min(1e-30)).float()


def octave_bands(sample_rate: int, lowest: float = 31.25) -> list[tuple[float, float]]:
    """Octave bands ``[f, 2f)`` from ``lowest`` up to the Nyquist frequency (the last one ends there)."""
    bands, f = [], lowest
    while f < sample_rate / 2:
        bands.append((f, min(2 * f, sample_rate / 2)))
        f *= 2
    return bands


def octave_band_db(wav: Tensor, sample_rate: int, lowest: float = 31.25, floor: float = 1e-10) -> Tensor:
    """Mean-square power per octave band (:func:`octave_bands`) in dB: ``[B, bands]``.

    Normalised by Parseval (the one-sided periodogram of a Hann-windowed row sums to about ``n * sum(w^2) / 2``
    times its mean square), so a band holding all of a signal's power reads as the signal's RMS level in dBFS."""
    p = _power_spectrum(wav)
    n = _rows(wav).shape[-1]
    freqs = torch.fft.rfftfreq(n, 1.0 / sample_rate).to(p.dtype)
    norm = n * torch.hann_window(n, dtype=p.dtype).square().sum() / 2
    out = [p[:, (freqs >= lo) & (freqs < hi)].sum(-1) for lo, hi in octave_bands(sample_rate, lowest)]
    return (10 * torch.log10(torch.stack(out, -1) / norm + floor)).float()


def rms_dbfs(wav: Tensor, floor: float = 1e-10) -> Tensor:
    """RMS level of each row in dB relative to full scale (a full-scale square wave is 0 dBFS): ``[B]``."""
    x = _rows(wav)
    return (10 * torch.log10(x.square().mean(-1) + floor)).float()


def scale_to_dbfs(wav: Tensor, dbfs: float) -> Tensor:
    """Each row scaled to an RMS of ``dbfs`` dB relative to full scale (silent rows stay silent)."""
    x = _rows(wav)
    rms = x.square().mean(-1, keepdim=True).sqrt()
    gain = torch.where(rms > 0, 10 ** (dbfs / 20) / rms.clamp_min(1e-30), torch.zeros_like(rms))
    return (x * gain).to(wav.dtype if wav.is_floating_point() else torch.float32).reshape(_rows(wav).shape)


def clipped_fraction(wav: Tensor, threshold: float = 0.999) -> Tensor:
    """Share of each row's samples whose magnitude is at least ``threshold`` (full scale is 1): ``[B]``."""
    x = _rows(wav)
    return (x.abs() >= threshold).double().mean(-1).float()


def msstft_l1(est: Tensor, ref: Tensor, n_ffts: Sequence[int] = (256, 512, 1024, 2048), floor: float = 1e-5) -> Tensor:
    """Multi-scale STFT distance per row: summed over ``n_ffts`` (Hann window, hop a quarter), the mean absolute
    difference of the linear magnitudes plus that of their natural logs (magnitudes floored at ``floor``): ``[B]``."""
    e, r = _rows(est).float(), _rows(ref).float()
    if e.shape != r.shape:
        raise ValueError(f"estimate and reference differ in shape: {tuple(e.shape)} vs {tuple(r.shape)}.")
    total = torch.zeros(e.shape[0])
    for n in n_ffts:
        window = torch.hann_window(n)
        se = torch.stft(e, n, n // 4, window=window, return_complex=True).abs().clamp_min(floor)
        sr = torch.stft(r, n, n // 4, window=window, return_complex=True).abs().clamp_min(floor)
        total += (se - sr).abs().mean((1, 2)) + (se.log() - sr.log()).abs().mean((1, 2))
    return total


def harmonic_tone(f0: float, seconds: float, sample_rate: int, harmonics: int = 4, dbfs: float = -18.0) -> Tensor:
    """A steady tone ``[T]``: ``harmonics`` partials at ``k * f0`` with amplitudes ``1 / k`` (those below the Nyquist
    frequency), at an RMS of ``dbfs`` dB relative to full scale."""
    t = torch.arange(int(round(seconds * sample_rate)), dtype=torch.float64) / sample_rate
    x = sum(torch.sin(2 * torch.pi * f0 * k * t) / k for k in range(1, harmonics + 1) if f0 * k < sample_rate / 2)
    return scale_to_dbfs(torch.as_tensor(x, dtype=torch.float32), dbfs)[0]


def partial_share(wav: Tensor, sample_rate: int, partials: Sequence[float], tolerance: float = 1.5,
                  low: float = 20.0, high: float | None = None) -> Tensor:
    """Share of each row's power in ``[low, high)`` Hz (default: up to the highest partial plus ``low``) that lies
    within ``tolerance`` Hz of one of ``partials``: ``[B]`` in [0, 1].

    The periodogram covers the whole row (Hann window), so a row of ``T`` seconds resolves ``1 / T`` Hz: give it a
    few seconds for a tolerance of a hertz or two. A steady input tone scores about 1; the same tone moved by
    more than the tolerance, about 0."""
    p = _power_spectrum(wav)
    freqs = torch.fft.rfftfreq(_rows(wav).shape[-1], 1.0 / sample_rate).to(p.dtype)
    top = max(partials) + low if high is None else high
    band = (freqs >= low) & (freqs < top)
    near = torch.zeros_like(band)
    for f in partials:
        near |= (freqs - f).abs() <= tolerance
    return (p[:, band & near].sum(-1) / p[:, band].sum(-1).clamp_min(1e-30)).float()


def fine_spectrum_db(est: Tensor, ref: Tensor, sample_rate: int, low: float = 30.0, high: float = 1000.0,
                     window_seconds: float = 1.0, floor_db: float = -60.0) -> Tensor:
    """Mean absolute difference in dB, over ``[low, high)`` Hz, of the two rows' power spectra averaged over
    ``window_seconds`` Hann windows (half overlapping; 1 s resolves 1 Hz), each normalised to its own power in the
    band and floored ``floor_db`` below the reference's strongest bin: ``[B]``. Level errors do not count (the
    normalisation removes them); moved, smeared or added partials do."""
    e, r = _rows(est), _rows(ref)
    if e.shape != r.shape:
        raise ValueError(f"estimate and reference differ in shape: {tuple(e.shape)} vs {tuple(r.shape)}.")
    n = min(int(round(window_seconds * sample_rate)), r.shape[-1])
    window = torch.hann_window(n, dtype=torch.float64)

    def spectrum(x: Tensor) -> Tensor:
        spec = torch.stft(x, n, max(1, n // 2), window=window, center=False, return_complex=True)
        return spec.abs().square().mean(-1)

    freqs = torch.fft.rfftfreq(n, 1.0 / sample_rate).to(torch.float64)
    band = (freqs >= low) & (freqs < high)
    pe, pr = spectrum(e)[:, band], spectrum(r)[:, band]
    pe = pe / pe.sum(-1, keepdim=True).clamp_min(1e-30)
    pr = pr / pr.sum(-1, keepdim=True).clamp_min(1e-30)
    floor = pr.amax(-1, keepdim=True) * 10 ** (floor_db / 10)
    de, dr = 10 * torch.log10(torch.maximum(pe, floor)), 10 * torch.log10(torch.maximum(pr, floor))
    return (de - dr).abs().mean(-1).float()
