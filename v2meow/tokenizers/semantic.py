"""Semantic tokenizer: a self-supervised audio encoder + k-means of one of its layers (w2v-BERT's role).

The embedded path trains its own small encoder with the HuBERT recipe: spans of 25 Hz frames are replaced by
a learned mask embedding, and the encoder predicts, for the masked frames, target ids from a k-means of
earlier features (iteration 1: log-mel + chroma frames, see :mod:`v2meow.tokenizers.kmeans`; iteration 2:
this encoder's own layer). A :class:`SemanticTokenizer` then maps audio to the k-means ids of one layer.

Pretrained encoders (w2v-BERT, MERT, HuBERT) plug in through :class:`FeatureEncoder`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from v2meow.configbase import Config, check, config_property, forwarded
from v2meow.errors import IdentityMismatch, UserError
from v2meow.identity import config_hash, weights_fingerprint
from v2meow.tokenizers.kmeans import KMeans
from v2meow.tokenizers.mel import Chroma, LogMel

__all__ = [
    "SemanticEncoderConfig",
    "SpectralFrontend",
    "SemanticEncoder",
    "FeatureEncoder",
    "SemanticTokenizer",
    "kmeans_fit_identity",
    "span_mask",
]


@dataclass
class SemanticEncoderConfig(Config):
    """The project's masked-prediction encoder. ``hop_length = sample_rate / frame_rate`` (640 = 25 frames/s)."""

    sample_rate: int = 16000
    frame_rate: float = 25.0
    n_fft: int = 1024
    n_mels: int = 64
    chroma: bool = True  # append 12 chroma bins: harmony is what music semantics should keep
    width: int = 256
    layers: int = 6
    heads: int = 4
    ff_mult: int = 4
    dropout: float = 0.1
    pos_conv_kernel: int = 15  # convolutional relative positions (HuBERT): no maximum length
    pos_conv_groups: int = 16
    token_layer: int = 4  # k-means is fitted on the output of this layer (0 = the input projection)
    num_targets: int = 100  # vocabulary of the masked-prediction targets
    mask_prob: float = 0.13  # probability that a frame starts a masked span (~50% masked with span 5)
    mask_span: int = 5  # frames per masked span (200 ms at 25 Hz)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate / self.frame_rate)

    @property
    def input_dim(self) -> int:
        return self.n_mels + (12 if self.chroma else 0)

    def validate(self) -> None:
        check(self.sample_rate > 0 and self.frame_rate > 0, "SemanticEncoder sample_rate and frame_rate must be > 0.")
        check(
            abs(self.sample_rate / self.hop_length - self.frame_rate) < 1e-6,
            f"SemanticEncoder frame_rate {self.frame_rate:g} must divide sample_rate {self.sample_rate} "
            "into a whole number of samples per frame.",
        )
        check(self.n_fft >= self.hop_length, f"SemanticEncoder n_fft must be >= the hop {self.hop_length}.")
        check(self.n_mels >= 1, f"SemanticEncoder n_mels must be >= 1, got {self.n_mels}.")
        check(self.width >= 1 and self.layers >= 1, "SemanticEncoder width and layers must be >= 1.")
        check(self.heads >= 1 and self.width % self.heads == 0, "SemanticEncoder width must be divisible by heads.")
        check(self.ff_mult >= 1, "SemanticEncoder ff_mult must be >= 1.")
        check(0.0 <= self.dropout < 1.0, "SemanticEncoder dropout must be in [0, 1).")
        check(self.pos_conv_kernel % 2 == 1, "SemanticEncoder pos_conv_kernel must be odd.")
        check(
            self.pos_conv_groups >= 1 and self.width % self.pos_conv_groups == 0,
            "SemanticEncoder width must be divisible by pos_conv_groups.",
        )
        check(
            0 <= self.token_layer <= self.layers,
            f"SemanticEncoder token_layer must be in [0, {self.layers}], got {self.token_layer}.",
        )
        check(self.num_targets >= 2, "SemanticEncoder num_targets must be >= 2.")
        check(0.0 < self.mask_prob <= 1.0, "SemanticEncoder mask_prob must be in (0, 1].")
        check(self.mask_span >= 1, "SemanticEncoder mask_span must be >= 1.")

    @classmethod
    def debug(cls) -> SemanticEncoderConfig:
        """Tiny preset for tests: milliseconds per call on a CPU."""
        return cls(
            n_mels=16,
            width=32,
            layers=2,
            heads=2,
            ff_mult=2,
            dropout=0.0,
            pos_conv_kernel=5,
            pos_conv_groups=4,
            token_layer=1,
            num_targets=16,
        )


class SpectralFrontend(nn.Module):
    """``wav [B, T]`` → log-mel (+ chroma) frames ``[B, n_mels (+12), ceil(T / hop)]`` at the semantic rate."""

    def __init__(self, config: SemanticEncoderConfig) -> None:
        super().__init__()
        c = config
        self.hop_length = c.hop_length
        self.mel = LogMel(c.sample_rate, c.n_fft, c.hop_length, c.n_mels, padding="same")
        self.chroma = Chroma(c.sample_rate, c.n_fft, c.hop_length, padding="same") if c.chroma else None
        self._identity = {
            "name": "v2meow-spectral-frontend",
            "version": "1",
            "sample_rate": c.sample_rate,
            "hop_length": c.hop_length,
            "n_fft": c.n_fft,
            "n_mels": c.n_mels,
            "chroma": c.chroma,
        }

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def forward(self, wav: Tensor) -> Tensor:
        feats = self.mel(wav)
        if self.chroma is not None:
            feats = torch.cat([feats, self.chroma(wav)], dim=1)
        return feats


def span_mask(
    batch: int,
    frames: int,
    prob: float,
    span: int,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """HuBERT masking: each frame starts a span of ``span`` frames with probability ``prob``; every row gets
    at least one masked frame. Returns boolean ``[batch, frames]``."""
    starts = torch.rand(batch, frames, generator=generator, device=device) < prob  # [B, T]
    empty = ~starts.any(1)
    if bool(empty.any()):
        forced = torch.randint(0, frames, (batch,), generator=generator, device=device)
        starts[empty, forced[empty]] = True
    # Frame t is masked when a span started in [t - span + 1, t]: a max-pool over that window.
    padded = F.pad(starts.float()[:, None, :], (span - 1, 0))
    return F.max_pool1d(padded, span, stride=1)[:, 0] > 0


@runtime_checkable
class FeatureEncoder(Protocol):
    """What :class:`SemanticTokenizer` needs from an encoder (own or pretrained adapter)."""

    sample_rate: int
    hop_length: int

    def identity(self) -> dict[str, Any]: ...

    def features(self, wav: Tensor, layer: int) -> Tensor: ...


class SemanticEncoder(nn.Module):
    """Small Transformer encoder over 25 Hz spectral frames, trained by masked prediction.

    ``wav [B, T]`` → frames ``[B, T_s, F]`` → linear projection → convolutional positions → ``layers``
    pre-norm Transformer layers → ``[B, T_s, width]``.
    """

    NAME = "v2meow-semantic-encoder"
    VERSION = "1"

    def __init__(self, config: SemanticEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or SemanticEncoderConfig()
        self.frontend = SpectralFrontend(c)
        self.in_norm = nn.LayerNorm(c.input_dim)
        self.proj = nn.Linear(c.input_dim, c.width)
        self.mask_embedding = nn.Parameter(torch.empty(c.width).uniform_(-0.5, 0.5))
        self.pos_conv = nn.Conv1d(
            c.width, c.width, c.pos_conv_kernel, padding=c.pos_conv_kernel // 2, groups=c.pos_conv_groups
        )
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                c.width, c.heads, c.ff_mult * c.width, c.dropout, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(c.layers)
        )
        self.final_norm = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, c.num_targets)

    sample_rate = config_property("sample_rate")
    hop_length = config_property("hop_length")
    frame_rate = config_property("frame_rate")

    def num_frames(self, num_samples: int) -> int:
        return math.ceil(num_samples / self.hop_length)

    def identity(self) -> dict[str, Any]:
        return {
            "name": self.NAME,
            "version": self.VERSION,
            "config_hash": config_hash(self.config),
            "weights": weights_fingerprint(self),
        }

    def _embed(self, wav: Tensor, mask: Tensor | None = None) -> Tensor:
        """``wav [B, T]`` → layer-0 states ``[B, T_s, width]``, masked frames replaced by the mask embedding."""
        if wav.dim() != 2 or wav.shape[-1] == 0:
            raise ValueError(f"wav must be a non-empty [B, T], got shape {tuple(wav.shape)}.")
        frames = self.frontend(wav).transpose(1, 2)  # [B, T_s, F]
        x = self.proj(self.in_norm(frames))  # [B, T_s, W]
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_embedding.to(x.dtype), x)
        return x + F.gelu(self.pos_conv(x.transpose(1, 2))).transpose(1, 2)

    def features(self, wav: Tensor, layer: int | None = None) -> Tensor:
        """``wav [B, T]`` → output of layer ``layer`` (default ``token_layer``; 0 = input) ``[B, ceil(T/hop), W]``.

        Only the first ``layer`` layers run. Intermediate outputs are the pre-norm residual stream.
        """
        layer = self.config.token_layer if layer is None else layer
        if not 0 <= layer <= self.config.layers:
            raise ValueError(f"layer must be in [0, {self.config.layers}], got {layer}.")
        x = self._embed(wav)
        for block in self.layers[:layer]:
            x = block(x)
        return x

    def all_features(self, wav: Tensor) -> list[Tensor]:
        """``wav [B, T]`` → the outputs of layers 0 (input) to ``layers``, each ``[B, ceil(T/hop), W]``: every
        layer a tokenizer could take its tokens from, in one pass (for choosing the layer by measurement)."""
        out = [self._embed(wav)]
        for block in self.layers:
            out.append(block(out[-1]))
        return out

    def loss(self, wav: Tensor, targets: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Masked-prediction cross-entropy: ``wav [B, T]``, target ids ``[B, ceil(T / hop)]`` → scalar.

        Spans of frames are masked (see :func:`span_mask`); the loss covers the masked frames only, so the
        encoder must infer them from context.
        """
        c = self.config
        b, t_s = wav.shape[0], self.num_frames(wav.shape[-1])
        if targets.shape != (b, t_s):
            raise ValueError(f"targets must be [B, T_s] = [{b}, {t_s}] for this audio, got {tuple(targets.shape)}.")
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= c.num_targets):
            raise ValueError(f"targets must lie in [0, {c.num_targets}).")
        mask = span_mask(b, t_s, c.mask_prob, c.mask_span, device=wav.device, generator=generator)
        x = self._embed(wav, mask)
        for block in self.layers:
            x = block(x)
        logits = self.head(self.final_norm(x[mask]))  # [M, num_targets]
        return F.cross_entropy(logits.float(), targets[mask].long())


def kmeans_fit_identity(encoder: FeatureEncoder, layer: int, chroma: int = 0) -> dict[str, Any]:
    """What a tokenizer's k-means must have been fitted on: the encoder's identity, the layer, and how many
    copies of the frames' chroma were appended (named only when some were, so older k-means still match)."""
    return {**encoder.identity(), "layer": layer, **({"chroma": chroma} if chroma else {})}


class SemanticTokenizer(nn.Module):
    """``wav [B, T]`` → semantic token ids ``[B, ceil(T / hop)]``: k-means of one encoder layer.

    ``chroma > 0`` appends the frames' 12 chroma bins, repeated ``chroma`` times, to the layer's features before
    the k-means (which standardises every dimension, so repeating weighs harmony up): the encoder's layers keep
    onsets and timbre far better than harmony (docs/semantic-tokens.md).

    Refuses (IdentityMismatch) a k-means fitted on another encoder, other weights, another layer or chroma.
    """

    NAME = "v2meow-semantic"
    VERSION = "1"

    def __init__(self, encoder: FeatureEncoder, kmeans: KMeans, layer: int | None = None, chroma: int = 0) -> None:
        super().__init__()
        if layer is None:
            layer = getattr(getattr(encoder, "config", None), "token_layer", None)
            if layer is None:
                raise ValueError("layer must be given for an encoder without config.token_layer.")
        if not kmeans.fitted:
            raise UserError("the semantic tokenizer's k-means has not been fitted.")
        if not (isinstance(chroma, int) and 0 <= chroma <= 16):
            raise ValueError(f"chroma must be a whole number of copies in 0..16, got {chroma!r}.")
        expected = kmeans_fit_identity(encoder, layer, chroma)
        for key in sorted(set(expected) | set(kmeans.fitted_on)):
            if expected.get(key) != kmeans.fitted_on.get(key):
                raise IdentityMismatch(
                    f"this k-means was fitted on features with {key}={kmeans.fitted_on.get(key)!r}, but the "
                    f"tokenizer's encoder gives {key}={expected.get(key)!r}."
                )
        self.encoder = encoder
        self.kmeans = kmeans
        self.layer = layer
        self.chroma = chroma
        self.chroma_frames = chroma_of_frames(encoder) if chroma else None

    @classmethod
    def fit(
        cls,
        encoder: FeatureEncoder,
        wavs: Iterable[Tensor],
        k: int,
        seed: int = 0,
        layer: int | None = None,
        max_frames: int = 200_000,
        chroma: int = 0,
    ) -> SemanticTokenizer:
        """Fit a k-means of ``k`` clusters on the ``layer`` features of ``wavs`` (each ``[T]`` or ``[B, T]``),
        with ``chroma`` copies of the frames' chroma appended."""
        if layer is None:
            layer = encoder.config.token_layer  # type: ignore[attr-defined]
        chroma_frames = chroma_of_frames(encoder) if chroma else None
        feats = []
        with _eval_mode(encoder), torch.no_grad():
            for wav in wavs:
                wav = wav[None] if wav.dim() == 1 else wav
                f = token_features(encoder, layer, chroma_frames, chroma, wav)
                feats.append(f.reshape(-1, f.shape[-1]).float().cpu())
        if not feats:
            raise UserError("no audio was given to fit the semantic k-means.")
        x = torch.cat(feats)
        if x.shape[0] > max_frames:
            x = x[torch.linspace(0, x.shape[0] - 1, max_frames).round().long()]
        kmeans = KMeans().fit(x.numpy(), k, seed=seed, fitted_on=kmeans_fit_identity(encoder, layer, chroma))
        return cls(encoder, kmeans, layer, chroma)

    @property
    def vocab_size(self) -> int:
        return self.kmeans.k

    sample_rate = forwarded("encoder", "sample_rate")
    hop_length = forwarded("encoder", "hop_length")

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def identity(self) -> dict[str, Any]:
        enc = self.encoder.identity()
        return {
            "name": self.NAME,
            "version": self.VERSION,
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            "vocab_size": self.vocab_size,
            "layer": self.layer,
            **({"chroma": self.chroma} if self.chroma else {}),
            "encoder": enc.get("name"),
            "encoder_config_hash": enc.get("config_hash"),
            "encoder_weights": enc.get("weights"),
            "kmeans": weights_fingerprint(self.kmeans),
        }

    @torch.no_grad()
    def tokenize(self, wav: Tensor) -> Tensor:
        """``wav [B, T]`` at :attr:`sample_rate` → ids ``[B, ceil(T / hop)]`` in ``[0, vocab_size)``."""
        with _eval_mode(self.encoder):
            return self.kmeans.predict(token_features(self.encoder, self.layer, self.chroma_frames, self.chroma, wav))

    forward = tokenize


def chroma_of_frames(encoder: FeatureEncoder) -> Chroma:
    """Chroma at the encoder's frames (``ceil(T / hop)`` of them), over the encoder's own FFT size when it has
    one (the project's encoder: the chroma its frontend reads), else four hops."""
    sr, hop = int(encoder.sample_rate), int(encoder.hop_length)  # type: ignore[attr-defined]
    n_fft = int(getattr(getattr(encoder, "config", None), "n_fft", 0) or 4 * hop)
    return Chroma(sr, max(n_fft, hop), hop, padding="same")


def token_features(encoder: FeatureEncoder, layer: int, chroma_frames: Chroma | None, copies: int,
                   wav: Tensor) -> Tensor:
    """What the k-means sees: ``[B, frames, W (+ 12 × copies)]``."""
    f = encoder.features(wav, layer)
    if chroma_frames is None or copies == 0:
        return f
    c = chroma_frames(wav.float()).transpose(1, 2)[:, : f.shape[1]].to(f.dtype)
    return torch.cat([f, c.repeat(1, 1, copies)], dim=-1)


class _eval_mode:
    """Context manager: a module in eval mode inside, its previous mode restored after."""

    def __init__(self, module: Any) -> None:
        self.module = module if isinstance(module, nn.Module) else None
        self.was_training = False

    def __enter__(self) -> None:
        if self.module is not None:
            self.was_training = self.module.training
            self.module.eval()

    def __exit__(self, *exc: object) -> None:
        if self.module is not None:
            self.module.train(self.was_training)
