"""The joint model's training settings (:class:`JointTrainConfig`) and where they are read from."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from v2meow.configbase import Config, check
from v2meow.errors import UserError
from v2meow.text.joint import JointConfig

EXPORT_DIR = "export"


@dataclass
class JointTrainConfig(Config):
    model: JointConfig = field(default_factory=JointConfig)
    # a trained joint model (a directory, or "embedded") that a new run starts from: its config replaces ``model``
    # and its level statistics stay (they are part of the space stage 1 reads)
    init_from: str | None = None
    # "text": only the text side learns (the projection of the frozen sentence model, and the temperature); the
    # music tower stays as ``init_from`` has it, so every music embedding, and every stage that conditions on them,
    # stays valid
    train_parts: str = "all"
    # > 0: adds this weight times the mean cosine distance between each caption's joint embedding and the one
    # ``init_from`` gives it, so a retrained text side learns what is new while it keeps what it already placed
    anchor_weight: float = 0.0
    batch_size: int = 32
    min_crop_seconds: float = 5.0  # crop lengths are drawn per step in [min_crop_seconds, model.crop_seconds]
    caption_keep: float = 0.7  # probability that a caption keeps each optional attribute
    gain_db: float = 2.0  # random gain of each crop, +- dB (small: loudness is captioned)
    time_masks: int = 0  # SpecAugment: masked stretches per crop, each up to time_mask_fraction of it
    time_mask_fraction: float = 0.1
    freq_masks: int = 0  # masked mel bands per crop, each up to freq_mask_bands wide
    freq_mask_bands: int = 6
    val_fraction: float = 0.0  # training groups set aside (seeded hash) to choose the exported step
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 100
    max_steps: int = 2000
    max_minutes: float = 0.0  # stop (and export) after this much training time; 0: no limit
    grad_clip: float = 1.0
    eval_every: int = 250
    log_every: int = 10
    checkpoint_every: int = 100
    checkpoint_minutes: float = 3.0
    keep_checkpoints: int = 2
    max_skipped_in_a_row: int = 20
    seed: int = 0
    threads: int = 1

    def validate(self) -> None:
        check(2 <= self.batch_size <= 4096, "batch_size must be in 2..4096 (contrastive needs negatives).")
        check(0 < self.min_crop_seconds <= self.model.crop_seconds,
              "min_crop_seconds must be in (0, model.crop_seconds].")
        check(0 < self.caption_keep <= 1 and self.gain_db >= 0, "caption_keep in (0, 1], gain_db >= 0.")
        check(0 < self.lr <= 1 and 0 <= self.min_lr_ratio <= 1, "lr in (0, 1], min_lr_ratio in [0, 1].")
        check(self.warmup_steps >= 0 and self.max_steps >= 1 and self.max_minutes >= 0, "steps/minutes out of range.")
        check(min(self.eval_every, self.log_every, self.checkpoint_every, self.keep_checkpoints) >= 1,
              "eval_every, log_every, checkpoint_every and keep_checkpoints must be >= 1.")
        check(self.threads >= 0 and self.max_skipped_in_a_row >= 1, "threads >= 0, max_skipped_in_a_row >= 1.")
        check(self.time_masks >= 0 and self.freq_masks >= 0 and 0 <= self.time_mask_fraction < 1
              and self.freq_mask_bands >= 0, "masking settings out of range.")
        check(0 <= self.val_fraction < 0.5, "val_fraction must be in [0, 0.5).")
        check(self.train_parts in ("all", "text"), f"train_parts must be 'all' or 'text', got {self.train_parts!r}.")
        check(self.train_parts == "all" or self.init_from is not None,
              "train_parts 'text' keeps a trained music tower: it needs init_from.")
        check(self.anchor_weight >= 0, f"anchor_weight must be >= 0, got {self.anchor_weight}.")
        check(self.anchor_weight == 0 or self.init_from is not None,
              "anchor_weight keeps the text embeddings near those of init_from: it needs init_from.")


def load_train_config(spec: str | os.PathLike) -> JointTrainConfig:
    """A YAML file, or a preset name whose ``joint.yaml`` ships in ``v2meow/configs/<name>/``."""
    from v2meow.config import load_yaml

    path = Path(spec)
    if not path.is_file():
        shipped = resources.files("v2meow") / "configs" / str(spec) / "joint.yaml"
        if not shipped.is_file():
            raise UserError(f"No joint training config {spec} (a YAML file or a preset with joint.yaml).")
        path = Path(str(shipped))
    return JointTrainConfig.from_dict(load_yaml(path), where=str(path))
