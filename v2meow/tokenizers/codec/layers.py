"""Building blocks of the acoustic codec's networks: length-keeping convolutions, SoundStream's residual units,
and the ConvNeXt blocks of the frame-rate body."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SameConv1d", "TrimConvTranspose1d", "ResidualUnit", "ChannelNorm", "ConvNeXtBlock"]


class SameConv1d(nn.Conv1d):
    """Conv1d whose padding makes ``T_out = T / stride`` (``T`` a multiple of the stride); causal pads left only."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        dilation: int = 1,
        causal: bool = False,
        groups: int = 1,
    ) -> None:
        super().__init__(cin, cout, kernel, stride=stride, dilation=dilation, groups=groups)
        total = dilation * (kernel - 1) - (stride - 1)
        left = total if causal else total // 2
        self.pad = (left, total - left)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, self.pad))


class TrimConvTranspose1d(nn.ConvTranspose1d):
    """Kernel ``2 s``, stride ``s``: ``T_out = T * s``, trimming the overhang (all on the right when causal)."""

    def __init__(self, cin: int, cout: int, stride: int, causal: bool) -> None:
        super().__init__(cin, cout, 2 * stride, stride=stride)
        left = 0 if causal else stride // 2
        self.trim = (left, stride - left)

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)  # [B, C, T*s + s]
        return y[..., self.trim[0] : y.shape[-1] - self.trim[1]]


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, dilation: int, kernel: int, causal: bool) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ELU(),
            SameConv1d(channels, channels, kernel, dilation=dilation, causal=causal),
            nn.ELU(),
            SameConv1d(channels, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of ``[B, C, T]``."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (time mixing) → LayerNorm → MLP (channel mixing) → layer scale, residual. ``[B, C, T]``."""

    def __init__(self, dim: int, causal: bool, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = SameConv1d(dim, dim, 7, causal=causal, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(self.dwconv(x).transpose(1, 2))  # [B, T, C]
        return x + (self.gamma * self.mlp(y)).transpose(1, 2)
