"""DAC, the Descript Audio Codec (Kumar et al. 2023, improved RVQGAN), as an :class:`AcousticCodec`.

Over transformers' ``DacModel``. Checkpoints: ``descript/dac_16khz`` (16 kHz, hop 320 = 50 frames/s, 12 levels of
1024: the SoundStream setting of the paper), ``descript/dac_24khz`` (24 kHz, 75 frames/s, 32 levels) and
``descript/dac_44khz`` (44.1 kHz, hop 512 ≈ 86.13 frames/s, 9 levels). v2meow uses the first ``num_levels``
levels; audio is mono at the model's own rate, never resampled here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from v2meow.tokenizers.codec.pretrained import PretrainedCodec, PretrainedCodecConfig

DEFAULT_HUB_ID = "descript/dac_16khz"


@dataclass
class DacCodecConfig(PretrainedCodecConfig):
    """DAC. Defaults describe ``descript/dac_16khz`` with all 12 levels."""

    path: str | None = DEFAULT_HUB_ID
    sample_rate: int = 16000
    frame_rate: float = 50.0
    num_levels: int = 12
    codebook_size: int = 1024


class DacCodec(PretrainedCodec):
    """``wav [B, T]`` at ``sample_rate`` ↔ codes ``[B, num_levels, ceil(T / hop)]`` with a frozen DAC."""

    NAME = "dac"
    VERSION = "1"
    WHAT = "DAC codec"
    DEFAULT_HUB_ID = DEFAULT_HUB_ID
    NETWORK = ("DacModel", "DacConfig")

    def _network_levels(self, m: Any) -> int:
        return m.n_codebooks

    def _encode_levels(self, wav: Tensor, n: int) -> Tensor:
        codes = self.model.encode(wav, n_quantizers=n, return_dict=True).audio_codes[:, :n]  # [B, n, T_a']
        return _fit_frames(codes, wav.shape[-1] // self.hop_length)

    def _decode_codes(self, codes: Tensor) -> Tensor:
        wav = self.model.decode(audio_codes=codes, return_dict=True).audio_values  # [B, T']
        return wav[:, 0] if wav.dim() == 3 else wav


def _fit_frames(codes: Tensor, n: int) -> Tensor:
    """``[B, L, T']`` → ``[B, L, n]``: DAC's unpadded convolutions may give a frame more or fewer."""
    if codes.shape[-1] >= n:
        return codes[..., :n]
    return torch.cat([codes, codes[..., -1:].expand(-1, -1, n - codes.shape[-1])], dim=-1)
