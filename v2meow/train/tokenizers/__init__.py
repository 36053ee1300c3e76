"""Training the project's own tokenizers on a folder of music: the SoundStream codec and the semantic tokenizer.

Both loops read random crops straight from audio files (no shards: the tokenizers are what makes shards), with
a sampler seeded by ``(seed, step)``; every step also reseeds torch from ``(seed, step)``, so a run resumed from
a checkpoint continues exactly as an uninterrupted one. Checkpoints go through :mod:`v2meow.train.checkpoint`.

- :func:`train_codec`: SoundStream (either body) with multi-scale STFT + mel reconstruction, commitment, and a
  multi-scale STFT discriminator (hinge + feature matching) switched on after ``disc_start_step``. A step whose
  loss or gradient is not finite is skipped *and* the quantiser's EMA codebooks are restored to what they were
  before it, so a NaN batch leaves no trace; too many in a row stop the run.
- :func:`train_semantic_tokenizer`: HuBERT iteration 1 (k-means ids of log-mel + chroma frames as masked-
  prediction targets), then a seeded k-means of the encoder's token layer. The encoder is rounded to float16
  before that k-means is fitted, because the shipped weights are float16: the k-means' record of the encoder
  weights it was fitted on then still matches after loading (see :mod:`v2meow.tokenizers.default`).
- :func:`export_tokenizers`: both runs → a tokenizer directory (float16 safetensors + ``tokenizers.json``).

Files listed as held out in a data folder's ``sources.json`` (``scripts/get_music.py``) are never read here.
"""

from __future__ import annotations

import json
import math
import os
import time
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
from v2meow.tokenizers.codec.soundstream import SoundStream, SoundStreamConfig
from v2meow.tokenizers.kmeans import KMeans, fit_first_iteration_kmeans
from v2meow.tokenizers.semantic import SemanticEncoder, SemanticEncoderConfig, SemanticTokenizer
from v2meow.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

__all__ = [
    "AUDIO_EXTENSIONS",
    "list_audio",
    "AudioCrops",
    "CodecTrainConfig",
    "SemanticTrainConfig",
    "CodecTrainer",
    "SemanticTrainer",
    "train_codec",
    "train_semantic_tokenizer",
    "export_tokenizers",
    "load_codec_run",
    "load_semantic_run",
    "truncated_encoder",
]

AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aif", ".aiff")
SOURCES_FILE = "sources.json"
PRECISIONS = ("auto", "fp32", "bf16")


# ---- data ---------------------------------------------------------------------------------------------------


def list_audio(data_dir: str | os.PathLike, split: str = "train") -> list[Path]:
    """Audio files of ``data_dir`` for ``split`` ("train", "heldout" or "all"), sorted.

    With a ``sources.json`` (written by ``scripts/get_music.py``) its ``files`` and ``heldout`` flags decide;
    without one every audio file below ``data_dir`` is a training file and none is held out.
    """
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be train, heldout or all, got {split!r}.")
    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"The audio folder {root} does not exist.")
    manifest = root / SOURCES_FILE
    if manifest.is_file():
        try:
            entries = json.loads(manifest.read_text())["files"]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{manifest} is not a v2meow sources list.") from None
        files = [root / e["path"] for e in entries
                 if split == "all" or bool(e.get("heldout", False)) == (split == "heldout")]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise UserError(f"{manifest} lists {len(missing)} missing file(s), e.g. {missing[0]}; rerun get_music.py.")
    else:
        files = [] if split == "heldout" else [p for p in root.rglob("*")
                                                if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()]
    return sorted(files)


class AudioCrops:
    """Random fixed-length crops ``[B, T]`` from audio files, drawn by a caller-supplied numpy generator.

    Files already at the sample rate and readable by libsndfile are read crop by crop (seeking); any other file
    is decoded and resampled once and kept in memory. A file is drawn with probability proportional to its
    length; a near-silent crop is redrawn (a few times) because it teaches a codec nothing.
    """

    def __init__(self, files: list[Path], sample_rate: int, silence_rms: float = 1e-3) -> None:
        import soundfile as sf

        from v2meow.io.audio import load_audio

        if not files:
            raise UserError("No training audio was found (check the folder and its sources.json).")
        self.sample_rate, self.silence_rms = sample_rate, silence_rms
        self.paths: list[Path] = []
        self.frames: list[int] = []
        self.memory: dict[int, np.ndarray] = {}
        for path in files:
            data = None
            try:
                info = sf.info(str(path))
                frames = info.frames if info.samplerate == sample_rate else -1
            except Exception:  # not readable by libsndfile (opus, mp3, m4a): decode it once
                frames = -1
            if frames < 0:
                data = load_audio(path, sample_rate)
                frames = data.shape[-1]
            if frames <= 0:
                continue
            if data is not None:
                self.memory[len(self.paths)] = data
            self.paths.append(path)
            self.frames.append(frames)
        if not self.paths:
            raise UserError("The training audio files are all empty.")
        lengths = np.asarray(self.frames, dtype=np.float64)
        self.weights = lengths / lengths.sum()

    @property
    def seconds(self) -> float:
        return float(sum(self.frames)) / self.sample_rate

    def read(self, index: int, start: int, num: int) -> np.ndarray:
        """Samples ``[start, start + num)`` of file ``index`` as float32 mono, zero-padded past the end."""
        if index in self.memory:
            out = self.memory[index][start : start + num]
        else:
            import soundfile as sf

            with sf.SoundFile(str(self.paths[index])) as f:
                f.seek(start)
                out = f.read(frames=num, dtype="float32", always_2d=True).mean(axis=1)
        if out.shape[0] < num:
            out = np.pad(out, (0, num - out.shape[0]))
        return out.astype(np.float32, copy=False)

    def crop(self, rng: np.random.Generator, num: int, tries: int = 8) -> np.ndarray:
        wav = np.zeros(num, dtype=np.float32)
        for _ in range(tries):
            i = int(rng.choice(len(self.paths), p=self.weights))
            start = int(rng.integers(0, max(1, self.frames[i] - num + 1)))
            wav = self.read(i, start, num)
            if float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) >= self.silence_rms:
                break
        return wav

    def batch(self, rng: np.random.Generator, batch_size: int, num: int) -> Tensor:
        """``[batch_size, num]`` float32 crops."""
        return torch.from_numpy(np.stack([self.crop(rng, num) for _ in range(batch_size)]))


def _step_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, stream, step])


def _reseed(seed: int, step: int) -> None:
    # every random draw of a step (quantiser dropout, k-means init, restarts, masks, dropout) from (seed, step)
    torch.manual_seed((seed * 1_000_003 + step) % (2**63))


def _lr_at(step: int, lr: float, warmup: int, max_steps: int, min_ratio: float) -> float:
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _resolve_config(spec: str | os.PathLike, file: str) -> Path:
    """A YAML path, or the name of a config folder shipped in ``v2meow/configs/`` holding ``file``."""
    path = Path(spec)
    if path.is_file():
        return path
    shipped = Path(__file__).resolve().parents[1] / "configs" / str(spec) / file
    if shipped.is_file():
        return shipped
    raise UserError(f"Training config {spec} is neither a file nor a shipped config folder with {file}.")


def _device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _set_threads(threads: int, device: torch.device) -> None:
    if threads > 0 and device.type == "cpu":
        torch.set_num_threads(threads)


class _Log:
    """JSON lines in ``run_dir/log.jsonl``."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "log.jsonl"

    def __call__(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


class _StepTrainer:
    """The fit loop both tokenizer trainers share: steps, logging, evaluation, checkpoints by step count and
    by wall clock, a progress bar. Subclasses provide ``train_step``, ``evaluate``, ``save``, ``resume`` and
    the hooks below."""

    DESC = "train"

    def _start(self, cfg: Any, run_dir: str | os.PathLike, device: str | None) -> None:
        """What every trainer sets up first: config, run folder, device and threads, and the seed."""
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.device = _device(device)
        _set_threads(cfg.threads, self.device)
        torch.manual_seed(cfg.seed)

    def _check_step(self) -> None:
        """Raise when training must stop (e.g. divergence); called after every step."""

    def _log_extra(self) -> dict[str, Any]:
        return {}

    def _postfix(self, stats: dict[str, Any]) -> dict[str, str]:
        return {}

    def _result(self, last: dict[str, Any]) -> dict[str, Any]:
        return last

    def fit(self, progress: bool = True) -> dict[str, Any]:
        cfg = self.cfg
        resumed = self.resume()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.max_steps, initial=self.step, desc=self.DESC, unit="step")
        last: dict[str, Any] = {"resumed": resumed}
        t_ckpt = t_log = time.time()
        since = 0
        while self.step < cfg.max_steps:
            t0 = time.time()
            stats = self.train_step()
            self.elapsed += time.time() - t0
            since += 1
            self._check_step()
            last = {"step": self.step, **stats}
            if self.step % cfg.log_every == 0:
                last["s_per_step"] = (time.time() - t_log) / max(since, 1)
                t_log, since = time.time(), 0
                self.log({**last, "elapsed_s": round(self.elapsed, 1), **self._log_extra()})
            if self.step % cfg.eval_every == 0 or self.step == cfg.max_steps:
                ev = self.evaluate()
                last.update(ev)
                self.log({"step": self.step, **ev})
            if (self.step % cfg.checkpoint_every == 0 or self.step == cfg.max_steps
                    or time.time() - t_ckpt >= 60 * cfg.checkpoint_minutes):
                self.save()
                t_ckpt = time.time()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(**self._postfix(stats))
        if bar is not None:
            bar.close()
        if latest_checkpoint(self.run_dir) is None:
            self.save()
        return self._result(last)


# ---- codec --------------------------------------------------------------------------------------------------


@dataclass
class CodecTrainConfig(Config):
    """How to train a :class:`SoundStream` (YAML: ``v2meow/configs/embedded/codec.yaml``)."""

    codec: SoundStreamConfig = field(default_factory=SoundStreamConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    batch_size: int = 8
    crop_seconds: float = 1.0
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

    def validate(self) -> None:
        check(self.batch_size >= 1 and self.crop_seconds > 0, "batch_size must be >= 1 and crop_seconds > 0.")
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

    def __init__(self, cfg: CodecTrainConfig, data_dir: str | os.PathLike, run_dir: str | os.PathLike,
                 device: str | None = None) -> None:
        self._start(cfg, run_dir, device)
        self.codec = SoundStream(cfg.codec).to(self.device)
        self.disc = MultiScaleSTFTDiscriminator(cfg.discriminator).to(self.device)
        kw = dict(betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, foreach=False)
        self.opt_g = torch.optim.AdamW(self.codec.parameters(), lr=cfg.lr, **kw)
        self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=cfg.disc_lr, **kw)
        self.data = AudioCrops(list_audio(data_dir, "train"), cfg.codec.sample_rate)
        self.data_dir = str(data_dir)
        self.autocast = cfg.precision == "bf16" or (cfg.precision == "auto" and self.device.type == "cuda")
        self.step = 0
        self.skipped = 0
        self.skipped_in_a_row = 0
        self.elapsed = 0.0  # training wall time over all sessions of this run
        n = round(cfg.eval_seconds * cfg.codec.sample_rate)
        # Validation crops: fixed, from training files (held-out music is for the benchmark only).
        self.val = self.data.batch(_step_rng(cfg.seed, 0, stream=1), cfg.eval_crops, n)
        self.log = _Log(self.run_dir)

    # -- checkpoints ------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"kind": self.KIND, "step": self.step, "skipped": self.skipped, "elapsed_s": round(self.elapsed, 1),
                "train_config": self.cfg.to_dict(), "data": self.data_dir, "train_files": len(self.data.paths),
                "train_seconds": round(self.data.seconds, 1)}

    def save(self) -> Path:
        model = {f"codec.{k}": v for k, v in self.codec.state_dict().items()}
        model.update({f"disc.{k}": v for k, v in self.disc.state_dict().items()})
        optim = _merge_optimizers({"g": self.opt_g, "d": self.opt_d})
        return save_checkpoint(self.run_dir, self.step, model, optim, self.state(), keep=self.cfg.keep_checkpoints)

    def resume(self) -> bool:
        path = latest_checkpoint(self.run_dir)
        if path is None:
            return False
        ck = load_checkpoint(path)
        st = ck["state"]
        if st.get("kind") != self.KIND:
            raise UserError(f"Run {self.run_dir} does not train a codec.")
        saved = st.get("train_config", {})
        for key in ("codec", "discriminator"):
            if saved.get(key) != self.cfg.to_dict()[key]:
                raise UserError(f"Run {self.run_dir} was started with another {key} config; use a new run directory.")
        self.codec.load_state_dict({k[6:]: v for k, v in ck["model"].items() if k.startswith("codec.")})
        self.disc.load_state_dict({k[5:]: v for k, v in ck["model"].items() if k.startswith("disc.")})
        opts = _split_optimizers(ck["optimizer"], ["g", "d"])
        self.opt_g.load_state_dict(opts["g"])
        self.opt_d.load_state_dict(opts["d"])
        self.step, self.skipped = int(st["step"]), int(st.get("skipped", 0))
        self.elapsed = float(st.get("elapsed_s", 0.0))
        return True

    # -- one step ---------------------------------------------------------------------------------------------
    def _disc_view(self, real: Tensor, fake: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        n = round(self.cfg.disc_crop_seconds * self.cfg.codec.sample_rate)
        if n <= 0 or n >= real.shape[-1]:
            return real, fake
        start = int(rng.integers(0, real.shape[-1] - n + 1))
        return real[:, start : start + n], fake[:, start : start + n]

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        lr_scale = _lr_at(self.step, 1.0, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)
        for g in self.opt_g.param_groups:
            g["lr"] = cfg.lr * lr_scale
        for g in self.opt_d.param_groups:
            g["lr"] = cfg.disc_lr * lr_scale
        rng = _step_rng(cfg.seed, self.step)
        wav = self.data.batch(rng, cfg.batch_size, round(cfg.crop_seconds * cfg.codec.sample_rate)).to(self.device)
        _reseed(cfg.seed, self.step)
        self.codec.train()
        self.disc.train()
        # The quantiser's EMA buffers change inside the forward pass: keep a copy to undo a non-finite step.
        before = {k: v.clone() for k, v in self.codec.quantizer.named_buffers()}
        stats: dict[str, float] = {}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            recon, codes, q_losses = self.codec(wav)
        recon = recon.float()
        c = cfg.codec
        stft = self.codec.stft_loss(recon, wav)
        mel = self.codec.mel_loss(recon, wav)
        loss = c.stft_weight * stft + c.mel_weight * mel + c.commitment_weight * q_losses["commitment"]
        loss = loss + q_losses["codebook"]
        stats.update(stft=stft.item(), mel=mel.item(), commitment=q_losses["commitment"].item(),
                     levels=float(codes.shape[1]))
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

    DESC = "train codec"

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


def _load_train_config(cls: type[Config], config_path: str | os.PathLike, file: str,
                       max_steps: int | None) -> Any:
    from v2meow.config import load_yaml

    path = _resolve_config(config_path, file)
    cfg = cls.from_dict(load_yaml(path), where=str(path))
    if max_steps is not None:
        cfg = cfg.replace(max_steps=int(max_steps))
    return cfg


def train_codec(data_dir: str | os.PathLike, config_path: str | os.PathLike, run_dir: str | os.PathLike,
                max_steps: int | None = None, device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) a SoundStream codec on the audio of ``data_dir``; checkpoints go to ``run_dir``.

    ``config_path`` is a YAML file mapping onto :class:`CodecTrainConfig`, or a shipped config folder name
    (``embedded``). ``max_steps`` overrides the config's (and so its learning-rate schedule). Returns the last
    step's statistics and the run directory.
    """
    cfg = _load_train_config(CodecTrainConfig, config_path, "codec.yaml", max_steps)
    return CodecTrainer(cfg, data_dir, run_dir, device).fit(progress)


def load_codec_run(run_dir: str | os.PathLike) -> tuple[SoundStream, dict[str, Any]]:
    """The codec of a run's latest checkpoint (eval mode, float32) and that checkpoint's state."""
    path = latest_checkpoint(run_dir)
    if path is None:
        raise UserError(f"{run_dir} holds no codec checkpoint.")
    ck = load_checkpoint(path)
    st = ck["state"]
    if st.get("kind") != CodecTrainer.KIND:
        raise UserError(f"Run {run_dir} does not train a codec.")
    codec = SoundStream(SoundStreamConfig.from_dict(st["train_config"]["codec"]))
    codec.load_state_dict({k[6:]: v for k, v in ck["model"].items() if k.startswith("codec.")})
    return codec.eval(), st


# ---- semantic tokenizer -------------------------------------------------------------------------------------


@dataclass
class SemanticTrainConfig(Config):
    """How to train the masked-prediction encoder and fit its k-means (YAML: ``configs/embedded/semantic.yaml``)."""

    encoder: SemanticEncoderConfig = field(default_factory=SemanticEncoderConfig)
    vocab_size: int = 512  # clusters of the final k-means (the semantic vocabulary)
    # layer whose k-means gives the tokens (-1: encoder.token_layer); chosen after training, by measurement. The
    # exported encoder keeps only the layers up to it (the rest only served the masked-prediction loss).
    token_layer: int = -1
    target_crops: int = 1000  # crops whose log-mel + chroma frames fit the iteration-1 target k-means
    kmeans_crops: int = 1000  # crops whose token-layer features fit the final k-means
    batch_size: int = 16
    crop_seconds: float = 4.0
    lr: float = 5e-4
    betas: tuple[float, ...] = (0.9, 0.98)
    weight_decay: float = 0.01
    warmup_steps: int = 200
    max_steps: int = 2000
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 200
    eval_crops: int = 16
    log_every: int = 25
    checkpoint_every: int = 500
    checkpoint_minutes: float = 5.0
    keep_checkpoints: int = 2
    seed: int = 0
    threads: int = 2
    precision: str = "auto"

    def validate(self) -> None:
        check(2 <= self.vocab_size <= 65536, "vocab_size must be in 2..65536.")
        check(-1 <= self.token_layer <= self.encoder.layers,
              f"token_layer must be -1 or in [0, {self.encoder.layers}], got {self.token_layer}.")
        check(self.target_crops >= 1 and self.kmeans_crops >= 1, "target_crops and kmeans_crops must be >= 1.")
        check(self.batch_size >= 1 and self.crop_seconds > 0, "batch_size must be >= 1 and crop_seconds > 0.")
        check(0 < self.lr <= 1 and len(self.betas) == 2, "lr must be in (0, 1] and betas two numbers.")
        check(self.warmup_steps >= 0 and self.max_steps >= 1, "warmup_steps >= 0 and max_steps >= 1.")
        check(0 <= self.min_lr_ratio <= 1 and self.grad_clip >= 0, "min_lr_ratio in [0, 1], grad_clip >= 0.")
        check(min(self.eval_every, self.log_every, self.checkpoint_every, self.keep_checkpoints, self.eval_crops) >= 1,
              "eval_every, log_every, checkpoint_every, keep_checkpoints and eval_crops must be >= 1.")
        check(self.checkpoint_minutes > 0, "checkpoint_minutes must be > 0.")
        check(self.threads >= 0 and self.precision in PRECISIONS, f"threads >= 0, precision one of {PRECISIONS}.")


TARGETS_FILE = "targets_kmeans.safetensors"
TOKENIZER_DIR = "tokenizer"


class SemanticTrainer(_StepTrainer):
    """HuBERT iteration 1 on an audio folder, then the tokenizer's k-means; see :func:`train_semantic_tokenizer`."""

    KIND = "semantic"

    def __init__(self, cfg: SemanticTrainConfig, data_dir: str | os.PathLike, run_dir: str | os.PathLike,
                 device: str | None = None) -> None:
        self._start(cfg, run_dir, device)
        self.encoder = SemanticEncoder(cfg.encoder).to(self.device)
        decay = [p for n, p in self.encoder.named_parameters() if p.dim() >= 2]
        rest = [p for n, p in self.encoder.named_parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": rest, "weight_decay": 0.0}],
                                     lr=cfg.lr, betas=tuple(cfg.betas), foreach=False)
        self.data = AudioCrops(list_audio(data_dir, "train"), cfg.encoder.sample_rate)
        self.data_dir = str(data_dir)
        self.crop = round(cfg.crop_seconds * cfg.encoder.sample_rate)
        self.autocast = cfg.precision == "bf16" or (cfg.precision == "auto" and self.device.type == "cuda")
        self.step = 0
        self.elapsed = 0.0
        self.targets = self._target_kmeans()
        self.val = self.data.batch(_step_rng(cfg.seed, 0, stream=1), cfg.eval_crops, self.crop)
        self.log = _Log(self.run_dir)

    def _crops(self, count: int, stream: int) -> list[Tensor]:
        """``count`` crops ``[T]`` drawn from their own random stream (not the training batches')."""
        rng = _step_rng(self.cfg.seed, 0, stream=stream)
        return [torch.from_numpy(self.data.crop(rng, self.crop)) for _ in range(count)]

    def _target_kmeans(self) -> KMeans:
        """The iteration-1 targets: k-means of log-mel + chroma frames, fitted once per run and saved."""
        path = self.run_dir / TARGETS_FILE
        if path.is_file():
            km = KMeans.load(path)
        else:
            t0 = time.time()
            crops = self._crops(self.cfg.target_crops, stream=2)
            batches = [torch.stack(crops[i : i + 64]) for i in range(0, len(crops), 64)]
            frontend = self.encoder.frontend.cpu()
            km = fit_first_iteration_kmeans(frontend, batches, self.cfg.encoder.num_targets, seed=self.cfg.seed,
                                            fitted_on=frontend.identity())
            self.encoder.frontend.to(self.device)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            km.save(path)
            self.elapsed += time.time() - t0
        if km.k != self.cfg.encoder.num_targets:
            raise UserError(f"{path} has {km.k} targets, but the encoder predicts {self.cfg.encoder.num_targets}.")
        return km.to(self.device)

    def _targets_for(self, wav: Tensor) -> Tensor:
        with torch.no_grad():
            return self.targets.predict(self.encoder.frontend(wav).transpose(1, 2))

    # -- checkpoints ------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"kind": self.KIND, "step": self.step, "elapsed_s": round(self.elapsed, 1),
                "train_config": self.cfg.to_dict(), "data": self.data_dir, "train_files": len(self.data.paths),
                "train_seconds": round(self.data.seconds, 1)}

    def save(self) -> Path:
        return save_checkpoint(self.run_dir, self.step, self.encoder.state_dict(), self.opt.state_dict(),
                               self.state(), keep=self.cfg.keep_checkpoints)

    def resume(self) -> bool:
        path = latest_checkpoint(self.run_dir)
        if path is None:
            return False
        ck = load_checkpoint(path)
        st = ck["state"]
        if st.get("kind") != self.KIND:
            raise UserError(f"Run {self.run_dir} does not train a semantic tokenizer.")
        if st.get("train_config", {}).get("encoder") != self.cfg.to_dict()["encoder"]:
            raise UserError(f"Run {self.run_dir} was started with another encoder config; use a new run directory.")
        self.encoder.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.step = int(st["step"])
        self.elapsed = float(st.get("elapsed_s", 0.0))
        return True

    # -- loop -------------------------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        lr = _lr_at(self.step, cfg.lr, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)
        for g in self.opt.param_groups:
            g["lr"] = lr
        wav = self.data.batch(_step_rng(cfg.seed, self.step), cfg.batch_size, self.crop).to(self.device)
        _reseed(cfg.seed, self.step)
        self.encoder.train()
        targets = self._targets_for(wav)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.encoder.loss(wav, targets)
        stats = {"loss": loss.item(), "lr": lr}
        if torch.isfinite(loss):
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(self.encoder.parameters(), cfg.grad_clip or float("inf"))
            stats["grad_norm"] = float(norm)
            if torch.isfinite(norm):
                self.opt.step()
            else:
                stats["skipped_step"] = 1.0
        else:
            stats["skipped_step"] = 1.0
        self.step += 1
        return stats

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Masked-prediction loss and accuracy on fixed validation crops (a fixed mask)."""
        self.encoder.eval()
        wav = self.val.to(self.device)
        targets = self._targets_for(wav)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            c = self.encoder.config
            from v2meow.tokenizers.semantic import span_mask

            mask = span_mask(wav.shape[0], targets.shape[1], c.mask_prob, c.mask_span, device=wav.device)
        x = self.encoder._embed(wav, mask)
        for block in self.encoder.layers:
            x = block(x)
        logits = self.encoder.head(self.encoder.final_norm(x[mask])).float()
        t = targets[mask]
        loss = float(nn.functional.cross_entropy(logits, t))
        acc = float((logits.argmax(-1) == t).float().mean())
        self.encoder.train()
        return {"val_loss": loss, "val_accuracy": acc}

    DESC = "train semantic encoder"

    def _postfix(self, stats: dict[str, Any]) -> dict[str, str]:
        return {"loss": f"{stats['loss']:.3f}"}

    def fit_tokenizer(self, k: int | None = None) -> SemanticTokenizer:
        """Keep the encoder's layers up to the token layer, round them to float16 (as they ship), fit the k-means
        of the token layer, and save both to ``run_dir/tokenizer/``."""
        cfg = self.cfg
        k = k or cfg.vocab_size
        t0 = time.time()
        encoder = truncated_encoder(self.encoder, cfg.token_layer if cfg.token_layer >= 0 else None)
        encoder.load_state_dict({n: v.half().float() for n, v in encoder.state_dict().items()})
        crops = self._crops(cfg.kmeans_crops, stream=3)
        batches = [torch.stack(crops[i : i + 32]) for i in range(0, len(crops), 32)]
        tok = SemanticTokenizer.fit(encoder, batches, k, seed=cfg.seed)
        _round_kmeans_to_half(tok.kmeans)
        out = self.run_dir / TOKENIZER_DIR
        out.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save_file

        save_file({n: v.half().contiguous() for n, v in encoder.state_dict().items()},
                  str(out / "semantic_encoder.safetensors"))
        tok.kmeans.save(out / "semantic_kmeans.safetensors")
        info = {"encoder": encoder.config.to_dict(), "trained_encoder": cfg.encoder.to_dict(), "layer": tok.layer,
                "vocab_size": k, "step": self.step,
                "identity": tok.identity(), "kmeans_seconds": round(time.time() - t0, 1),
                "kmeans_frames": sum(int(b.shape[0]) * encoder.num_frames(b.shape[1]) for b in batches)}
        (out / "semantic.json").write_text(json.dumps(info, indent=1))
        return tok


def truncated_encoder(encoder: SemanticEncoder, layer: int | None = None) -> SemanticEncoder:
    """A float32 CPU copy of ``encoder`` (eval mode) with only the layers its tokens need (``layer``, default
    ``token_layer``; at least one is kept, as the config requires) and ``token_layer`` set to ``layer``."""
    layer = encoder.config.token_layer if layer is None else layer
    cfg = encoder.config.replace(layers=max(layer, 1), token_layer=layer)
    out = SemanticEncoder(cfg)
    keep = {n: v.detach().float().cpu() for n, v in encoder.state_dict().items()
            if not n.startswith("layers.") or int(n.split(".")[1]) < cfg.layers}
    out.load_state_dict(keep)
    return out.eval()


def _round_kmeans_to_half(km: KMeans) -> None:
    """The k-means as float16 would store it (centroids, mean, scale), kept in float32."""
    km.centroids = km.centroids.half().float()
    km.mean = km.mean.half().float()
    km.scale = km.scale.half().float().clamp_min(6e-5)  # the smallest float16 normal: no division by ~0


def train_semantic_tokenizer(data_dir: str | os.PathLike, config_path: str | os.PathLike,
                             run_dir: str | os.PathLike, max_steps: int | None = None, device: str | None = None,
                             progress: bool = True, k: int | None = None) -> dict[str, Any]:
    """Train (or resume) the semantic encoder on ``data_dir``, then fit its k-means of ``k`` clusters.

    The fitted tokenizer is written to ``run_dir/tokenizer/`` (float16 encoder, k-means with its ``fitted_on``
    identity, ``semantic.json``). Returns the last statistics and the tokenizer's identity.
    """
    cfg = _load_train_config(SemanticTrainConfig, config_path, "semantic.yaml", max_steps)
    if k is not None:
        cfg = cfg.replace(vocab_size=int(k))
    trainer = SemanticTrainer(cfg, data_dir, run_dir, device)
    last = trainer.fit(progress)
    tok = trainer.fit_tokenizer()
    return {**last, "step": trainer.step, "elapsed_s": round(trainer.elapsed, 1), "run_dir": str(run_dir),
            "identity": tok.identity()}


def load_semantic_run(run_dir: str | os.PathLike) -> tuple[SemanticTokenizer, dict[str, Any]]:
    """The fitted tokenizer of a semantic run (``run_dir/tokenizer/``) and its ``semantic.json``."""
    from safetensors.torch import load_file

    out = Path(run_dir) / TOKENIZER_DIR
    info_file = out / "semantic.json"
    if not info_file.is_file():
        raise UserError(f"{run_dir} holds no fitted semantic tokenizer (train it to the end first).")
    info = json.loads(info_file.read_text())
    encoder = SemanticEncoder(SemanticEncoderConfig.from_dict(info["encoder"]))
    encoder.load_state_dict({k: v.float() for k, v in load_file(str(out / "semantic_encoder.safetensors")).items()})
    kmeans = KMeans.load(out / "semantic_kmeans.safetensors")
    return SemanticTokenizer(encoder.eval(), kmeans, info["layer"]), info


# ---- export -------------------------------------------------------------------------------------------------


def export_tokenizers(codec_run: str | os.PathLike, semantic_run: str | os.PathLike,
                      out_dir: str | os.PathLike, coarse_levels: int | None = None,
                      num_levels: int | None = None) -> Path:
    """Both trained tokenizers → a tokenizer directory (float16 weights) that :func:`load_tokenizers` reads.

    ``num_levels`` keeps only the codec's first RVQ levels (default: all); ``coarse_levels`` records the
    coarse/fine split for the stages (default: half the levels).
    """
    from v2meow.tokenizers.default import save_tokenizers

    codec, codec_state = load_codec_run(codec_run)
    if num_levels is not None:
        if not 1 <= num_levels <= codec.num_levels:
            raise UserError(f"The codec has {codec.num_levels} levels; cannot keep {num_levels}.")
        codec = codec.with_levels(num_levels).eval()
    semantic, semantic_info = load_semantic_run(semantic_run)
    training = {
        "codec": {**{k: codec_state.get(k) for k in ("step", "skipped", "elapsed_s", "train_files", "train_seconds")},
                  "trained_levels": codec_state["train_config"]["codec"]["num_levels"]},
        "semantic": {"step": semantic_info.get("step"), "kmeans_frames": semantic_info.get("kmeans_frames")},
    }
    data = codec_state.get("data")
    sources = _sources_summary(Path(data)) if data else None
    return save_tokenizers(codec, semantic, out_dir, training=training, sources=sources, coarse_levels=coarse_levels)


def _sources_summary(data_dir: Path) -> dict[str, Any] | None:
    """Licences and packages of the training music (from ``sources.json``), for the model card."""
    manifest = data_dir / SOURCES_FILE
    if not manifest.is_file():
        return None
    m = json.loads(manifest.read_text())
    train = [e for e in m["files"] if not e.get("heldout")]
    packages: dict[str, dict[str, Any]] = {}
    for e in train:
        p = packages.setdefault(e["package"], {"files": 0, "seconds": 0.0, "licences": set()})
        p["files"] += 1
        p["seconds"] += e["duration"]
        p["licences"].add(e["licence"])
    return {
        "trained_on_files": len(train),
        "trained_on_seconds": round(sum(e["duration"] for e in train), 1),
        "heldout_files": sorted(e["name"] for e in m["files"] if e.get("heldout")),
        "packages": {k: {"files": v["files"], "seconds": round(v["seconds"], 1), "licences": sorted(v["licences"])}
                     for k, v in sorted(packages.items())},
        "how": "scripts/get_music.py (records each file's source and licence in sources.json)",
    }
