"""Training the semantic tokenizer (see :func:`train_semantic_tokenizer`)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from v2meow.configbase import Config, check
from v2meow.errors import UserError
from v2meow.tokenizers.kmeans import KMeans, fit_first_iteration_kmeans
from v2meow.tokenizers.semantic import SemanticEncoder, SemanticEncoderConfig, SemanticTokenizer
from v2meow.train.tokenizers.common import PRECISIONS, _load_train_config, _StepTrainer


@dataclass
class SemanticTrainConfig(Config):
    """How to train the masked-prediction encoder and fit its k-means (YAML: ``configs/embedded/semantic.yaml``)."""

    encoder: SemanticEncoderConfig = field(default_factory=SemanticEncoderConfig)
    vocab_size: int = 512  # clusters of the final k-means (the semantic vocabulary)
    # layer whose k-means gives the tokens (-1: encoder.token_layer); chosen after training, by measurement. The
    # exported encoder keeps only the layers up to it (the rest only served the masked-prediction loss).
    token_layer: int = -1
    # copies of the frames' 12 chroma bins appended to the token layer's features before the k-means (0: none);
    # the layer keeps onsets far better than harmony, and the chroma gives it back (docs/semantic-tokens.md)
    token_chroma: int = 0
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
        check(0 <= self.token_chroma <= 16, f"token_chroma must be in 0..16, got {self.token_chroma}.")
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
    WHAT = "a semantic tokenizer"
    DESC = "train semantic encoder"
    PARTS = ("encoder",)

    def _build(self) -> None:
        cfg = self.cfg
        self.encoder = SemanticEncoder(cfg.encoder).to(self.device)
        decay = [p for n, p in self.encoder.named_parameters() if p.dim() >= 2]
        rest = [p for n, p in self.encoder.named_parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": rest, "weight_decay": 0.0}],
                                     lr=cfg.lr, betas=tuple(cfg.betas), foreach=False)

    def _prepare(self) -> None:
        self.crop = round(self.cfg.crop_seconds * self.cfg.encoder.sample_rate)
        self.targets = self._target_kmeans()
        self.val = self.data.batch(self._rng(0, stream=1), self.cfg.eval_crops, self.crop)

    def _crops(self, count: int, stream: int) -> list[Tensor]:
        """``count`` crops ``[T]`` drawn from their own random stream (not the training batches')."""
        rng = self._rng(0, stream=stream)
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
    def _checkpoint(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.encoder.state_dict(), self.opt.state_dict()

    def _restore(self, ck: dict[str, Any]) -> None:
        self.encoder.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])

    # -- loop -------------------------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        lr = self._lr(cfg.lr)
        for g in self.opt.param_groups:
            g["lr"] = lr
        wav = self.data.batch(self._rng(self.step), cfg.batch_size, self.crop).to(self.device)
        self._reseed()
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
        tok = SemanticTokenizer.fit(encoder, batches, k, seed=cfg.seed, chroma=cfg.token_chroma)
        _round_kmeans_to_half(tok.kmeans)
        out = self.run_dir / TOKENIZER_DIR
        out.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save_file

        save_file({n: v.half().contiguous() for n, v in encoder.state_dict().items()},
                  str(out / "semantic_encoder.safetensors"))
        tok.kmeans.save(out / "semantic_kmeans.safetensors")
        info = {"encoder": encoder.config.to_dict(), "trained_encoder": cfg.encoder.to_dict(), "layer": tok.layer,
                "chroma": tok.chroma, "vocab_size": k, "step": self.step,
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
    return SemanticTokenizer(encoder.eval(), kmeans, info["layer"], chroma=int(info.get("chroma", 0))), info
