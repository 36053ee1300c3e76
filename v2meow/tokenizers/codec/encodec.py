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

    def __init__(self, config: EncodecCodecConfig, load_weights: bool = True) -> None:
        from transformers import EncodecConfig, EncodecModel

        super().__init__(config, EncodecModel, EncodecConfig, load_weights)
        m = self.model.config
        if m.chunk_length_s is not None or m.normalize or m.audio_channels != 1:
            raise ConfigError("This EnCodec checkpoint encodes in normalised or stereo chunks (encodec_48khz); use "
                              "facebook/encodec_24khz or facebook/encodec_32khz.")
        self.check_model(m.sampling_rate, m.hop_length, m.codebook_size, len(self.model.quantizer.layers))

    def _encode_padded(self, wav: Tensor, n_levels: int | None) -> Tensor:
        n = self._levels(n_levels)
        emb = self.model.encoder(wav[:, None, :].float())  # [B, D, T_a]
        codes, residual = [], emb
        # The RVQ of EncodecModel.encode, for exactly n levels (its bandwidths allow only a few level counts).
        for layer in self.model.quantizer.layers[:n]:
            idx = layer.encode(residual)  # [B, T_a]
            residual = residual - layer.decode(idx)
            codes.append(idx)
        return torch.stack(codes, dim=1)  # [B, n, T_a]

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, n, T_a]`` (first n levels) → ``wav [B, T_a * hop]``."""
        self._check_decode(codes)
        emb = self.model.quantizer.decode(codes.long().transpose(0, 1))  # [B, D, T_a]
        wav = self.model.decoder(emb)[:, 0]  # [B, T']
        return _fit_length(wav, codes.shape[-1] * self.hop_length)


def _fit_length(wav: Tensor, n: int) -> Tensor:
    """Trim or zero-pad ``wav [B, T']`` to ``n`` samples (transposed convolutions may overshoot by a few)."""
    if wav.shape[-1] >= n:
        return wav[..., :n]
    return torch.nn.functional.pad(wav, (0, n - wav.shape[-1]))
