"""Shared part of the pretrained codec adapters (EnCodec, DAC over transformers' models).

A pretrained codec's config declares what the stages must agree with (sample rate, frame rate, levels used,
codebook size), so a model directory's parts can be checked against each other from ``config.json`` alone,
before anything is allocated; building the codec checks the network agrees with the declaration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from v2meow.configbase import Config, check
from v2meow.errors import ConfigError
from v2meow.pretrained import config_to_dict, hub_hint, load_hf_model, stable_config
from v2meow.tokenizers.codec.base import AcousticCodec, config_hash, weights_fingerprint


@dataclass
class PretrainedCodecConfig(Config):
    """Weights (``path``: local directory or hub id; or ``model_config``: random weights, tests) and the
    numbers the codec must have. ``num_levels`` is how many RVQ levels v2meow uses (coarse + fine)."""

    path: str | None = None
    model_config: dict[str, Any] | None = None
    sample_rate: int = 24000
    frame_rate: float = 75.0
    num_levels: int = 8
    codebook_size: int = 1024

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate / self.frame_rate)

    def validate(self) -> None:
        check(self.path is not None or self.model_config is not None,
              f"{type(self).__name__} needs a path to pretrained weights (or a model_config for tests).")
        check(self.path is None or (isinstance(self.path, str) and bool(self.path)), "codec path must be a string.")
        check(self.model_config is None or isinstance(self.model_config, dict), "codec model_config must be a mapping.")
        check(self.sample_rate > 0 and self.frame_rate > 0, "codec sample_rate and frame_rate must be > 0.")
        check(abs(self.sample_rate / self.hop_length - self.frame_rate) < 1e-3 * self.frame_rate,
              f"codec frame_rate {self.frame_rate:g} does not divide sample_rate {self.sample_rate} into whole hops.")
        check(1 <= self.num_levels <= 64, f"codec num_levels must be in 1..64, got {self.num_levels}.")
        check(2 <= self.codebook_size <= 65536, f"codec codebook_size must be in 2..65536, got {self.codebook_size}.")


class PretrainedCodec(AcousticCodec):
    """An :class:`AcousticCodec` over a frozen transformers codec model (subclasses fill in encode/decode)."""

    NAME = "pretrained-codec"
    VERSION = "1"
    WHAT = "codec"
    DEFAULT_HUB_ID = ""
    NETWORK = ("", "")  # the names of transformers' model and config classes

    def __init__(self, config: PretrainedCodecConfig, load_weights: bool = True) -> None:
        super().__init__()
        import transformers

        model_cls, config_cls = (getattr(transformers, name) for name in self.NETWORK)
        self.config = config
        hint = hub_hint(config.path, self.DEFAULT_HUB_ID, f"codec.{self.NAME}.path")
        self.model, _ = load_hf_model(model_cls, config_cls, config.path, config.model_config, load_weights,
                                      self.WHAT, hint)
        # Resolved: a saved model directory rebuilds the network from this, without the original path.
        config.model_config = config_to_dict(self.model.config)
        self._fingerprint: str | None = None
        self.register_load_state_dict_post_hook(lambda m, _k: setattr(m, "_fingerprint", None))
        self._check_network(self.model.config)

    def _check_network(self, m: Any) -> None:
        """Refuse a network (``m``: its transformers config) that does not fit the codec's config."""
        self.check_model(m.sampling_rate, m.hop_length, m.codebook_size, self._network_levels(m))

    def _network_levels(self, m: Any) -> int:
        """How many RVQ levels the network has."""
        raise NotImplementedError

    def check_model(self, sample_rate: int, hop_length: int, codebook_size: int, max_levels: int) -> None:
        """Refuse a network that does not have the numbers the config declares (one sentence)."""
        c = self.config
        got = {"sample_rate": sample_rate, "frame_rate": sample_rate / hop_length, "codebook_size": codebook_size}
        want = {"sample_rate": c.sample_rate, "frame_rate": c.frame_rate, "codebook_size": c.codebook_size}
        for key in got:
            if not math.isclose(float(got[key]), float(want[key]), rel_tol=1e-6):
                raise ConfigError(f"The {self.WHAT} has {key} {got[key]:g}, but codec.{self.NAME}.{key} says "
                                  f"{want[key]:g}.")
        if c.num_levels > max_levels:
            raise ConfigError(f"The {self.WHAT} has {max_levels} RVQ levels; codec.{self.NAME}.num_levels is "
                              f"{c.num_levels}.")

    def train(self, mode: bool = True) -> PretrainedCodec:
        return super().train(False)  # frozen: quantizer dropout and batch statistics must stay off

    def identity(self) -> dict[str, Any]:
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self.model)
        net = stable_config(self.config.model_config or {})
        return {
            "name": self.NAME,
            "version": self.VERSION,
            "source": self.config.path or "random-init",
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            "num_levels": self.num_levels,
            "codebook_size": self.codebook_size,
            "config_hash": config_hash(net),
            "weights": self._fingerprint,
        }

    def _levels(self, n_levels: int | None) -> int:
        n = self.num_levels if n_levels is None else int(n_levels)
        if not 1 <= n <= self.num_levels:
            raise ValueError(f"n_levels must be in [1, {self.num_levels}], got {n_levels}.")
        return n

    def _encode_padded(self, wav: Tensor, n_levels: int | None) -> Tensor:
        return self._encode_levels(wav[:, None, :].float(), self._levels(n_levels))

    def _encode_levels(self, wav: Tensor, n: int) -> Tensor:
        """``wav [B, 1, T_a * hop]`` (float) → codes ``[B, n, T_a]`` of the first ``n`` levels."""
        raise NotImplementedError

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, n, T_a]`` (first n levels) → ``wav [B, T_a * hop]``."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.num_levels:
            raise ValueError(f"codes must be [B, n <= {self.num_levels}, T_a], got shape {tuple(codes.shape)}.")
        return fit_length(self._decode_codes(codes.long()), codes.shape[-1] * self.hop_length)

    def _decode_codes(self, codes: Tensor) -> Tensor:
        """Codes ``[B, n, T_a]`` (long) → ``wav [B, T']`` (T' about ``T_a * hop``)."""
        raise NotImplementedError

    def forward(self, wav: Tensor) -> Tensor:  # nn.Module needs one; the codec is used through encode/decode
        return self.encode(wav)


def fit_length(wav: Tensor, n: int) -> Tensor:
    """Trim or zero-pad ``wav [B, T']`` to ``n`` samples (transposed convolutions may overshoot by a few)."""
    if wav.shape[-1] >= n:
        return wav[..., :n]
    return torch.nn.functional.pad(wav, (0, n - wav.shape[-1]))


__all__ = ["PretrainedCodecConfig", "PretrainedCodec", "fit_length"]
