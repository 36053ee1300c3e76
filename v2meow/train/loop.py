"""One training loop for every stage: each stage contributes ``loss(batch)``.

AdamW, linear warmup then cosine decay, gradient clipping and accumulation, bf16 autocast on GPUs,
optional EMA, validation loss and token accuracy (also with the visual features shuffled across clips, to
show that the model reads the video), JSONL and TensorBoard logs, atomic checkpoints and exact resume.
Distributed through ``torchrun`` with PyTorch's own DDP. Random numbers are reseeded from
``(seed, step, rank)`` at every step, so a resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from v2meow.config import V2MeowConfig
from v2meow.configbase import Config, check
from v2meow.data.dataset import STAGE_CROP_SECONDS, CropDataset, CropSpec, StepBatchSampler, TiledCrops, collate
from v2meow.data.shards import ShardReader
from v2meow.errors import UserError
from v2meow.stages.coarse import CoarseStage
from v2meow.stages.fine import FineStage
from v2meow.stages.semantic import SemanticStage
from v2meow.train.checkpoint import save_checkpoint
from v2meow.train.core import JsonlLog, latest_of_kind, lr_at, reseed, warmup_cosine

STAGES = ("semantic", "coarse", "fine")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class TrainConfig(Config):
    batch_size: int = 8  # per process
    grad_accum: int = 1
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.95
    warmup_steps: int = 100
    max_steps: int = 1000
    grad_clip: float = 1.0
    ema_decay: float = 0.0  # 0: no EMA
    eval_every: int = 100
    eval_batches: int = 8
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    num_workers: int = 0
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    crop_seconds: float = 0.0  # 0: the stage's default (10 s for stages 1-2, 3 s for stage 3)
    fsdp: bool = False  # shard parameters, gradients and optimiser state across processes (paper preset)

    def validate(self) -> None:
        check(1 <= self.batch_size <= 65536, "batch_size must be in 1..65536.")
        check(1 <= self.grad_accum <= 4096, "grad_accum must be in 1..4096.")
        check(0 < self.lr <= 1.0, "lr must be in (0, 1].")
        check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1].")
        check(0 <= self.warmup_steps and 1 <= self.max_steps <= 100_000_000, "steps out of range.")
        check(self.grad_clip >= 0 and 0 <= self.ema_decay < 1, "grad_clip >= 0 and ema_decay in [0, 1).")
        check(self.eval_every >= 1 and self.checkpoint_every >= 1 and self.log_every >= 1,
              "eval_every, checkpoint_every and log_every must be >= 1.")
        check(self.num_workers >= 0 and self.keep_checkpoints >= 1, "num_workers >= 0, keep_checkpoints >= 1.")
        check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}.")
        check(self.crop_seconds >= 0, "crop_seconds must be >= 0.")
        check(not (self.fsdp and self.ema_decay > 0), "EMA is not supported together with fsdp.")


def build_stage(stage: str, model_cfg: V2MeowConfig) -> nn.Module:
    if stage == "semantic":
        return SemanticStage(model_cfg.semantic)
    if stage == "coarse":
        return CoarseStage(model_cfg.coarse)
    if stage == "fine":
        if model_cfg.fine.fine_levels == 0:
            raise UserError("This model has no stage 3 (fine_levels 0): the codec decodes stage 2's coarse levels.")
        return FineStage(model_cfg.fine)
    raise UserError(f"Unknown stage {stage!r}; choose one of {', '.join(STAGES)}.")


def crop_spec(stage: str, model_cfg: V2MeowConfig, cfg: TrainConfig) -> CropSpec:
    seconds = cfg.crop_seconds or STAGE_CROP_SECONDS[stage]
    m = model_cfg
    if stage == "semantic":
        streams = {s.name: s.rate for s in m.semantic.streams}
        return CropSpec(seconds, streams, m.semantic.token_rate, m.codec.frame_rate, semantic=True, acoustic=False,
                        joint=m.semantic.joint_dim > 0)
    if stage == "coarse":
        streams = {s.name: s.rate for s in m.coarse.streams} if m.coarse.variant == "encdec" else {}
        return CropSpec(seconds, streams, m.coarse.semantic_rate, m.coarse.frame_rate, semantic=True, acoustic=True,
                        joint=False)
    return CropSpec(seconds, {}, m.semantic.token_rate, m.fine.frame_rate, semantic=False, acoustic=True,
                    joint=False)


class _LossModule(nn.Module):
    """DDP wraps ``forward``; the stages expose ``loss``."""

    def __init__(self, stage: nn.Module):
        super().__init__()
        self.stage = stage

    def forward(self, batch: dict) -> dict[str, Tensor]:
        return self.stage.loss(batch)


def with_features_shuffled(batch: dict) -> dict | None:
    """``batch`` with each example's visual features swapped for its neighbour's (rolled by one), or None when
    the batch has no video or fewer than two clips: the same music scored against another clip's video."""
    keys = batch.get("keys")
    b = next(iter(batch["features"].values())).shape[0] if batch.get("features") else 0
    if b < 2 or (keys is not None and len(set(keys)) < 2):
        return None
    perm = torch.roll(torch.arange(b), 1)
    shuffled = dict(batch)
    shuffled["features"] = {k: v[perm] for k, v in batch["features"].items()}
    shuffled["features_valid"] = {k: v[perm] for k, v in batch["features_valid"].items()}
    return shuffled


def batch_to(batch: Any, device: torch.device) -> Any:
    """A batch (tensors, nested in dicts) on ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: batch_to(v, device) for k, v in batch.items()}
    return batch


def _dist_info() -> tuple[int, int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def init_distributed() -> None:
    """Join the process group when started by ``torchrun`` (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))


class Trainer:
    def __init__(self, stage: str, shards: str | os.PathLike, model_cfg: V2MeowConfig, cfg: TrainConfig,
                 run_dir: str | os.PathLike, device: str | None = None, log: bool = True):
        self.stage_name = stage
        self.cfg = cfg
        self.model_cfg = model_cfg
        self.run_dir = Path(run_dir)
        self.rank, self.world, local = _dist_info()
        if device is None:
            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.log_enabled = log and self.rank == 0
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        self.stage = build_stage(stage, model_cfg).to(self.device)
        self.module: nn.Module = _LossModule(self.stage)
        self.fsdp = cfg.fsdp and self.world > 1
        if self.fsdp:
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard

            from v2meow.modules.transformer import DecoderLayer, EncoderLayer

            mesh = init_device_mesh(self.device.type, (self.world,))
            for layer in self.stage.modules():
                if isinstance(layer, (EncoderLayer, DecoderLayer)):
                    fully_shard(layer, mesh=mesh)
            fully_shard(self.module, mesh=mesh)
        elif self.world > 1:
            # some parameters get no gradient in a step (e.g. the joint adaptor when a batch has no joint
            # embedding); DDP must know, or their gradient buckets are never reduced
            self.module = nn.parallel.DistributedDataParallel(
                self.module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        decay = [p for n, p in self.stage.named_parameters() if p.dim() >= 2 and "embed" not in n]
        no_decay = [p for n, p in self.stage.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
        self.optim = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=False, foreach=False,
        )
        self.ema: dict[str, Tensor] | None = None
        self.reset_ema()
        self.spec = crop_spec(stage, model_cfg, cfg)
        self.train_reader = ShardReader(shards, split="train")
        self.val_reader = ShardReader(shards, split="validation")
        if len(self.train_reader) == 0:
            raise UserError(f"The shards in {shards} hold no training clips.")
        self.step = 0
        self.autocast = (cfg.precision == "bf16" or (cfg.precision == "auto" and self.device.type == "cuda"))
        self._log = JsonlLog(self.run_dir, tb_prefix=stage, enabled=self.log_enabled)

    def reset_ema(self) -> None:
        """The EMA (when the config keeps one) restarts from the stage's weights as they are now."""
        if self.cfg.ema_decay > 0:
            self.ema = {k: v.detach().clone().float() for k, v in self.stage.state_dict().items()}

    # -- checkpoints ----------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        return {"step": self.step, "stage": self.stage_name, "samples": self.step * self.samples_per_step,
                "train_config": self.cfg.to_dict(), "model_config": self.model_cfg.to_dict(), "world": self.world}

    @property
    def samples_per_step(self) -> int:
        return self.cfg.batch_size * self.cfg.grad_accum * self.world

    def _full_states(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Unsharded model and optimiser states (every rank takes part; FSDP gathers the shards)."""
        if not self.fsdp:
            return self.stage.state_dict(), self.optim.state_dict()
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model = get_model_state_dict(self.module, options=opts)
        optim = get_optimizer_state_dict(self.module, self.optim, options=opts)
        return {k.removeprefix("stage."): v for k, v in model.items()}, optim

    def save(self) -> None:
        model, optim = self._full_states()
        if self.rank == 0:
            save_checkpoint(self.run_dir, self.step, model, optim, self.checkpoint_state(), self.ema,
                            keep=self.cfg.keep_checkpoints)
        if self.world > 1:
            dist.barrier()

    def resume(self) -> bool:
        ck = latest_of_kind(self.run_dir, self.stage_name, field="stage",
                            refusal=f"Run {{run}} trains stage {{found!r}}, not {self.stage_name!r}.")
        if ck is None:
            return False
        saved = ck["state"].get("model_config", {}).get(self.stage_name, {})
        if _trained_part(saved) != _trained_part(self.model_cfg.to_dict()[self.stage_name]):
            raise UserError(f"Run {self.run_dir} was started with another {self.stage_name} stage config; "
                            "use a new run directory.")
        st = ck["state"]
        _warn_on_lr_jump(self.run_dir, st, self.cfg)
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            opts = StateDictOptions(full_state_dict=True)
            set_model_state_dict(self.module, {f"stage.{k}": v for k, v in ck["model"].items()}, options=opts)
            set_optimizer_state_dict(self.module, self.optim, ck["optimizer"], options=opts)
        else:
            self.stage.load_state_dict(ck["model"])
            self.optim.load_state_dict(ck["optimizer"])
        if self.ema is not None and ck["ema"] is not None:
            self.ema = {k: v.to(self.device) for k, v in ck["ema"].items()}
        self.step = int(st["step"])
        return True

    # -- the loop -------------------------------------------------------------------------------
    def loader(self, reader: ShardReader, start: int, shuffle: bool, random_crop: bool, seed: int) -> DataLoader:
        ds = CropDataset(reader, self.spec, seed=seed, random_crop=random_crop)
        sampler = StepBatchSampler(len(reader), self.cfg.batch_size, seed, start=start, rank=self.rank,
                                   world=self.world, shuffle=shuffle)
        return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=self.cfg.num_workers,
                          persistent_workers=False)

    def train_step(self, batches: list[dict]) -> dict[str, float]:
        cfg = self.cfg
        for g in self.optim.param_groups:
            g["lr"] = lr_at(self.step, cfg)
        self.module.train()
        self.optim.zero_grad(set_to_none=True)
        totals = {"loss": 0.0, "accuracy": 0.0}
        for i, batch in enumerate(batches):
            # one seed per (step, micro-batch, rank): dropout and condition dropout resume exactly
            reseed(cfg.seed, self.step, scheme="hash", micro=i, rank=self.rank)
            batch = batch_to(batch, self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                out = self.module(batch)
            (out["loss"] / len(batches)).backward()
            totals["loss"] += out["loss"].item() / len(batches)
            totals["accuracy"] += out["accuracy"].item() / len(batches)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.stage.parameters(), cfg.grad_clip or float("inf"))
        if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP
            grad_norm = grad_norm.full_tensor()
        if torch.isfinite(grad_norm):
            self.optim.step()
        else:  # a non-finite step is skipped, not applied (bf16 overflow, a bad batch)
            totals["skipped"] = 1.0
        if self.ema is not None:
            with torch.no_grad():
                for k, v in self.stage.state_dict().items():
                    if v.is_floating_point():
                        self.ema[k].mul_(cfg.ema_decay).add_(v.float(), alpha=1 - cfg.ema_decay)
                    else:
                        self.ema[k].copy_(v)
        self.step += 1
        totals["grad_norm"] = float(grad_norm)
        totals["lr"] = self.optim.param_groups[0]["lr"]
        return totals

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss/accuracy over every clip cut into consecutive whole crops (up to ``eval_batches``
        batches), weighted by tokens; with video, also with the features shuffled across the batch's clips."""
        reader = self.val_reader if len(self.val_reader) else self.train_reader
        tiles = TiledCrops(CropDataset(reader, self.spec, seed=self.cfg.seed, random_crop=False))
        bs = self.cfg.batch_size
        n_batches = min(self.cfg.eval_batches, math.ceil(len(tiles) / bs))
        # rank r takes global batches r, r + world, ...; every rank runs as many forwards (FSDP needs all of
        # them in each), and a batch past the end is run with weight 0
        local = [self.rank + j * self.world for j in range(math.ceil(n_batches / self.world))]
        batches = [list(range(g * bs, min((g + 1) * bs, len(tiles)))) if g < n_batches else [0] for g in local]
        weights = [1.0 if g < n_batches else 0.0 for g in local]
        loader = DataLoader(tiles, batch_sampler=batches, collate_fn=collate, num_workers=self.cfg.num_workers)
        self.stage.eval()
        sums = {"val_loss": 0.0, "val_accuracy": 0.0, "val_loss_shuffled": 0.0}
        tokens = shuffled_tokens = 0.0
        paired = torch.zeros(4, dtype=torch.float64)  # crops, sum of gaps, sum of squared gaps, crops with a gap > 0
        levels = getattr(self.stage, "levels_per_frame", 1)
        per_level = torch.zeros(2, levels, dtype=torch.float64)  # loss sums and token counts by codec level
        for batch, w in zip(loader, weights):
            batch = batch_to(batch, self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                out = self.module(batch)  # through the wrapper: FSDP gathers parameters in its forward
                n = float(out["tokens"]) * w
                sums["val_loss"] += out["loss"].item() * n
                sums["val_accuracy"] += out["accuracy"].item() * n
                tokens += n
                if levels > 1 and w > 0:  # tokens cycle through the levels in both layouts (flat and delay)
                    ce, ok = out["token_loss"].double().cpu(), out["token_valid"].cpu()
                    for lv in range(levels):
                        per_level[0, lv] += ce[:, lv::levels].sum()
                        per_level[1, lv] += ok[:, lv::levels].sum()
                shuffled = with_features_shuffled(batch)
                if shuffled is not None:
                    out_s = self.module(shuffled)
                    sums["val_loss_shuffled"] += out_s["loss"].item() * n
                    shuffled_tokens += n
                    if w > 0:  # paired per crop: how much worse the same crop is with another clip's video
                        d = (out_s["example_loss"] - out["example_loss"]).double().cpu()
                        paired += torch.stack([torch.tensor(float(d.numel()), dtype=torch.float64), d.sum(),
                                               (d * d).sum(), (d > 0).sum().double()])
        totals = torch.cat([torch.tensor([sums["val_loss"], sums["val_accuracy"], sums["val_loss_shuffled"], tokens,
                                          shuffled_tokens], dtype=torch.float64), paired,
                            per_level.reshape(-1)]).to(self.device)
        if self.world > 1:
            dist.all_reduce(totals)
        self.stage.train()
        res = {"val_loss": (totals[0] / totals[3].clamp(min=1)).item(),
               "val_accuracy": (totals[1] / totals[3].clamp(min=1)).item()}
        if totals[4] > 0:
            res["val_loss_shuffled"] = (totals[2] / totals[4]).item()
        k = totals[5].item()
        if k > 1:  # per-crop paired gap (shuffled minus real): mean, its standard error, share of crops above 0
            mean = totals[6].item() / k
            var = max(totals[7].item() / k - mean * mean, 0.0) * k / (k - 1)
            res |= {"val_gap_mean": mean, "val_gap_se": math.sqrt(var / k), "val_gap_win_rate": totals[8].item() / k}
        if levels > 1:
            lv_sums, lv_counts = totals[9 : 9 + levels], totals[9 + levels :]
            res |= {f"val_loss_level{i}": (lv_sums[i] / lv_counts[i].clamp(min=1)).item() for i in range(levels)}
        return res | {"val_clips": len(reader), "val_crops": min(len(tiles), n_batches * bs)}

    def log(self, record: dict[str, Any]) -> None:
        self._log(record)

    def _past(self, deadline: float | None) -> bool:
        """Whether ``deadline`` (a ``time.time()``) has passed, as rank 0 sees it: every process stops together."""
        if deadline is None:
            return False
        flag = torch.tensor([int(time.time() >= deadline)], device=self.device)
        if self.world > 1:
            dist.broadcast(flag, 0)
        return bool(flag.item())

    def fit(self, progress: bool = True, seconds: float | None = None) -> dict[str, float]:
        """Train to ``max_steps`` (resuming from the run's last checkpoint). With ``seconds``, stop earlier once
        that much time has passed, after a checkpoint (evaluated): a bounded chunk that the next call continues
        exactly, on the same learning-rate schedule."""
        cfg = self.cfg
        deadline = None if seconds is None else time.time() + seconds
        self.resume()
        start = self.step * self.samples_per_step
        loader = iter(self.loader(self.train_reader, start, shuffle=True, random_crop=True, seed=cfg.seed))
        bar = None
        if progress and self.rank == 0:
            from tqdm import tqdm

            bar = tqdm(total=cfg.max_steps, initial=self.step, desc=f"train {self.stage_name}", unit="step")
        last: dict[str, float] = {}
        t0, tokens, step0 = time.time(), 0, self.step
        while self.step < cfg.max_steps:
            batches = [next(loader) for _ in range(cfg.grad_accum)]
            stats = self.train_step(batches)
            tokens += sum(_target_tokens(b, self.stage_name) for b in batches)
            last = {"step": self.step, **stats}
            if self.step % cfg.log_every == 0:
                dt = max(time.time() - t0, 1e-9)
                last["tokens_per_s"] = tokens * self.world / dt
                last["s_per_step"] = dt / max(1, self.step - step0)
                t0, tokens, step0 = time.time(), 0, self.step
                self.log(last)
            out_of_time = self._past(deadline)
            if self.step % cfg.eval_every == 0 or self.step == cfg.max_steps or out_of_time:
                ev = self.evaluate()
                last.update(ev)
                self.log({"step": self.step, **ev})
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.max_steps or out_of_time:
                self.save()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{stats['loss']:.3f}", acc=f"{stats['accuracy']:.2f}")
            if out_of_time:
                break
        if bar is not None:
            bar.close()
        self._log.close()
        return last


def _target_tokens(batch: dict, stage: str) -> int:
    if stage == "semantic":
        return int(batch["semantic_valid"].sum())
    return int(batch["acoustic_valid"].sum()) * int(batch["acoustic"].shape[1])


GENERATION_ONLY = ("sampling", "video_guidance")  # stage settings that only generation reads
SCHEDULE = ("lr", "warmup_steps", "max_steps", "min_lr_ratio")  # warmup_cosine's settings, in its order


def _warn_on_lr_jump(run_dir, state: dict, cfg: TrainConfig) -> None:
    """Say so when a run resumes on another schedule and its learning rate jumps by more than a quarter (a
    warm restart: it undoes some of what the run had settled, as a stage 1 run here once showed)."""
    saved = state.get("train_config") or {}
    if any(k not in saved for k in SCHEDULE):
        return
    step = int(state.get("step", 0))
    before, after = warmup_cosine(step, *(saved[k] for k in SCHEDULE)), lr_at(step, cfg)
    if abs(after - before) > 0.25 * before:
        print(f"warning: run {run_dir} resumes at step {step} on another schedule (max_steps {saved['max_steps']} "
              f"then, {cfg.max_steps} now): its learning rate jumps from {before:.3g} to {after:.3g}",
              file=sys.stderr)


def _trained_part(stage_cfg: dict) -> dict:
    """A stage's config without what only generation reads: a run resumes after its sampling was retuned."""
    return {k: v for k, v in stage_cfg.items() if k not in GENERATION_ONLY}
