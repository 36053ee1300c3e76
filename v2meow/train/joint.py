"""Training the embedded joint music-text model (MuLan's role) on a folder of music with no human captions.

Each step draws ``batch_size`` different tracks, a random crop of each (its length drawn per step between
``min_crop_seconds`` and the model's ``crop_seconds``, so the tower sees every length up to the 10 s segments it
embeds later, at a lower average cost on a CPU), and one caption per crop from what is known about it
(:mod:`v2meow.text.captions`: labels, measured properties of that stretch, a source hint; a seeded phrasing).
The loss is the symmetric InfoNCE of :func:`v2meow.text.joint.contrastive_loss` with a learned temperature;
crops whose captions are identical count as positives of each other.

The music is read once: a log-mel of every track (float16) and the measured properties are cached in the run
directory, so a resumed run starts in seconds. Random numbers come from ``(seed, step)``, so a run resumed from a
checkpoint continues exactly as an uninterrupted one. Steps whose loss or gradient is not finite are skipped;
too many in a row stop the run. Held-out files (``sources.json``) are never trained on; their text→audio
retrieval is logged at ``eval_every`` for monitoring only (the exported model is the last step's).

    train_joint("data_cache/music", "embedded", "runs/joint")   # v2meow/configs/embedded/joint.yaml
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor

from v2meow.configbase import Config, check
from v2meow.errors import UserError
from v2meow.text.captions import (
    ANALYSIS_VERSION,
    Thresholds,
    TrackAnalysis,
    analyse_track,
    caption_variants,
    sample_caption,
    track_facts,
)
from v2meow.text.joint import JointConfig, JointModel
from v2meow.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg", ".opus", ".mp3")
EXPORT_DIR = "export"


@dataclass
class JointTrainConfig(Config):
    model: JointConfig = field(default_factory=JointConfig)
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


# ---------------------------------------------------------------------------------------------------------------
# music
# ---------------------------------------------------------------------------------------------------------------
def list_tracks(music_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every track of a music folder as a ``sources.json`` record (``name``, ``path``, ``package``, ``labels``,
    ``heldout``); a folder without ``sources.json`` gives plain records, none held out."""
    root = Path(music_dir)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder of music.")
    meta = root / "sources.json"
    if meta.is_file():
        try:
            files = json.loads(meta.read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{meta} is not a readable sources.json.") from None
        out = [dict(f) for f in files if (root / f["path"]).is_file()]
    else:
        out = [{"name": str(p.relative_to(root).with_suffix("")), "path": str(p.relative_to(root)),
                "package": p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else "",
                "heldout": False} for p in sorted(root.rglob("*")) if p.suffix.lower() in AUDIO_EXTENSIONS]
    if not out:
        raise UserError(f"{root} holds no music ({', '.join(AUDIO_EXTENSIONS)}).")
    return out


def read_track(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Mono float32 ``[N]`` at ``sample_rate``."""
    from v2meow.io.audio import load_audio

    return np.asarray(load_audio(str(path), sample_rate=sample_rate, mono=True), dtype=np.float32).reshape(-1)


@torch.no_grad()
def track_mel(model: JointModel, wav: np.ndarray, chunk_seconds: float = 60.0) -> Tensor:
    """Raw natural-log mel ``[n_mels, frames]`` float16 of a whole track, as ``model.audio.mel`` of the whole
    waveform would give, computed in chunks: each chunk starts on a hop boundary with a context of whole hops
    covering half a window on both sides, so every frame sees exactly the samples it would see at once."""
    mel = model.audio.mel
    hop = mel.hop_length
    pad = -(-(mel.n_fft // 2) // hop) * hop  # half a window, rounded up to whole hops
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    step = max(1, int(chunk_seconds * model.sample_rate) // hop) * hop
    total = x.shape[0] // hop + 1
    out = []
    for a in range(0, total * hop, step):
        lo, hi = max(0, a - pad), min(x.shape[0], a + step + pad)
        m = mel(x[lo:hi][None])[0]  # frame j is centred on sample lo + j * hop
        first = (a - lo) // hop
        out.append(m[:, first: first + min(step // hop, total - a // hop)])
    return torch.cat(out, 1).to(torch.float16)


class MusicSet:
    """Log-mel and measured properties of a set of tracks, cached per track in ``cache_dir`` (one safetensors file
    each, keyed by the file's path and size and the mel settings), so any split of a folder reuses them."""

    def __init__(self, music_dir: str | os.PathLike, entries: list[dict[str, Any]], model: JointModel,
                 cache_dir: str | os.PathLike, progress: bool = True) -> None:
        self.root = Path(music_dir)
        self.entries = entries
        self.frame_rate = model.sample_rate / model.cfg.hop_length
        c = model.cfg
        cache = Path(cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        self.mels, self.analyses = [], []
        t0 = time.time()
        for i, e in enumerate(entries):
            key = json.dumps([ANALYSIS_VERSION, "mel-2", c.sample_rate, c.n_fft, c.hop_length, c.n_mels, e["path"],
                              (self.root / e["path"]).stat().st_size])
            file = cache / f"track-{hashlib.sha256(key.encode()).hexdigest()[:16]}.safetensors"
            if file.is_file():
                from safetensors import safe_open

                with safe_open(str(file), framework="pt") as f:
                    mel, analysis = f.get_tensor("mel"), TrackAnalysis.from_dict(json.loads(f.metadata()["analysis"]))
            else:
                wav = read_track(self.root / e["path"], model.sample_rate)
                mel, analysis = track_mel(model, wav), analyse_track(wav, model.sample_rate)
                save_file({"mel": mel.contiguous()}, str(file) + ".tmp",
                          metadata={"analysis": json.dumps(analysis.to_dict()), "path": e["path"]})
                os.replace(str(file) + ".tmp", file)
                if progress:
                    print(f"\rreading music {i + 1}/{len(entries)} ({time.time() - t0:.0f} s)", end="",
                          file=sys.stderr, flush=True)
            self.mels.append(mel)
            self.analyses.append(analysis)
        if progress and time.time() - t0 > 1:
            print(file=sys.stderr)

    def __len__(self) -> int:
        return len(self.entries)

    def frames(self, i: int) -> int:
        return int(self.mels[i].shape[1])

    def seconds(self) -> float:
        return sum(self.frames(i) for i in range(len(self))) / self.frame_rate

    def mel_stats(self) -> tuple[Tensor, Tensor]:
        """Per-band mean and std ``[n_mels]`` over every frame louder than the floor (silence left out)."""
        total = torch.zeros(self.mels[0].shape[0], dtype=torch.float64)
        sq, n = torch.zeros_like(total), 0
        for m in self.mels:
            m = m.double()
            keep = m.mean(0) > math.log(1e-5) + 1.0
            m = m[:, keep]
            total += m.sum(1)
            sq += (m * m).sum(1)
            n += m.shape[1]
        mean = total / max(n, 1)
        std = (sq / max(n, 1) - mean * mean).clamp_min(1e-6).sqrt()
        return mean.float(), std.float()

    def facts(self, i: int, thresholds: Thresholds, t0: float = 0.0, t1: float | None = None) -> dict[str, Any]:
        return track_facts(self.entries[i], self.analyses[i], thresholds, t0, t1)


def data_summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """What a model was trained on, for its card: tracks, seconds and licences per source package."""
    out: dict[str, Any] = {}
    for e in entries:
        d = out.setdefault(str(e.get("package") or e.get("source") or "unknown"),
                           {"tracks": 0, "seconds": 0.0, "licences": []})
        d["tracks"] += 1
        d["seconds"] = round(d["seconds"] + float(e.get("duration") or 0.0), 1)
        if e.get("licence") and e["licence"] not in d["licences"]:
            d["licences"].append(e["licence"])
    return out


def is_validation(entry: dict[str, Any], seed: int, fraction: float) -> bool:
    """Whether a training track is set aside for validation: a seeded hash of its group (all variants of a piece
    go together), below ``fraction``."""
    group = str(entry.get("group") or entry.get("name"))
    h = int.from_bytes(hashlib.sha256(f"val:{seed}:{group}".encode()).digest()[:8], "little") / 2**64
    return h < fraction


def _step_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, step, stream])


# ---------------------------------------------------------------------------------------------------------------
# evaluation: text -> audio retrieval
# ---------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def mel_segments_embedding(model: JointModel, mel: Tensor, frame_rate: float) -> Tensor:
    """The :meth:`JointModel.embed_audio_segments` of a whole track, from its cached raw log-mel ``[n_mels, F]``:
    the mean of its unit-norm 10 s segment embeddings, re-normalised ``[dim]``."""
    seg = int(round(model.cfg.segment_seconds * frame_rate))
    n = mel.shape[1]
    bounds = [(a, min(n, a + seg)) for a in range(0, n, seg)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < seg // 2:
        bounds.pop()
        bounds[-1] = (max(0, n - seg), n)
    x = model.audio.standardise(mel.float())
    embs = [model.audio.forward_mel(x[None, :, a:b]) for a, b in bounds]
    mean = torch.cat(embs).mean(0)
    return mean / mean.norm().clamp_min(1e-8)


@torch.no_grad()
def retrieval(text_emb: Tensor, audio_emb: Tensor, truth: list[int], ks: tuple[int, ...] = (1, 5)) -> dict[str, Any]:
    """Text→audio retrieval: ``text_emb [Q, D]`` against ``audio_emb [N, D]``; ``truth[q]`` is the right track.
    Returns recall@k, the chance level k/N, and the mean rank (1 = first)."""
    sims = text_emb @ audio_emb.t()  # [Q, N]
    target = sims[torch.arange(len(truth)), torch.tensor(truth)]
    ranks = (sims > target[:, None]).sum(1) + 1  # [Q]
    n = audio_emb.shape[0]
    out: dict[str, Any] = {"queries": len(truth), "tracks": n, "mean_rank": float(ranks.float().mean())}
    for k in ks:
        out[f"recall@{k}"] = float((ranks <= k).float().mean())
        out[f"chance@{k}"] = min(1.0, k / n)
    return out


def evaluate_retrieval(model: JointModel, data: MusicSet, thresholds: Thresholds,
                       text_cache: dict[str, Tensor] | None = None) -> dict[str, Any]:
    """Recall@1/5 of every track's fixed caption phrasings against every track's whole-track embedding."""
    was = model.training
    model.eval()
    audio = torch.stack([mel_segments_embedding(model, data.mels[i], data.frame_rate) for i in range(len(data))])
    texts, truth = [], []
    for i in range(len(data)):
        for c in caption_variants(data.facts(i, thresholds), data.entries[i]["name"]):
            texts.append(c)
            truth.append(i)
    feats = text_features(model, texts, text_cache if text_cache is not None else {})
    with torch.no_grad():
        text = model.project_text(feats)
    model.train(was)
    return retrieval(text, audio, truth)


def text_features(model: JointModel, texts: list[str], cache: dict[str, Tensor]) -> Tensor:
    """Frozen sentence features ``[B, text_width]``, computed once per distinct text."""
    missing = sorted({t for t in texts if t not in cache})
    for i in range(0, len(missing), 64):
        chunk = missing[i: i + 64]
        for t, f in zip(chunk, model.text_features(chunk).cpu()):
            cache[t] = f
    return torch.stack([cache[t] for t in texts]).to(model.logit_scale.device)


# ---------------------------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------------------------
def lr_at(step: int, cfg: JointTrainConfig) -> float:
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


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
        self.model = JointModel(cfg.model).to(self.device)
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
        mean, std = self.train.mel_stats()
        self.model.audio.mel_mean.copy_(mean.to(self.device))
        self.model.audio.mel_std.copy_(std.to(self.device))
        self.batch = min(cfg.batch_size, len(self.train))
        frames = torch.tensor([self.train.frames(i) for i in range(len(self.train))], dtype=torch.float64)
        self.weights = (frames.sqrt() / frames.sqrt().sum()).numpy()  # short labelled tracks are not starved
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
        rest = [p for n, p in self.model.named_parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=tuple(cfg.betas))
        self.step = 0
        self.skipped_in_a_row = 0
        self.text_cache: dict[str, Tensor] = {}
        self.log_file = self.run_dir / "log.jsonl"

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
        ck = latest_checkpoint(self.run_dir)
        if ck is None:
            return False
        data = load_checkpoint(ck)
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
        with open(self.log_file, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.progress:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()),
                  file=sys.stderr, flush=True)

    # -- one step -----------------------------------------------------------------------------------
    def sample_batch(self, step: int) -> tuple[Tensor, list[str]]:
        """Standardised mel crops ``[B, n_mels, F]`` and their captions, drawn from ``(seed, step)``."""
        cfg, data = self.cfg, self.train
        rng = _step_rng(cfg.seed, step)
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
        torch.manual_seed(int.from_bytes(hashlib.sha256(f"{cfg.seed}:{self.step}".encode()).digest()[:7], "little"))
        mel, captions = self.sample_batch(self.step)
        feats = text_features(self.model, captions, self.text_cache)
        ids = {c: k for k, c in enumerate(dict.fromkeys(captions))}
        groups = torch.tensor([ids[c] for c in captions], device=self.device)
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, cfg)
        self.model.train()
        out = self.model.loss(mel, feats, groups)
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
        return {"loss": float(out["loss"].detach()), "accuracy": float(out["accuracy"]),
                "temperature": float(out["temperature"]), "grad_norm": float(gn), "crop_frames": mel.shape[-1]}

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
                keys = ("loss", "accuracy", "temperature", "grad_norm", "step_seconds")
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


__all__ = ["JointTrainConfig", "JointTrainer", "MusicSet", "evaluate_retrieval", "list_tracks", "load_joint",
           "mel_segments_embedding", "retrieval", "train_joint"]
