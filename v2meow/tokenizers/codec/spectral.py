"""Spectral helpers of the frame-body codec: STFT and inverse STFT with the codec's framing, the phase advance
of each bin per hop, phase reconstruction from magnitudes (phase-gradient integration) or from predicted
instantaneous frequencies (the same peak-locked integration), and a frame's level."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def stft_same(wav: Tensor, n_fft: int, hop: int, window: Tensor) -> Tensor:
    """``wav [B, T_a * hop]`` → complex STFT ``[B, n_fft // 2 + 1, T_a]``, frame ``i`` centred on hop ``i``."""
    left = (n_fft - hop) // 2
    x = F.pad(wav.float(), (left, n_fft - hop - left))
    return torch.stft(x, n_fft, hop, window=window, center=False, return_complex=True)


def istft_same(spec: Tensor, n_fft: int, hop: int, window: Tensor) -> Tensor:
    """Inverse of :func:`stft_same`: complex ``[B, n_fft // 2 + 1, T_a]`` → ``wav [B, T_a * hop]``.

    Windowed overlap-add divided by the summed squared window. Written with ``fold`` rather than torch.istft
    because torch.istft with ``center=False`` rejects windows that vanish at the signal edges, and with
    ``center=True`` gives ``T_a - 1`` hops instead of the ``T_a`` this framing has.
    """
    b, _, t_a = spec.shape
    frames = torch.fft.irfft(spec, n=n_fft, dim=1) * window[None, :, None]  # [B, n_fft, T_a]
    length = (t_a - 1) * hop + n_fft
    y = F.fold(frames, (1, length), (1, n_fft), stride=(1, hop))[:, 0, 0]  # [B, length]
    env = F.fold(window.square()[None, :, None].expand(1, n_fft, t_a), (1, length), (1, n_fft), stride=(1, hop))
    left = (n_fft - hop) // 2
    # Inside [left, left + T_a * hop) at least one frame overlaps with weight >= sin^2(pi * left / n_fft) > 0.
    return (y / env[0, 0, 0].clamp_min(1e-8))[:, left : left + t_a * hop]


def phase_advance(bins: int, frames: int, n_fft: int, hop: int, device: torch.device | None = None) -> Tensor:
    """``exp(2 pi i k t hop / n_fft)`` as complex ``[bins, frames]``: how far bin ``k``'s phase turns by frame ``t``.

    A steady sinusoid at bin ``k``'s centre frequency has STFT frames equal to one constant times this. The
    product ``k t hop`` is reduced modulo ``n_fft`` in integers first, so long inputs keep their precision.
    """
    k = torch.arange(bins, device=device)[:, None]
    t = torch.arange(frames, device=device)[None, :]
    turns = (k * t * hop) % n_fft
    angle = (2 * math.pi / n_fft) * turns.to(torch.float64)
    return torch.polar(torch.ones_like(angle), angle).to(torch.complex64)


def phase_from_gradient(mag: Tensor, n_fft: int, hop: int, floor_db: float = -60.0) -> Tensor:
    """A phase for STFT magnitudes ``[B, F, T_a]`` (frames as :func:`stft_same` makes them, Hann window) from
    their own gradients, after phase-gradient heuristic integration (Prusa, Balazs and Sondergaard, 2017) with
    the peaks locking their neighbours (Laroche and Dolson): complex unit numbers ``[B, F, T_a]``.

    The Hann window is treated as a Gaussian of time-frequency ratio ``0.25645 * n_fft ** 2``. Then a bin's
    phase turns per frame by its own advance plus ``hop * n_fft / ratio`` times the slope of the log magnitude
    across bins, so every bin of a steady partial turns at the partial's frequency; and across bins it changes by
    ``-pi`` plus ``ratio / (hop * n_fft)`` times the log magnitude's slope across frames. Frame by frame, each
    spectral peak carries its phase on from the frame before (trapezoids), and the bins around it take theirs
    from the peak through the slope across bins, so a partial's bins never drift apart. Bins more than
    ``-floor_db`` dB below their frame's loudest are floored there and belong to no peak of their own.
    """
    ratio = 0.25645 * n_fft**2
    log_mag = floored_log_mag(mag, floor_db)
    d_bin = torch.gradient(log_mag, dim=1)[0]
    k = torch.arange(mag.shape[1], device=mag.device)
    per_frame = 2 * math.pi * hop * k[None, :, None] / n_fft + (hop * n_fft / ratio) * d_bin  # [B, F, T_a]
    return locked_phase(log_mag, per_frame, across_bins(log_mag, n_fft, hop))


def floored_log_mag(mag: Tensor, floor_db: float = -60.0) -> Tensor:
    """Natural-log magnitudes ``[B, F, T_a]`` floored ``-floor_db`` dB below each frame's loudest bin."""
    log_mag = mag.float().clamp_min(1e-12).log()
    return torch.maximum(log_mag, log_mag.amax(dim=1, keepdim=True) + floor_db / 20 * math.log(10))


def across_bins(log_mag: Tensor, n_fft: int, hop: int) -> Tensor:
    """Phase-gradient integration's phase change from bin to bin ``[B, F, T_a]`` (Hann window treated as a
    Gaussian): ``-pi`` plus ``ratio / (hop * n_fft)`` times the log magnitude's slope across frames."""
    ratio = 0.25645 * n_fft**2
    d_frame = torch.gradient(log_mag, dim=2)[0] if log_mag.shape[2] > 1 else torch.zeros_like(log_mag)
    return -math.pi - (ratio / (hop * n_fft)) * d_frame


def locked_phase(log_mag: Tensor, per_frame: Tensor, per_bin: Tensor, start: Tensor | None = None,
                 reset: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Phases ``[B, F, T_a]`` (complex unit numbers) integrated frame by frame with every bin locked to its
    nearest spectral peak.

    ``log_mag``: floored log magnitudes (:func:`floored_log_mag`); ``per_frame``: each bin's phase turn per frame
    (radians; the advance from frame ``t - 1`` to ``t`` is the mean of the two frames'); ``per_bin``: the phase
    change from each bin to the next (radians). Each spectral peak (a local maximum above the floor) carries its
    phase on from the frame before; the bins around it take theirs from the peak through ``per_bin``, so a
    partial's bins never drift apart. ``start``: the phases ``[B, F]`` (radians) frame 0's peaks carry, e.g. the
    same frame's phases from an earlier call that this one continues; default: ``per_bin``'s integral from bin 0.
    ``reset``: ``(where [B, F, T_a] bool, angles [B, F, T_a])``: where set, a bin's phase starts afresh from
    ``angles`` instead of carrying on (a note's attack). Differentiable in ``per_frame`` and ``start``.
    """
    b, f, t_a = log_mag.shape
    floor = log_mag.amin(dim=1, keepdim=True)
    # across bins: the integral from bin 0 (trapezoids), so bin j's phase is bin p's plus across[j] - across[p]
    across = torch.cat([torch.zeros_like(per_bin[:, :1]), 0.5 * (per_bin[:, 1:] + per_bin[:, :-1]).cumsum(1)], 1)
    # peaks: local maxima above the floor; each bin belongs to its nearest peak
    pad = F.pad(log_mag, (0, 0, 1, 1), value=-math.inf)
    peak = (log_mag >= pad[:, :-2]) & (log_mag > pad[:, 2:]) & (log_mag > floor + 1e-6)
    k = torch.arange(f, device=log_mag.device)
    idx = k[None, :, None].expand(b, f, t_a)
    big = torch.full_like(idx, 10 * f)
    left = torch.where(peak, idx, -big).cummax(1).values
    right = torch.where(peak, idx, big).flip(1).cummin(1).values.flip(1)
    owner = torch.where((idx - left) <= (right - idx), left, right).clamp(0, f - 1)  # [B, F, T_a]
    angles = []
    prev = across[:, :, 0].double() if start is None else start.double()
    for t in range(t_a):
        carried = prev if t == 0 else prev + 0.5 * (per_frame[:, :, t - 1] + per_frame[:, :, t]).double()
        if reset is not None:
            carried = torch.where(reset[0][:, :, t], reset[1][:, :, t].double(), carried)
        own = owner[:, :, t]
        cur = carried.gather(1, own) + (across[:, :, t] - across[:, :, t].gather(1, own)).double()
        angles.append(cur)
        prev = torch.remainder(cur, 2 * math.pi)
    angle = torch.remainder(torch.stack(angles, 2), 2 * math.pi).float()
    return torch.polar(torch.ones_like(angle), angle)


def phase_from_frequency(mag: Tensor, deviation: Tensor, first: Tensor, n_fft: int, hop: int,
                         start: tuple[int, Tensor] | None = None, reset_db: float = 0.0) -> Tensor:
    """Phases ``[B, F, T_a]`` for magnitudes ``mag`` from each bin's turn per hop beyond its own advance
    (``deviation``, radians), peak-locked (:func:`locked_phase`), frame 0's peaks starting from the phases of
    ``first`` (complex unit numbers ``[B, F, T_a]``). ``start``: ``(j, angles [B, F])``, the phases frame ``j``
    continues from instead (an earlier window's at the same frame); frames before ``j`` are integrated from frame 0
    as without it. ``reset_db`` > 0: where a bin's magnitude rises by more than that from one frame to the next
    (an attack), its phase starts afresh from ``first``'s at that frame."""
    k = torch.arange(mag.shape[1], device=mag.device, dtype=torch.float32)
    per_frame = (2 * math.pi * hop / n_fft) * k[None, :, None] + deviation
    floored = floored_log_mag(mag)
    per_bin = across_bins(floored, n_fft, hop)
    reset = None
    if reset_db > 0:
        rise = floored[..., 1:] - floored[..., :-1] > reset_db / 20 * math.log(10)
        reset = (F.pad(rise, (1, 0), value=False), torch.angle(first))
    j, angles = start if start is not None else (0, torch.angle(first[:, :, 0]))

    def part(s: slice, begin: Tensor) -> Tensor:
        return locked_phase(floored[..., s], per_frame[..., s], per_bin[..., s], start=begin,
                            reset=None if reset is None else (reset[0][..., s], reset[1][..., s]))

    parts = [] if j == 0 else [part(slice(0, j), torch.angle(first[:, :, 0]))]
    parts.append(part(slice(j, None), angles))
    return torch.cat(parts, -1)


def observed_deviation(spec: Tensor, n_fft: int, hop: int) -> Tensor:
    """Each bin's observed phase turn from frame ``t - 1`` to ``t`` beyond its own advance, wrapped to
    [-pi, pi): ``[B, F, T_a - 1]`` for a complex STFT ``spec [B, F, T_a]`` (:func:`stft_same`)."""
    k = torch.arange(spec.shape[1], device=spec.device, dtype=torch.float32)[None, :, None]
    turn = torch.angle(spec[:, :, 1:] * spec[:, :, :-1].conj()) - (2 * math.pi * hop / n_fft) * k
    return torch.remainder(turn + math.pi, 2 * math.pi) - math.pi


def frequency_deviation_loss(deviation: Tensor, spec: Tensor, n_fft: int, hop: int) -> Tensor:
    """How far predicted instantaneous frequencies are from the input's: ``deviation [B, F, T_a]``, each bin's
    predicted turn per hop beyond its own advance (radians), against the complex STFT ``spec [B, F, T_a]`` of the
    input (:func:`stft_same`). Per step from frame ``t - 1`` to ``t``, ``1 - cos`` of the difference between the
    mean of the two frames' predictions and the observed phase turn beyond the bin's advance, weighted by the
    geometric mean of the two frames' magnitudes (noise-only bins, whose observed turn is random, weigh little)."""
    observed = observed_deviation(spec, n_fft, hop)
    predicted = 0.5 * (deviation[:, :, 1:] + deviation[:, :, :-1])
    weight = (spec[:, :, 1:].abs() * spec[:, :, :-1].abs()).sqrt().detach()
    return (weight * (1 - torch.cos(predicted - observed))).sum() / weight.sum().clamp_min(1e-8)


def frame_level(mag: Tensor, estimate: str) -> Tensor:
    """Each frame's level from its magnitudes ``[B, F, T]`` (floored above 0) -> ``[B, 1, T]``: the mean log
    magnitude (``mean_log``) or the log RMS magnitude (``log_rms``); a gain g adds log g to either."""
    if estimate == "log_rms":
        return 0.5 * mag.square().mean(1, keepdim=True).log()
    return mag.log().mean(1, keepdim=True)
