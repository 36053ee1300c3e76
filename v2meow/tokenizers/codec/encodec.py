"""EnCodec (Défossez et al. 2022) as an :class:`AcousticCodec`, over transformers' ``EncodecModel``.

Checkpoints: ``facebook/encodec_24khz`` (24 kHz, 75 frames/s, 32 levels of 1024; bandwidths 1.5–24 kbps =
2–32 levels) and ``facebook/encodec_32khz`` (MusicGen's: 32 kHz, 50 frames/s, 4 levels of 2048). v2meow uses the
first ``num_levels`` levels (residual quantisation: the codes of a prefix do not depend on how many levels
follow). Audio is mono at the model's own rate; nothing is resampled here. Chunked checkpoints
(``encodec_48khz``: stereo, normalised, overlapping chunks) do not fit the ``[B, N_q, T_a]`` interface and are
refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from v2meow.errors import ConfigError
from v2meow.tokenizers.codec.pretrained import PretrainedCodec, PretrainedCodecConfig

DEFAULT_HUB_ID = "facebook/encodec_24khz"


@dataclass
class EncodecCodecConfig(PretrainedCodecConfig):
    """EnCodec. Defaults describe ``facebook/encodec_24khz`` at 6 kbps (8 levels)."""

    path: str | None = DEFAULT_HUB_ID
    sample_rate: int = 24000
    frame_rate: float = 75.0
    num_levels: int = 8
    codebook_size: int = 1024


class EncodecCodec(PretrainedCodec):
    """``wav [B, T]`` at ``sample_rate`` ↔ codes ``[B, num_levels, ceil(T / hop)]`` with a frozen EnCodec."""

    NAME = "encodec"
    VERSION = "1"
    WHAT = "EnCodec codec"
    DEFAULT_HUB_ID = DEFAULT_HUB_ID
    NETWORK = ("EncodecModel", "EncodecConfig")

    def _check_network(self, m: Any) -> None:
        if m.chunk_length_s is not None or m.normalize or m.audio_channels != 1:
            raise ConfigError("This EnCodec checkpoint encodes in normalised or stereo chunks (encodec_48khz); use "
                              "facebook/encodec_24khz or facebook/encodec_32khz.")
        super()._check_network(m)

    def _network_levels(self, m: Any) -> int:
        return len(self.model.quantizer.layers)

    def _encode_levels(self, wav: Tensor, n: int) -> Tensor:
        emb = self.model.encoder(wav)  # [B, D, T_a]
        codes, residual = [], emb
        # The RVQ of EncodecModel.encode, for exactly n levels (its bandwidths allow only a few level counts).
        for layer in self.model.quantizer.layers[:n]:
            idx = layer.encode(residual)  # [B, T_a]
            residual = residual - layer.decode(idx)
            codes.append(idx)
        return torch.stack(codes, dim=1)  # [B, n, T_a]

    def _decode_codes(self, codes: Tensor) -> Tensor:
        emb = self.model.quantizer.decode(codes.transpose(0, 1))  # [B, D, T_a]
        return self.model.decoder(emb)[:, 0]  # [B, T']
