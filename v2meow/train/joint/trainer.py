"""The joint model's trainer (:class:`JointTrainer`: steps, validation, checkpoints, export) and the entry
points :func:`train_joint` and :func:`load_joint`."""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from v2meow.errors import UserError
from v2meow.text.captions import (
    Thresholds,
    sample_caption,
)
from v2meow.text.joint import JointModel
from v2meow.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from v2meow.train.core import STEP_STREAM, JsonlLog, latest_of_kind, lr_at, reseed, step_rng
from v2meow.train.joint.config import EXPORT_DIR, JointTrainConfig, load_train_config
from v2meow.train.joint.data import MusicSet, data_summary, is_validation, list_tracks
from v2meow.train.joint.evaluation import evaluate_retrieval, text_features


class JointTrainer:
    def __init__(self, cfg: JointTrainConfig, music_dir: str | os.PathLike, run_dir: str | os.PathLike,
                 device: str | None = None, progress: bool = True) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(device or "cpu")
        self.progress = progress
        if cfg.threads and self.device.type == "cpu":
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        if cfg.init_from is not None:  # a trained model's config and weights (its mel statistics among them)
            self.model = JointModel.load(cfg.init_from).to(self.device)
            cfg = self.cfg = cfg.replace(model=self.model.cfg.replace(weights=None))
        else:
            self.model = JointModel(cfg.model).to(self.device)
        if cfg.train_parts == "text":
            self.model.audio.requires_grad_(False)
        # the text projection as init_from has it, frozen: the anchor's reference (anchor_weight)
        self.anchor = copy.deepcopy(self.model.text_proj).requires_grad_(False) if cfg.anchor_weight > 0 else None
        tracks = list_tracks(music_dir)
        val = [e for e in tracks if not e.get("heldout") and is_validation(e, cfg.seed, cfg.val_fraction)]
        val = val if len(val) >= 2 else []  # one track cannot rank anything: it trains instead
        train = [e for e in tracks if not e.get("heldout") and not any(e is v for v in val)]
        held = [e for e in tracks if e.get("heldout")]
        if len(train) < 2:
            raise UserError(f"{music_dir} has {len(train)} training track(s); contrastive training needs >= 2.")
        cache = self.run_dir / "cache"
        self.train = MusicSet(music_dir, train, self.model, cache, progress)
        self.held = MusicSet(music_dir, held, self.model, cache, progress) if held else None
        self.val = MusicSet(music_dir, val, self.model, cache, progress) if val else None
        self.best: dict[str, Any] = {}  # step, validation mean rank and weights of the best step so far
        self.thresholds = Thresholds.fit(self.train.analyses)
        if cfg.init_from is None:
            mean, std = self.train.mel_stats()
            self.model.audio.mel_mean.copy_(mean.to(self.device))
            self.model.audio.mel_std.copy_(std.to(self.device))
        self.batch = min(cfg.batch_size, len(self.train))
        frames = torch.tensor([self.train.frames(i) for i in range(len(self.train))], dtype=torch.float64)
        self.weights = (frames.sqrt() / frames.sqrt().sum()).numpy()  # short labelled tracks are not starved
        trained = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in trained if p.dim() >= 2]
        rest = [p for p in trained if p.dim() < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=tuple(cfg.betas))
        self.step = 0
        self.skipped_in_a_row = 0
        self.text_cache: dict[str, Tensor] = {}
        self._log = JsonlLog(self.run_dir)
        self.log_file = self._log.path

    # -- state --------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        best = {k: v for k, v in self.best.items() if k != "state"}
        return {"step": self.step, "config": self.cfg.to_dict(), "thresholds": self.thresholds.to_dict(),
                "train_seconds": round(self.train.seconds(), 1), "train_tracks": len(self.train), "best": best}

    def save(self) -> Path:
        model = dict(self.model.state_dict())
        if self.best:
            model.update({f"best/{k}": v for k, v in self.best["state"].items()})
        return save_checkpoint(self.run_dir, self.step, model, self.opt.state_dict(), self.state(),
                               keep=self.cfg.keep_checkpoints)

    def resume(self) -> bool:
        data = latest_of_kind(self.run_dir)  # joint runs' states name no kind
        if data is None:
            return False
        own = {k: v for k, v in data["model"].items() if not k.startswith("best/")}
        self.model.load_state_dict({k: v.to(self.device) for k, v in own.items()})
        self.opt.load_state_dict(data["optimizer"])
        self.step = int(data["state"]["step"])
        if data["state"].get("best"):
            self.best = {**data["state"]["best"], "state": {k[5:]: v.to(self.device) for k, v in
                                                            data["model"].items() if k.startswith("best/")}}
        self.thresholds = Thresholds.from_dict(data["state"]["thresholds"])
        return True

    def log(self, record: dict[str, Any]) -> None:
        self._log(record)
        if self.progress:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()),
                  file=sys.stderr, flush=True)

    # -- one step -----------------------------------------------------------------------------------
    def sample_batch(self, step: int) -> tuple[Tensor, list[str]]:
        """Standardised mel crops ``[B, n_mels, F]`` and their captions, drawn from ``(seed, step)``."""
        cfg, data = self.cfg, self.train
        rng = step_rng(cfg.seed, step, order=STEP_STREAM)
        seconds = rng.uniform(cfg.min_crop_seconds, cfg.model.crop_seconds)
        idx = rng.choice(len(data), size=self.batch, replace=False, p=self.weights)
        n = min([int(round(seconds * data.frame_rate))] + [data.frames(i) for i in idx])
        crops, captions = [], []
        for i in idx:
            an = data.analyses[i]
            for _ in range(4):  # avoid near-silent stretches
                a = int(rng.integers(0, data.frames(i) - n + 1))
                t0, t1 = a / data.frame_rate, (a + n) / data.frame_rate
                if an.block_mean("rms_db", t0, t1) > -45.0:
                    break
            crops.append(data.mels[i][:, a: a + n].float())
            captions.append(sample_caption(data.facts(i, self.thresholds, t0, t1), rng, cfg.caption_keep))
        mel = torch.stack(crops)  # [B, n_mels, F], natural-log power
        gain = torch.from_numpy(rng.uniform(-cfg.gain_db, cfg.gain_db, size=(len(idx), 1, 1))).float()
        mel = mel + gain * (math.log(10.0) / 10.0)
        mel = self.model.audio.standardise(mel)
        b, bands, frames = mel.shape
        for i in range(b):  # SpecAugment: stretches and bands set to the mean
            for _ in range(cfg.time_masks):
                w = int(rng.integers(0, int(cfg.time_mask_fraction * frames) + 1))
                a = int(rng.integers(0, frames - w + 1))
                mel[i, :, a: a + w] = 0.0
            for _ in range(cfg.freq_masks):
                w = int(rng.integers(0, cfg.freq_mask_bands + 1))
                a = int(rng.integers(0, bands - w + 1))
                mel[i, a: a + w] = 0.0
        return mel.to(self.device), captions

    def train_step(self) -> dict[str, float] | None:
        cfg = self.cfg
        reseed(cfg.seed, self.step, scheme="sha256")
        mel, captions = self.sample_batch(self.step)
        feats = text_features(self.model, captions, self.text_cache)
        ids = {c: k for k, c in enumerate(dict.fromkeys(captions))}
        groups = torch.tensor([ids[c] for c in captions], device=self.device)
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, cfg)
        self.model.train()
        if self.cfg.train_parts == "text":
            self.model.audio.eval()  # frozen: no dropout either, its embeddings are the ones stage 1 read
        out = self.model.loss(mel, feats, groups)
        if self.anchor is not None:
            out["anchor"] = anchor_distance(self.model, self.anchor, feats)
            out["loss"] = out["loss"] + cfg.anchor_weight * out["anchor"]
        self.opt.zero_grad(set_to_none=True)
        ok = bool(torch.isfinite(out["loss"]))
        if ok:
            out["loss"].backward()
            gn = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or float("inf"))
            ok = bool(torch.isfinite(gn))
        if not ok:
            self.opt.zero_grad(set_to_none=True)
            self.skipped_in_a_row += 1
            if self.skipped_in_a_row >= cfg.max_skipped_in_a_row:
                raise RuntimeError(f"{self.skipped_in_a_row} steps in a row had a non-finite loss or gradient.")
            self.step += 1
            return None
        self.skipped_in_a_row = 0
        self.opt.step()
        self.step += 1
        rec = {"loss": float(out["loss"].detach()), "accuracy": float(out["accuracy"]),
               "temperature": float(out["temperature"]), "grad_norm": float(gn), "crop_frames": mel.shape[-1]}
        if "anchor" in out:
            rec["anchor"] = float(out["anchor"].detach())
        return rec

    def evaluate(self) -> dict[str, Any]:
        return evaluate_retrieval(self.model, self.held, self.thresholds, self.text_cache) if self.held else {}

    def validate(self) -> None:
        """Retrieval on the validation tracks; keeps the weights of the step with the best mean rank."""
        r = evaluate_retrieval(self.model, self.val, self.thresholds, self.text_cache)
        self.log({"step": self.step, "validation": True, **r})
        if not self.best or r["mean_rank"] < self.best["mean_rank"]:
            self.best = {"step": self.step, "mean_rank": r["mean_rank"], "recall@1": r["recall@1"],
                         "recall@5": r["recall@5"],
                         "state": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}

    def export(self, path: str | os.PathLike | None = None, wall_seconds: float | None = None) -> Path:
        """Write the weights of the best validation step (the last step without validation tracks)."""
        last = None
        if self.best:
            last = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(self.best["state"])
        chosen = self.best.get("step", self.step)
        extra = {"thresholds": self.thresholds.to_dict(),
                 "training": {"steps": chosen, "last_step": self.step, "train_tracks": len(self.train),
                              "validation_tracks": len(self.val) if self.val else 0,
                              "chosen_by": "validation mean rank" if self.best else "last step",
                              "train_seconds": round(self.train.seconds(), 1), "wall_seconds": wall_seconds,
                              "crop_seconds": [self.cfg.min_crop_seconds, self.cfg.model.crop_seconds],
                              "batch_size": self.batch, "seed": self.cfg.seed,
                              "init_from": self.cfg.init_from, "train_parts": self.cfg.train_parts,
                              "data": data_summary(self.train.entries)}}
        try:
            return self.model.save(path or self.run_dir / EXPORT_DIR, extra=extra)
        finally:
            if last is not None:
                self.model.load_state_dict(last)

    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        resumed = self.resume()
        if resumed and self.progress:
            print(f"resumed at step {self.step}", file=sys.stderr)
        t_start = time.time()
        last_ck = time.time()
        hist: list[dict[str, float]] = []
        last_eval: dict[str, Any] = {}
        while self.step < cfg.max_steps:
            if cfg.max_minutes and time.time() - t_start >= 60 * cfg.max_minutes:
                break
            t = time.time()
            rec = self.train_step()
            if rec is not None:
                rec["step_seconds"] = time.time() - t
                hist.append(rec)
            if self.step % cfg.log_every == 0 and hist:
                keys = ("loss", "accuracy", "temperature", "grad_norm", "step_seconds") + (
                    ("anchor",) if self.anchor is not None else ())
                self.log({"step": self.step, "lr": lr_at(self.step - 1, cfg),
                          **{k: float(np.mean([h[k] for h in hist])) for k in keys}})
                hist = []
            if self.step % cfg.eval_every == 0:
                if self.val is not None:
                    self.validate()
                if self.held is not None:
                    last_eval = self.evaluate()
                    self.log({"step": self.step, "heldout": True, **last_eval})
            if self.step % cfg.checkpoint_every == 0 or time.time() - last_ck > 60 * cfg.checkpoint_minutes:
                self.save()
                last_ck = time.time()
        if self.val is not None and self.best.get("step") != self.step and self.step % cfg.eval_every != 0:
            self.validate()
        self.save()
        wall = time.time() - t_start
        export = self.export(wall_seconds=round(wall, 1))
        if self.held is not None:  # the exported weights, once
            exported = JointModel.load(export).to(self.device)
            last_eval = evaluate_retrieval(exported, self.held, self.thresholds, self.text_cache)
            self.log({"step": self.best.get("step", self.step), "heldout": True, "final": True, **last_eval})
        return {"step": self.step, "exported_step": self.best.get("step", self.step), "wall_seconds": wall,
                "export": str(export), "heldout": last_eval, "train_tracks": len(self.train),
                "validation_tracks": len(self.val) if self.val else 0, "train_seconds": self.train.seconds(),
                "resumed": resumed}


def anchor_distance(model: JointModel, anchor: torch.nn.Module, features: Tensor) -> Tensor:
    """The mean cosine distance between the joint embeddings ``model`` gives sentence ``features`` and those
    of ``anchor`` (a frozen copy of the text projection it started from)."""
    with torch.no_grad():
        ref = torch.nn.functional.normalize(anchor(features.to(model.logit_scale.dtype)), dim=-1)
    return (1.0 - (model.project_text(features) * ref).sum(-1)).mean()


def train_joint(music_dir: str | os.PathLike, config_path: str | os.PathLike, run_dir: str | os.PathLike,
                max_steps: int | None = None, device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the joint model on ``music_dir``; writes checkpoints and ``run_dir/export`` (float16
    ``joint.safetensors`` + ``joint.json``). ``config_path``: a YAML file or a preset name (``embedded``)."""
    cfg = load_train_config(config_path)
    if max_steps is not None:
        cfg = cfg.replace(max_steps=int(max_steps))
    return JointTrainer(cfg, music_dir, run_dir, device=device, progress=progress).fit()


def load_joint(path: str | os.PathLike) -> tuple[JointModel, dict[str, Any]]:
    """A trained joint model and its metadata from an exported directory (``joint.json``), a run directory (its
    export, else its latest checkpoint) or ``embedded`` (the shipped weights)."""
    from v2meow.text.joint import CONFIG_FILE, EMBEDDED, resolve_weights

    if str(path) == EMBEDDED or (Path(path) / CONFIG_FILE).is_file():
        root = resolve_weights(path)
        return JointModel.load(root), json.loads((root / CONFIG_FILE).read_text())
    run = Path(path)
    if (run / EXPORT_DIR / CONFIG_FILE).is_file():
        return load_joint(run / EXPORT_DIR)
    ck = latest_checkpoint(run)
    if ck is None:
        raise UserError(f"{path} holds no trained joint model (no {CONFIG_FILE}, no {EXPORT_DIR}/, no checkpoint).")
    data = load_checkpoint(ck)
    cfg = JointTrainConfig.from_dict(data["state"]["config"])
    model = JointModel(cfg.model)
    best = {k[5:]: v for k, v in data["model"].items() if k.startswith("best/")}
    model.load_state_dict(best or {k: v for k, v in data["model"].items() if "/" not in k})
    return model.eval(), {"thresholds": data["state"]["thresholds"], "training": {"steps": data["state"]["step"]}}
