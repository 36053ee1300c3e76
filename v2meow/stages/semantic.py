"""Stage 1: visual features (+ joint music-text embedding) -> semantic tokens. Encoder-decoder."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from v2meow.configbase import Config, check
from v2meow.modules.adaptors import StreamSpec
from v2meow.modules.transformer import TransformerConfig
from v2meow.sampling import Generators, SamplingConfig
from v2meow.stages.base import ProgressFn, TokenLM
from v2meow.timebase import units_in


def condition_streams(batch: dict, valid_key: str = "features_valid") -> tuple[dict, dict | None]:
    return batch["features"], batch.get(valid_key)


def drop_joint(joint_valid: Tensor, rate: float, training: bool) -> Tensor:
    """Randomly drop the joint embedding at ``rate`` during training, so the model also works without it."""
    if not training or rate <= 0:
        return joint_valid
    keep = torch.rand(joint_valid.shape, device=joint_valid.device) >= rate
    return joint_valid & keep


@dataclass
class SemanticStageConfig(Config):
    """Stage 1. ``streams`` are the visual features it reads (names and dims must match the encoders)."""

    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    vocab_size: int = 1024  # K_s, the semantic tokenizer's k-means size
    token_rate: float = 25.0  # semantic tokens per second
    streams: list[StreamSpec] = field(default_factory=list)
    joint_dim: int = 0  # 0: no text/audio conditioning
    cond_dropout: float = 0.1  # rate at which the joint embedding is dropped in training
    window_seconds: float = 10.0
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(temperature=1.0))

    def validate(self) -> None:
        check(self.transformer.encoder_layers > 0, "stage 1 is an encoder-decoder: encoder_layers must be > 0.")
        check(2 <= self.vocab_size <= 1_000_000, f"stage 1 vocab_size must be in 2..1000000, got {self.vocab_size}.")
        check(0 < self.token_rate <= 1000, f"token_rate must be in (0, 1000], got {self.token_rate}.")
        check(0 <= self.joint_dim <= 65536, f"joint_dim must be in 0..65536, got {self.joint_dim}.")
        check(0.0 <= self.cond_dropout <= 1.0, f"cond_dropout must be in [0, 1], got {self.cond_dropout}.")
        check(0 < self.window_seconds <= 600, f"window_seconds must be in (0, 600], got {self.window_seconds}.")
        check(self.window_tokens + 1 <= self.transformer.max_len,
              f"stage 1 max_len {self.transformer.max_len} cannot hold a window of {self.window_tokens} tokens.")

    @property
    def window_tokens(self) -> int:
        return units_in(self.window_seconds, self.token_rate)


class SemanticStage(nn.Module):
    """Encoder: visual streams + joint embedding position. Decoder: semantic tokens ``[B, T_s]``."""

    def __init__(self, cfg: SemanticStageConfig):
        super().__init__()
        self.cfg = cfg
        self.lm = TokenLM(cfg.transformer, cfg.vocab_size, streams=cfg.streams, joint_dim=cfg.joint_dim,
                          target_rate=cfg.token_rate)

    def encoder_input(
        self, features: dict[str, Tensor], features_valid: dict[str, Tensor] | None,
        joint: Tensor | None, joint_valid: Tensor | None,
    ):
        return self.lm.condition(features, features_valid, joint, joint_valid)

    def loss(self, batch: dict) -> dict[str, Tensor]:
        """``batch``: features {name: [B, T, D]}, optional features_valid, joint [B, D_m], joint_valid [B],
        semantic [B, T_s], optional semantic_valid [B, T_s]."""
        feats, fvalid = condition_streams(batch)
        joint = batch.get("joint") if self.cfg.joint_dim > 0 else None
        jvalid = None
        if joint is not None:
            jvalid = batch.get("joint_valid")
            jvalid = torch.ones(joint.shape[0], dtype=torch.bool, device=joint.device) if jvalid is None else jvalid
            jvalid = drop_joint(jvalid.bool(), self.cfg.cond_dropout, self.training)
        enc_in = self.encoder_input(feats, fvalid, joint, jvalid)
        return self.lm.loss(batch["semantic"], batch.get("semantic_valid"), enc_in=enc_in)

    def generate(
        self,
        features: dict[str, Tensor],
        num_tokens: int,
        joint: Tensor | None = None,
        prompt: Tensor | None = None,
        sampling: SamplingConfig | None = None,
        guidance: float = 1.0,
        generator: Generators | None = None,  # one, or one per batch row (v2meow.sampling.sample)
        progress: ProgressFn | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Semantic tokens ``[B, num_tokens]`` for ``features`` {name: [B, T, D]} and optional ``joint [B, D_m]``.

        ``guidance`` > 1 contrasts against the same video without the joint embedding."""
        joint = joint if self.cfg.joint_dim > 0 else None
        enc = self.encoder_input(features, None, joint, None)
        enc_u = self.encoder_input(features, None, None, None) if (joint is not None and guidance != 1.0) else None
        return self.lm.generate(
            num_tokens, sampling or self.cfg.sampling, prompt=prompt, enc_in=enc, enc_in_uncond=enc_u,
            guidance=guidance, generator=generator, progress=progress, use_cache=use_cache,
        )
