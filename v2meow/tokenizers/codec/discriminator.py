"""Adversarial training of the codec: a multi-scale STFT discriminator (EnCodec's MS-STFTD, made small).

Each scale looks at the complex STFT (real and imaginary parts as two channels, so phase errors are visible)
through 2-D convolutions over (time, frequency) that stride along frequency and dilate along time. It returns
logits and the activations of every layer; the generator is trained with a hinge loss on the logits and an
L1 feature-matching loss on the activations (normalised by the real activations' mean magnitude, as EnCodec).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from v2meow.configbase import Config, check

__all__ = [
    "DiscriminatorConfig",
    "STFTDiscriminator",
    "MultiScaleSTFTDiscriminator",
    "discriminator_loss",
    "generator_adversarial_loss",
    "feature_matching_loss",
]


@dataclass
class DiscriminatorConfig(Config):
    """Multi-scale STFT discriminator: one sub-discriminator per ``n_ffts`` entry (hop ``n_fft // 4``)."""

    n_ffts: tuple[int, ...] = (1024, 512, 256)
    channels: int = 16
    dilations: tuple[int, ...] = (1, 2, 4)

    def validate(self) -> None:
        check(len(self.n_ffts) >= 1 and all(n >= 16 for n in self.n_ffts), "discriminator n_ffts must be >= 16.")
        check(self.channels >= 1, f"discriminator channels must be >= 1, got {self.channels}.")
        check(all(d >= 1 for d in self.dilations), "discriminator dilations must be >= 1.")


class STFTDiscriminator(nn.Module):
    """``wav [B, T]`` → (logits ``[B, 1, frames, bins']``, activations of every layer)."""

    def __init__(self, n_fft: int, channels: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = channels
        layers = [nn.Conv2d(2, c, (3, 9), padding=(1, 4))]
        for d in dilations:
            layers.append(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4)))
        layers.append(nn.Conv2d(c, c, (3, 3), padding=(1, 1)))
        self.layers = nn.ModuleList(layers)
        self.out = nn.Conv2d(c, 1, (3, 3), padding=(1, 1))

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        spec = torch.stft(wav.float(), self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        x = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # [B, 2, frames, bins]
        feats = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            feats.append(x)
        return self.out(x), feats


class MultiScaleSTFTDiscriminator(nn.Module):
    """Several :class:`STFTDiscriminator` at different resolutions. ``wav [B, T]`` → lists per scale."""

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or DiscriminatorConfig()
        self.scales = nn.ModuleList(STFTDiscriminator(n, c.channels, c.dilations) for n in c.n_ffts)

    def forward(self, wav: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        logits, feats = [], []
        for d in self.scales:
            lg, ft = d(wav)
            logits.append(lg)
            feats.append(ft)
        return logits, feats


def discriminator_loss(real: list[Tensor], fake: list[Tensor]) -> Tensor:
    """Hinge loss of the discriminator, averaged over scales."""
    total = real[0].new_zeros((), dtype=torch.float32)
    for r, f in zip(real, fake):
        total = total + F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean()
    return total / len(real)


def generator_adversarial_loss(fake: list[Tensor]) -> Tensor:
    """Hinge loss of the generator, averaged over scales."""
    return sum(F.relu(1 - f.float()).mean() for f in fake) / len(fake)


def feature_matching_loss(real: list[list[Tensor]], fake: list[list[Tensor]]) -> Tensor:
    """Mean over scales and layers of ``|f_fake - f_real|₁ / mean |f_real|`` (real activations detached)."""
    total, count = real[0][0].new_zeros((), dtype=torch.float32), 0
    for rs, fs in zip(real, fake):
        for r, f in zip(rs, fs):
            r = r.detach().float()
            total = total + (f.float() - r).abs().mean() / r.abs().mean().clamp_min(1e-5)
            count += 1
    return total / max(count, 1)
