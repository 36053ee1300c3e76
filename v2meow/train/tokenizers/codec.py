"""Training the SoundStream codec (see :func:`train_codec`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from v2meow.configbase import Config, check
from v2meow.errors import UserError
from v2meow.tokenizers.codec.discriminator import (
    DiscriminatorConfig,
    MultiScaleSTFTDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from v2meow.tokenizers.codec.losses import OnsetEnvelopeLoss
from v2meow.tokenizers.codec.soundstream import SoundStream, SoundStreamConfig
from v2meow.train.checkpoint import latest_checkpoint
from v2meow.train.core import latest_of_kind
from v2meow.train.tokenizers.common import (
    PRECISIONS,
    _load_train_config,
    _StepTrainer,
    random_band_limits,
    random_levels,
)

TRAIN_PARTS = ("all", "decoder", "frequency")


@dataclass
class CodecTrainConfig(Config):
    """How to train a :class:`SoundStream` (YAML: ``v2meow/configs/embedded/codec.yaml``)."""

    codec: SoundStreamConfig = field(default_factory=SoundStreamConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    batch_size: int = 8
    crop_seconds: float = 1.0
    # gain augmentation: every crop (validation crops too) scaled to an RMS level drawn uniformly in this range of
    # dBFS, its peak kept below full scale, so the codec learns to be level-linear; [] turns it off
    level_dbfs: tuple[float, ...] = (-42.0, -8.0)
    # band augmentation: this share of the crops (validation crops too) is low-passed at a cutoff drawn uniformly
    # in [low, high] Hz, as music resampled from 44.1 or 48 kHz, or through a lossy codec, reaches the codec: its
    # top band empty; [] turns it off
    band_limit_hz: tuple[float, ...] = ()
    band_limit_share: float = 0.5
    lr: float = 1e-3
    disc_lr: float = 5e-4
    betas: tuple[float, ...] = (0.8, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 200
    max_steps: int = 10000
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    # adversarial part: off until disc_start_step (reconstruction first, then realism); 0 weights turn it off
    disc_start_step: int = 1000
    adv_weight: float = 0.25
    feature_weight: float = 0.5
    disc_crop_seconds: float = 0.0  # the discriminator sees a random sub-crop of this length (0: the whole crop)
    # L1 between the onset-strength envelopes of the reconstruction and the input (OnsetEnvelopeLoss): keeps the
    # attacks, and so the beats, where the codes put them (0: off)
    onset_weight: float = 0.0
    eval_every: int = 250
    eval_crops: int = 8
    eval_seconds: float = 2.0
    log_every: int = 25
    checkpoint_every: int = 500
    checkpoint_minutes: float = 5.0  # also checkpoint when this much wall time passed since the last one
    keep_checkpoints: int = 2
    max_skipped_in_a_row: int = 25
    seed: int = 0
    threads: int = 2  # torch intra-op threads on a CPU (0: leave torch's default)
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    # "all" trains the whole codec; "decoder" keeps the encoder and the codebooks as they are (warm-started from a
    # trained codec) and trains only the decoder: every token the stages learnt from stays the same, so a better
    # decoder ships without re-extracting or retraining anything; "frequency" trains only the decoder's frequency
    # head (phase_head: frequency), so everything the codec rendered before stays but the phase where the head reaches
    train_parts: str = "all"

    def validate(self) -> None:
        check(self.batch_size >= 1 and self.crop_seconds > 0, "batch_size must be >= 1 and crop_seconds > 0.")
        check(len(self.level_dbfs) == 0 or (len(self.level_dbfs) == 2 and self.level_dbfs[0] <= self.level_dbfs[1]
                                            and self.level_dbfs[1] <= 0),
              f"level_dbfs must be [] or [low, high] with low <= high <= 0 dBFS, got {list(self.level_dbfs)}.")
        check(len(self.band_limit_hz) == 0 or (len(self.band_limit_hz) == 2
                                                and 0 < self.band_limit_hz[0] <= self.band_limit_hz[1]),
              f"band_limit_hz must be [] or [low, high] Hz with 0 < low <= high, got {list(self.band_limit_hz)}.")
        check(0.0 <= self.band_limit_share <= 1.0, "band_limit_share must be in [0, 1].")
        check(self.onset_weight >= 0, f"onset_weight must be >= 0, got {self.onset_weight}.")
        check(0 < self.lr <= 1 and 0 < self.disc_lr <= 1, "lr and disc_lr must be in (0, 1].")
        check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas must be two numbers in [0, 1).")
        check(self.warmup_steps >= 0 and self.max_steps >= 1, "warmup_steps must be >= 0 and max_steps >= 1.")
        check(0 <= self.min_lr_ratio <= 1 and self.grad_clip >= 0, "min_lr_ratio in [0, 1], grad_clip >= 0.")
        check(self.disc_start_step >= 0 and self.adv_weight >= 0 and self.feature_weight >= 0,
              "disc_start_step, adv_weight and feature_weight must be >= 0.")
        check(self.disc_crop_seconds >= 0, "disc_crop_seconds must be >= 0.")
        check(min(self.eval_every, self.log_every, self.checkpoint_every, self.keep_checkpoints) >= 1,
              "eval_every, log_every, checkpoint_every and keep_checkpoints must be >= 1.")
        check(self.eval_crops >= 1 and self.eval_seconds > 0, "eval_crops must be >= 1 and eval_seconds > 0.")
        check(self.checkpoint_minutes > 0 and self.max_skipped_in_a_row >= 1, "checkpoint_minutes must be > 0.")
        check(self.threads >= 0 and self.precision in PRECISIONS, f"threads >= 0, precision one of {PRECISIONS}.")
        check(self.train_parts in TRAIN_PARTS, f"train_parts must be one of {TRAIN_PARTS}, got {self.train_parts!r}.")
        check(self.train_parts != "frequency" or self.codec.phase_head == "frequency",
              "train_parts 'frequency' trains the frequency head: it needs codec.phase_head 'frequency'.")

    @property
    def uses_discriminator(self) -> bool:
        return self.adv_weight > 0 or self.feature_weight > 0


def _merge_optimizers(named: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
    """Several optimizers' state dicts as one (parameter ids offset per optimizer, groups tagged with owners)."""
    state: dict[int, Any] = {}
    groups: list[dict[str, Any]] = []
    for n, (name, opt) in enumerate(named.items()):
        sd = opt.state_dict()
        offset = n * 1_000_000
        state.update({pid + offset: st for pid, st in sd["state"].items()})
        for g in sd["param_groups"]:
            groups.append({**g, "params": [p + offset for p in g["params"]], "owner": name})
    return {"state": state, "param_groups": groups}


def _split_optimizers(merged: dict[str, Any], names: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for n, name in enumerate(names):
        offset = n * 1_000_000
        groups = []
        for g in merged["param_groups"]:
            if g.get("owner") == name:
                g = {k: v for k, v in g.items() if k != "owner"}
                g["params"] = [p - offset for p in g["params"]]
                groups.append(g)
        ids = {p for g in groups for p in g["params"]}
        state = {pid - offset: st for pid, st in merged["state"].items() if pid - offset in ids}
        out[name] = {"state": state, "param_groups": groups}
    return out


class CodecTrainer(_StepTrainer):
    """Trains a codec (and its discriminator) on random crops of an audio folder; see :func:`train_codec`."""

    KIND = "codec"
    WHAT = "a codec"
    DESC = "train codec"
    PARTS = ("codec", "discriminator")

    def _build(self) -> None:
        cfg = self.cfg
        self.codec = SoundStream(cfg.codec).to(self.device)
        self.disc = MultiScaleSTFTDiscriminator(cfg.discriminator).to(self.device)
        self.onset_loss = OnsetEnvelopeLoss(cfg.codec.sample_rate).to(self.device)
        kw = dict(betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, foreach=False)
        if cfg.train_parts == "decoder":
            self.codec.encoder.requires_grad_(False)
            self.codec.quantizer.requires_grad_(False)
        elif cfg.train_parts == "frequency":  # only the frequency head: the codec's sound stays, save the low band
            self.codec.requires_grad_(False)
            self.codec.decoder.freq.requires_grad_(True)
        trained = [p for p in self.codec.parameters() if p.requires_grad]
        self.opt_g = torch.optim.AdamW(trained, lr=cfg.lr, **kw)
        self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=cfg.disc_lr, **kw)

    def _prepare(self) -> None:
        self.skipped = 0
        self.skipped_in_a_row = 0
        n = round(self.cfg.eval_seconds * self.cfg.codec.sample_rate)
        # Validation crops: fixed, from training files (held-out music is for the benchmark only).
        self.val = self._crops(self._rng(0, stream=1), self.cfg.eval_crops, n)

    def _crops(self, rng: np.random.Generator, count: int, num: int) -> Tensor:
        """``[count, num]`` random crops at random levels (:attr:`CodecTrainConfig.level_dbfs`)."""
        wav = self.data.batch(rng, count, num)
        if self.cfg.band_limit_hz:
            wav = random_band_limits(wav, rng, self.cfg.codec.sample_rate, *self.cfg.band_limit_hz,
                                     share=self.cfg.band_limit_share)
        if self.cfg.level_dbfs:
            wav = random_levels(wav, rng, *self.cfg.level_dbfs)
        return wav

    # -- checkpoints ------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {**self._state(), "skipped": self.skipped}

    def _checkpoint(self) -> tuple[dict[str, Any], dict[str, Any]]:
        model = {f"codec.{k}": v for k, v in self.codec.state_dict().items()}
        model.update({f"disc.{k}": v for k, v in self.disc.state_dict().items()})
        return model, _merge_optimizers({"g": self.opt_g, "d": self.opt_d})

    def _restore(self, ck: dict[str, Any]) -> None:
        self.codec.load_state_dict({k[6:]: v for k, v in ck["model"].items() if k.startswith("codec.")})
        self.disc.load_state_dict({k[5:]: v for k, v in ck["model"].items() if k.startswith("disc.")})
        opts = _split_optimizers(ck["optimizer"], ["g", "d"])
        self.opt_g.load_state_dict(opts["g"])
        self.opt_d.load_state_dict(opts["d"])
        self.skipped = int(ck["state"].get("skipped", 0))

    def init_from(self, run_dir: str | os.PathLike) -> list[str]:
        """Start from the codec weights of another codec run's latest checkpoint, or of a tokenizer directory's
        codec (a warm start for a design change). Parameters the other codec lacks keep their initial values; their
        names are returned. The optimiser, the discriminator and the step count start afresh."""
        if self.step:
            raise UserError(f"{self.run_dir} has already trained {self.step} steps: a warm start only begins a run.")
        if latest_checkpoint(run_dir) is None and (Path(run_dir) / "tokenizers.json").is_file():
            from v2meow.tokenizers.default import load_tokenizers

            other = load_tokenizers(run_dir).codec  # a tokenizer directory (the shipped one): its codec
        else:
            other, _ = load_codec_run(run_dir)
        missing, unexpected = self.codec.load_state_dict(other.state_dict(), strict=False)
        if unexpected:
            raise UserError(f"The codec of {run_dir} has weights this codec lacks ({', '.join(unexpected[:3])}...): "
                            "its design is not a subset of this one.")
        return list(missing)

    # -- one step ---------------------------------------------------------------------------------------------
    def _decode_frozen_codes(self, wav: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """The decoder-only training pass: codes from the frozen encoder and codebooks (no state changes, the
        level count drawn as quantiser dropout draws it), decoded with gradients into the decoder only."""
        codec = self.codec
        codec.encoder.eval()
        codec.quantizer.eval()
        with torch.no_grad():
            padded = codec.pad_to_hop(wav)
            codes = codec.quantizer.encode(codec.encoder(padded), codec.quantizer._training_levels())
            quantized = codec.quantizer.decode(codes)
        zero = padded.new_zeros(())
        losses = {"commitment": zero, "codebook": zero}
        recon = codec.decode_for_training(quantized, padded, losses)[:, : wav.shape[-1]]
        return recon, codes, losses

    def _disc_view(self, real: Tensor, fake: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        n = round(self.cfg.disc_crop_seconds * self.cfg.codec.sample_rate)
        if n <= 0 or n >= real.shape[-1]:
            return real, fake
        start = int(rng.integers(0, real.shape[-1] - n + 1))
        return real[:, start : start + n], fake[:, start : start + n]

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        lr_scale = self._lr(1.0)
        for g in self.opt_g.param_groups:
            g["lr"] = cfg.lr * lr_scale
        for g in self.opt_d.param_groups:
            g["lr"] = cfg.disc_lr * lr_scale
        rng = self._rng(self.step)
        wav = self._crops(rng, cfg.batch_size, round(cfg.crop_seconds * cfg.codec.sample_rate)).to(self.device)
        self._reseed()
        self.codec.train()
        self.disc.train()
        # The quantiser's EMA buffers change inside the forward pass: keep a copy to undo a non-finite step.
        before = {k: v.clone() for k, v in self.codec.quantizer.named_buffers()}
        stats: dict[str, float] = {}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            if cfg.train_parts != "all":
                recon, codes, q_losses = self._decode_frozen_codes(wav)
            else:
                recon, codes, q_losses = self.codec(wav)
        recon = recon.float()
        loss, parts = self.codec.reconstruction_loss(recon, wav, q_losses)
        if cfg.onset_weight > 0:
            parts["onset"] = self.onset_loss(recon, wav)
            loss = loss + cfg.onset_weight * parts["onset"]
        stats.update({k: v.item() for k, v in parts.items() if k != "codebook"}, levels=float(codes.shape[1]))
        adversarial = cfg.uses_discriminator and self.step >= cfg.disc_start_step
        ok = bool(torch.isfinite(loss))
        if adversarial and ok:
            real_d, fake_d = self._disc_view(wav, recon, rng)
            # discriminator step, on the reconstruction as it is now (no gradient into the codec)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                real_logits, real_feats = self.disc(real_d)
                fake_logits, _ = self.disc(fake_d.detach())
            d_loss = discriminator_loss(real_logits, fake_logits)
            if torch.isfinite(d_loss):
                self.opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                d_norm = nn.utils.clip_grad_norm_(self.disc.parameters(), cfg.grad_clip or float("inf"))
                if torch.isfinite(d_norm):
                    self.opt_d.step()
                stats.update(disc=d_loss.item(), disc_grad_norm=float(d_norm))
            # generator's adversarial and feature-matching terms against the updated discriminator
            self.disc.requires_grad_(False)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                fake_logits, fake_feats = self.disc(fake_d)
            self.disc.requires_grad_(True)
            adv = generator_adversarial_loss(fake_logits)
            fm = feature_matching_loss(real_feats, fake_feats)
            loss = loss + cfg.adv_weight * adv + cfg.feature_weight * fm
            stats.update(adv=adv.item(), feature=fm.item())
            ok = bool(torch.isfinite(loss))
        grad_norm = float("nan")
        if ok:
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(nn.utils.clip_grad_norm_(self.codec.parameters(), cfg.grad_clip or float("inf")))
            ok = math.isfinite(grad_norm)
        if ok:
            self.opt_g.step()
            self.skipped_in_a_row = 0
        else:  # skip: no weight update, and the codebooks go back to before this batch
            with torch.no_grad():
                for k, v in self.codec.quantizer.named_buffers():
                    v.copy_(before[k])
            self.opt_g.zero_grad(set_to_none=True)
            self.skipped += 1
            self.skipped_in_a_row += 1
            stats["skipped_step"] = 1.0
        self.step += 1
        stats.update(loss=loss.item(), grad_norm=grad_norm, lr=cfg.lr * lr_scale)
        return stats

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Reconstruction of the fixed validation crops with all levels and with the first level only."""
        self.codec.eval()
        wav = self.val.to(self.device)
        out: dict[str, float] = {}
        for n in sorted({1, self.codec.num_levels}):
            recon = self.codec.decode(self.codec.encode(wav, n))[:, : wav.shape[-1]].float()
            out[f"val_stft_{n}"] = float(self.codec.stft_loss(recon, wav))
            out[f"val_mel_{n}"] = float(self.codec.mel_loss(recon, wav))
        usage = self.codec.quantizer.code_usage()
        out["code_usage_min"] = float(usage.min())
        out["code_usage_mean"] = float(usage.mean())
        self.codec.train()
        return out

    def _check_step(self) -> None:
        if self.skipped_in_a_row >= self.cfg.max_skipped_in_a_row:
            self.save()
            raise RuntimeError(f"Codec training diverged: {self.cfg.max_skipped_in_a_row} non-finite steps in a row "
                               f"(step {self.step}); the last checkpoint is in {self.run_dir}.")

    def _log_extra(self) -> dict[str, Any]:
        return {"skipped": self.skipped}

    def _postfix(self, stats: dict[str, Any]) -> dict[str, str]:
        return {"stft": f"{stats['stft']:.3f}", "mel": f"{stats['mel']:.3f}"}

    def _result(self, last: dict[str, Any]) -> dict[str, Any]:
        return {**last, "step": self.step, "skipped": self.skipped, "elapsed_s": round(self.elapsed, 1),
                "run_dir": str(self.run_dir)}


def train_codec(data_dir: str | os.PathLike, config_path: str | os.PathLike, run_dir: str | os.PathLike,
                max_steps: int | None = None, device: str | None = None, progress: bool = True,
                until: int | None = None, seconds: float | None = None,
                init_from: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train (or resume) a SoundStream codec on the audio of ``data_dir``; checkpoints go to ``run_dir``.

    ``config_path`` is a YAML file mapping onto :class:`CodecTrainConfig`, or a shipped config folder name
    (``embedded``). ``max_steps`` overrides the config's (and so its learning-rate schedule); ``until`` stops at
    that step, and ``seconds`` after about that much wall time: a bounded chunk of the run, to resume later.
    ``init_from`` (a codec run or a tokenizer directory) gives a new run its first weights
    (:meth:`CodecTrainer.init_from`). Returns the last step's statistics and the run directory.
    """
    cfg = _load_train_config(CodecTrainConfig, config_path, "codec.yaml", max_steps)
    trainer = CodecTrainer(cfg, data_dir, run_dir, device)
    if init_from is not None and not trainer.resume():
        trainer.init_from(init_from)
    return trainer.fit(progress, until=until, seconds=seconds)


def load_codec_run(run_dir: str | os.PathLike) -> tuple[SoundStream, dict[str, Any]]:
    """The codec of a run's latest checkpoint (eval mode, float32) and that checkpoint's state."""
    ck = latest_of_kind(run_dir, CodecTrainer.KIND, refusal=f"Run {{run}} does not train {CodecTrainer.WHAT}.",
                        missing=f"{run_dir} holds no codec checkpoint.")
    assert ck is not None
    st = ck["state"]
    codec = SoundStream(SoundStreamConfig.from_dict(st["train_config"]["codec"]))
    codec.load_state_dict({k[6:]: v for k, v in ck["model"].items() if k.startswith("codec.")})
    return codec.eval(), st
