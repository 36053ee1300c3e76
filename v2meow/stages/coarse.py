"""Stage 2: semantic tokens (+ visual features) -> coarse acoustic tokens.

Two variants (paper, "Stage 2"):
- ``encdec``: the encoder reads the visual features and the semantic tokens; the decoder writes the
  flattened coarse tokens.
- ``decoder``: AudioLM style, decoder-only, semantic tokens as a prefix; needs no video, so it can be
  trained on music alone.

Two token layouts (``layout``): ``flat`` (the paper's: one level per decoder step, ``levels`` steps a frame) and
``delay`` (MusicGen's, encdec only: every level in one step, level ``k`` written ``k`` steps after level 0 of the
same frame; :class:`v2meow.tokenizers.patterns.DelayPattern`).

``step_streams`` (encdec): visual streams that every decoder step also reads directly, the row at the time of the
frame it writes, added to its input (a beat clock there tells each step where in the visual beat it stands, which
cross-attention over the whole window did not learn to use).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from v2meow.configbase import Config, check
from v2meow.errors import ConfigError
from v2meow.modules.adaptors import StreamSpec
from v2meow.modules.transformer import TransformerConfig
from v2meow.sampling import Generators, SamplingConfig
from v2meow.stages.base import ProgressFn, TokenLM
from v2meow.timebase import units_in
from v2meow.tokenizers.patterns import DelayPattern, FlatPattern

VARIANTS = ("encdec", "decoder")
LAYOUTS = ("flat", "delay")
SEMANTIC_STREAM = "semantic"


@dataclass
class CoarseStageConfig(Config):
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    variant: str = "encdec"
    layout: str = "flat"
    semantic_vocab: int = 1024
    semantic_rate: float = 25.0
    codebook_size: int = 1024
    levels: int = 4  # N_c: the first N_c RVQ levels
    frame_rate: float = 50.0
    streams: list[StreamSpec] = field(default_factory=list)  # visual streams (encdec only)
    window_seconds: float = 10.0
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(temperature=0.95))
    # encdec: in training, the visual streams of a crop are dropped at this rate (the semantic tokens stay), so
    # the stage also writes music without the picture and generation can guide towards the picture's effect:
    # logits = no_video + video_guidance * (video - no_video). 1 = off.
    video_dropout: float = 0.0
    video_guidance: float = 1.0
    step_streams: list[str] = field(default_factory=list)  # visual streams added to every decoder step (encdec)

    def validate(self) -> None:
        check(self.variant in VARIANTS, f"stage 2 variant must be one of {VARIANTS}, got {self.variant!r}.")
        check(self.layout in LAYOUTS, f"stage 2 layout must be one of {LAYOUTS}, got {self.layout!r}.")
        check(self.layout == "flat" or self.variant == "encdec", "the delay layout needs the encdec variant.")
        if self.variant == "encdec":
            check(self.transformer.encoder_layers > 0, "stage 2 encdec needs encoder_layers > 0.")
            check(all(s.name != SEMANTIC_STREAM for s in self.streams),
                  f"{SEMANTIC_STREAM!r} is reserved for the semantic tokens.")
        else:
            check(self.transformer.encoder_layers == 0, "stage 2 'decoder' variant must have encoder_layers = 0.")
        check(len(set(self.step_streams)) == len(self.step_streams), "stage 2 step_streams must be distinct.")
        if self.streams:  # empty until the encoders resolve them; the stage checks again when built
            self.step_dim()
        check(not self.step_streams or self.variant == "encdec", "step_streams need the encdec variant.")
        check(0.0 <= self.video_dropout < 1.0, f"video_dropout must be in [0, 1), got {self.video_dropout}.")
        check(0.0 < self.video_guidance <= 20.0, f"video_guidance must be in (0, 20], got {self.video_guidance}.")
        check(self.video_guidance == 1.0 or self.variant == "encdec", "video_guidance needs the encdec variant.")
        check(2 <= self.semantic_vocab <= 1_000_000, "semantic_vocab must be in 2..1000000.")
        check(2 <= self.codebook_size <= 65536, "codebook_size must be in 2..65536.")
        check(1 <= self.levels <= 64, f"levels must be in 1..64, got {self.levels}.")
        check(0 < self.frame_rate <= 1000 and 0 < self.semantic_rate <= 1000, "rates must be in (0, 1000].")
        check(0 < self.window_seconds <= 600, "window_seconds must be in (0, 600].")
        prefix = self.window_semantic if self.variant == "decoder" else 0
        steps = self.window_frames * self.levels if self.layout == "flat" else self.window_frames + self.levels - 1
        check(prefix + 1 + steps <= self.transformer.max_len,
              f"stage 2 max_len {self.transformer.max_len} cannot hold a {self.window_seconds} s window.")

    def step_dim(self) -> int:
        """The width of what every decoder step reads from ``step_streams``; refused when one is not a stream."""
        dims = {s.name: s.dim for s in self.streams}
        if any(n not in dims for n in self.step_streams):
            raise ConfigError(f"stage 2 step_streams {self.step_streams} must name its streams {list(dims)}.")
        return sum(dims[n] for n in self.step_streams)

    @property
    def window_frames(self) -> int:
        return units_in(self.window_seconds, self.frame_rate)

    @property
    def window_semantic(self) -> int:
        return units_in(self.window_seconds, self.semantic_rate)


class CoarseStage(nn.Module):
    def __init__(self, cfg: CoarseStageConfig):
        super().__init__()
        self.cfg = cfg
        self.pattern = (FlatPattern(cfg.levels, cfg.codebook_size) if cfg.layout == "flat"
                        else DelayPattern(cfg.levels, cfg.codebook_size))
        if cfg.variant == "encdec":
            streams = list(cfg.streams) + [
                StreamSpec(name=SEMANTIC_STREAM, dim=cfg.semantic_vocab, rate=cfg.semantic_rate, kind="tokens")
            ]
            # flat: target j is frame j // levels, at about j / (frame_rate * levels) seconds; delay: step s
            # holds level 0 of frame s, at s / frame_rate seconds
            k = self.pattern.tokens_per_step
            self.lm = TokenLM(cfg.transformer, self.pattern.vocab_size, streams=streams,
                              target_rate=cfg.frame_rate * cfg.levels / k, tokens_per_step=k,
                              step_dim=cfg.step_dim())
        else:
            self.lm = TokenLM(cfg.transformer, self.pattern.vocab_size, prefix_vocab=cfg.semantic_vocab)

    @property
    def levels_per_frame(self) -> int:
        """Target tokens cycle through this many codec levels (validation reports a loss per level)."""
        return self.cfg.levels

    def allowed(self, positions: Tensor) -> Tensor:
        return self.pattern.allowed_mask(positions)

    def _inputs(self, semantic: Tensor, features: dict | None, features_valid: dict | None, sem_valid=None,
                keep_video: Tensor | None = None):
        """The stage's inputs; ``keep_video [B]`` False hides a row's visual streams (its semantic tokens stay)."""
        if self.cfg.variant == "decoder":
            return {"prefix": semantic}
        streams = dict(features or {})
        streams[SEMANTIC_STREAM] = semantic
        valid = dict(features_valid or {})
        if keep_video is not None:
            for name, x in streams.items():
                if name != SEMANTIC_STREAM:
                    v = valid.get(name)
                    v = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if v is None else v.bool()
                    valid[name] = v & keep_video[:, None].to(x.device)
        if sem_valid is not None:
            valid[SEMANTIC_STREAM] = sem_valid
        return {"enc_in": self.lm.condition(streams, valid or None)}

    def _steps(self, positions: int, features: dict | None, features_valid: dict | None = None,
               keep_video: Tensor | None = None) -> Tensor | None:
        """``step_in [B, positions, D]``: for decoder position ``p`` (which writes target step ``p``, at
        ``p / target_rate`` s) the row of each step stream at that time, zero where the row is not valid or the
        picture is hidden; None without step streams."""
        if not self.cfg.step_streams:
            return None
        rates = {s.name: s.rate for s in self.cfg.streams}
        cols = []
        for name in self.cfg.step_streams:
            x = (features or {}).get(name)
            if x is None:
                raise ValueError(f"stage 2 reads the {name!r} stream at every step; it is missing")
            t = torch.arange(positions, dtype=torch.float64) * (rates[name] / self.lm.target_rate)
            idx = torch.floor(t + 1e-9).long().clamp(max=x.shape[1] - 1).to(x.device)
            row = x[:, idx].float()
            v = (features_valid or {}).get(name)
            if v is not None:
                row = row * v[:, idx].to(row.dtype)[..., None]
            cols.append(row)
        out = torch.cat(cols, -1)
        if keep_video is not None:
            out = out * keep_video.to(out.device, out.dtype)[:, None, None]
        return out

    def loss(self, batch: dict) -> dict[str, Tensor]:
        """``batch``: semantic [B, T_s], acoustic [B, N_q >= levels, T_a], optional acoustic_valid [B, T_a],
        and for ``encdec`` features {name: [B, T, D]}."""
        codes = batch["acoustic"][:, : self.cfg.levels]
        target = self.pattern.build(codes)  # [B, T_a * N_c] (flat) or [B, (T_a + N_c - 1) * N_c] (delay)
        valid = batch.get("acoustic_valid")
        if isinstance(self.pattern, DelayPattern):  # pads are not learnt: the layout fixes them
            frames = codes.new_ones(codes.shape, dtype=torch.bool) if valid is None else \
                valid.bool()[:, None, :].expand_as(codes)
            valid = self.pattern.build_mask(frames)
        elif valid is not None:
            valid = valid.bool().repeat_interleave(self.cfg.levels, dim=1)
        keep = None
        if self.training and self.cfg.video_dropout > 0 and self.cfg.variant == "encdec":
            keep = torch.rand(codes.shape[0], device=codes.device) >= self.cfg.video_dropout
        kw = self._inputs(batch["semantic"], batch.get("features"), batch.get("features_valid"),
                          batch.get("semantic_valid"), keep_video=keep)
        steps = self._steps(target.shape[1] // self.pattern.tokens_per_step, batch.get("features"),
                            batch.get("features_valid"), keep)
        return self.lm.loss(target, valid, allowed=self.allowed, step_in=steps, **kw)

    def generate(
        self,
        semantic: Tensor,
        num_frames: int,
        features: dict[str, Tensor] | None = None,
        prompt_codes: Tensor | None = None,
        sampling: SamplingConfig | None = None,
        generator: Generators | None = None,  # one, or one per batch row (v2meow.sampling.sample)
        progress: ProgressFn | None = None,
        use_cache: bool = True,
        video_guidance: float | None = None,
    ) -> Tensor:
        """Coarse codes ``[B, N_c, num_frames]`` for ``semantic [B, T_s]``; ``prompt_codes [B, N_c, m]``
        are earlier frames to continue from (not returned). ``video_guidance`` (default: the config's) above 1
        contrasts against the same semantic tokens without the picture."""
        g = self.cfg.video_guidance if video_guidance is None else video_guidance
        kw = self._inputs(semantic, features, None)
        if g != 1.0 and self.cfg.variant == "encdec" and features:
            hidden = torch.zeros(semantic.shape[0], dtype=torch.bool)
            kw["enc_in_uncond"] = self._inputs(semantic, features, None, keep_video=hidden)["enc_in"]
            kw["guidance"] = g
        if self.cfg.step_streams:  # one row per decoder position: the prompt's frames and the new ones
            m = 0 if prompt_codes is None else prompt_codes.shape[2]
            positions = (m + num_frames + self.cfg.levels - 1 if isinstance(self.pattern, DelayPattern)
                         else (m + num_frames) * self.cfg.levels)
            kw["step_in"] = self._steps(positions, features)
        if isinstance(self.pattern, DelayPattern):
            return self._generate_delayed(num_frames, prompt_codes, sampling, generator, progress, use_cache, kw)
        prompt = self.pattern.build(prompt_codes) if prompt_codes is not None else None
        tokens = self.lm.generate(
            num_frames * self.cfg.levels, sampling or self.cfg.sampling, prompt=prompt,
            allowed=self.allowed, generator=generator, progress=progress, use_cache=use_cache, **kw,
        )
        return self.pattern.revert(tokens)

    def _generate_delayed(self, num_frames, prompt_codes, sampling, generator, progress, use_cache, kw) -> Tensor:
        """The delay layout over the prompt's ``m`` frames and the ``num_frames`` new ones: the first ``m`` steps
        (prompt codes only) are the LM's prompt; every later step is sampled, except its pads and the prompt's
        higher levels that still stand in it, which are forced."""
        p, n = self.pattern, self.cfg.levels
        b = kw["enc_in"][0].shape[0]
        m = 0 if prompt_codes is None else prompt_codes.shape[2]
        old = torch.zeros(b, n, m, dtype=torch.long) if prompt_codes is None else prompt_codes.long().cpu()
        frames = torch.cat([old, torch.zeros(b, n, num_frames, dtype=torch.long)], 2)
        grid = p.build(frames)  # [B, S * N]: the prompt's codes, zeros for the new frames, pads
        new = p.build_mask(torch.cat([torch.zeros(b, n, m, dtype=torch.bool),
                                      torch.ones(b, n, num_frames, dtype=torch.bool)], 2))
        forced = torch.where(new, torch.full_like(grid, -1), grid)  # all but the new frames' codes
        tokens = self.lm.generate(
            grid.shape[1] - m * n, sampling or self.cfg.sampling, prompt=grid[:, : m * n] if m else None,
            allowed=self.allowed, generator=generator, progress=progress, use_cache=use_cache,
            forced=forced[:, m * n :], **kw,
        )
        return p.revert(torch.cat([grid[:, : m * n], tokens.cpu()], 1))[:, :, m:]
