"""DAC, the Descript Audio Codec (Kumar et al. 2023, improved RVQGAN), as an :class:`AcousticCodec`.

Over transformers' ``DacModel``. Checkpoints: ``descript/dac_16khz`` (16 kHz, hop 320 = 50 frames/s, 12 levels of
1024: the SoundStream setting of the paper), ``descript/dac_24khz`` (24 kHz, 75 frames/s, 32 levels) and
``descript/dac_44khz`` (44.1 kHz, hop 512 ≈ 86.13 frames/s, 9 levels). v2meow uses the first ``num_levels``
levels; audio is mono at the model's own rate, never resampled here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from v2meow.tokenizers.codec.encodec import _fit_length
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

    def __init__(self, config: DacCodecConfig, load_weights: bool = True) -> None:
        from transformers import DacConfig, DacModel

        super().__init__(config, DacModel, DacConfig, load_weights)
        m = self.model.config
        self.check_model(m.sampling_rate, m.hop_length, m.codebook_size, m.n_codebooks)

    def _encode_padded(self, wav: Tensor, n_levels: int | None) -> Tensor:
        n = self._levels(n_levels)
        out = self.model.encode(wav[:, None, :].float(), n_quantizers=n, return_dict=True)
        codes = out.audio_codes[:, :n]  # [B, n, T_a']
        return _fit_frames(codes, wav.shape[-1] // self.hop_length)

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, n, T_a]`` (first n levels) → ``wav [B, T_a * hop]``."""
        self._check_decode(codes)
        wav = self.model.decode(audio_codes=codes.long(), return_dict=True).audio_values  # [B, T']
        if wav.dim() == 3:
            wav = wav[:, 0]
        return _fit_length(wav, codes.shape[-1] * self.hop_length)


def _fit_frames(codes: Tensor, n: int) -> Tensor:
    """``[B, L, T']`` → ``[B, L, n]``: DAC's unpadded convolutions may give a frame more or fewer."""
    if codes.shape[-1] >= n:
        return codes[..., :n]
    return torch.cat([codes, codes[..., -1:].expand(-1, -1, n - codes.shape[-1])], dim=-1)
