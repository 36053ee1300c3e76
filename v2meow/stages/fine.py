"""Stage 3: coarse acoustic tokens -> fine acoustic tokens. Decoder-only, in short windows (3 s), each
optionally continuing the fine codes of the one before.

A model with ``fine_levels: 0`` has no stage 3: the codec decodes stage 2's coarse levels alone (the embedded
preset; docs/embedded-model.md has the measurement)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from v2meow.configbase import Config, check
from v2meow.generation import plan_windows
from v2meow.modules.transformer import TransformerConfig
from v2meow.sampling import Generators, SamplingConfig
from v2meow.stages.base import ProgressFn, TokenLM
from v2meow.timebase import units_in
from v2meow.tokenizers.patterns import FlatPattern


@dataclass
class FineStageConfig(Config):
    transformer: TransformerConfig = field(default_factory=lambda: TransformerConfig(encoder_layers=0))
    codebook_size: int = 1024
    coarse_levels: int = 4
    fine_levels: int = 4
    frame_rate: float = 50.0
    window_seconds: float = 3.0
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(temperature=0.4))

    def validate(self) -> None:
        check(self.transformer.encoder_layers == 0, "stage 3 is decoder-only: encoder_layers must be 0.")
        check(2 <= self.codebook_size <= 65536, "codebook_size must be in 2..65536.")
        check(1 <= self.coarse_levels <= 64 and 0 <= self.fine_levels <= 64,
              "coarse levels must be in 1..64 and fine levels in 0..64 (0: no stage 3).")
        check(0 < self.frame_rate <= 1000, "frame_rate must be in (0, 1000].")
        check(0 < self.window_seconds <= 60, "window_seconds must be in (0, 60].")
        need = self.window_frames * (self.coarse_levels + self.fine_levels) + 1
        check(need <= self.transformer.max_len,
              f"stage 3 max_len {self.transformer.max_len} cannot hold a {self.window_seconds} s window ({need}).")

    @property
    def window_frames(self) -> int:
        return units_in(self.window_seconds, self.frame_rate)


class FineStage(nn.Module):
    """Prefix: the window's coarse tokens (flattened). Target: its fine tokens (flattened)."""

    def __init__(self, cfg: FineStageConfig):
        super().__init__()
        self.cfg = cfg
        self.coarse = FlatPattern(cfg.coarse_levels, cfg.codebook_size)
        self.fine = FlatPattern(cfg.fine_levels, cfg.codebook_size, first_level=cfg.coarse_levels)
        self.lm = TokenLM(cfg.transformer, self.fine.vocab_size, prefix_vocab=self.coarse.vocab_size)

    @property
    def levels_per_frame(self) -> int:
        return self.cfg.fine_levels

    def allowed(self, positions: Tensor) -> Tensor:
        return self.fine.allowed_mask(positions)

    def loss(self, batch: dict) -> dict[str, Tensor]:
        """``batch``: acoustic [B, N_c + N_f, T] (a short crop), optional acoustic_valid [B, T]."""
        codes = batch["acoustic"]
        nc, nf = self.cfg.coarse_levels, self.cfg.fine_levels
        prefix = self.coarse.build(codes[:, :nc])
        target = self.fine.build(codes[:, nc: nc + nf])
        valid = batch.get("acoustic_valid")
        if valid is not None:
            valid = valid.bool().repeat_interleave(nf, dim=1)
        return self.lm.loss(target, valid, prefix=prefix, allowed=self.allowed)

    def generate(
        self,
        coarse: Tensor,
        sampling: SamplingConfig | None = None,
        generator: Generators | None = None,  # one, or one per batch row (v2meow.sampling.sample)
        progress: ProgressFn | None = None,
        use_cache: bool = True,
        prompt_frames: int = 0,
    ) -> Tensor:
        """Fine codes ``[B, N_f, T]`` for ``coarse [B, N_c, T]``, window by window.

        With ``prompt_frames`` > 0 each window after the first starts that many frames before the previous one
        ended and is prompted with the fine codes already written there (AudioLM-style continuation, the
        layout the stage trains on: the window's coarse codes as prefix, its fine codes from the window's
        start), so the fine levels run on across the seam instead of starting afresh every window."""
        total = coarse.shape[-1]
        nf = self.cfg.fine_levels
        steps_total = total * nf
        out = torch.zeros(coarse.shape[0], nf, total, dtype=torch.long, device=coarse.device)
        done = 0
        for a, pe, b in plan_windows(total, self.cfg.window_frames, prompt_frames):

            def step_progress(i: int, n: int, base: int = done) -> None:
                if progress is not None:
                    progress(base + i, steps_total)

            tokens = self.lm.generate(
                (b - pe) * nf, sampling or self.cfg.sampling, prefix=self.coarse.build(coarse[:, :, a:b]),
                prompt=self.fine.build(out[:, :, a:pe]) if pe > a else None,
                allowed=self.allowed, generator=generator, progress=step_progress, use_cache=use_cache,
            )
            done += tokens.shape[1]
            out[:, :, pe:b] = self.fine.revert(tokens)
        return out
