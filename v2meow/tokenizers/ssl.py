"""Pretrained self-supervised audio encoders for the semantic tokenizer: HuBERT, MERT and w2v-BERT 2.0.

Each satisfies :class:`v2meow.tokenizers.semantic.FeatureEncoder` (``sample_rate``, ``hop_length``,
``identity()``, ``features(wav, layer) → [B, T_s, D]``), so :class:`SemanticTokenizer` and its k-means work on
them unchanged. ``layer`` counts Transformer layers: 0 is the input of the first layer, ``L`` the output of
layer ``L`` (before any final norm). Only the first ``layer`` layers are kept (the rest are never run, and a
saved model directory does not store them).

- ``hubert``: transformers ``HubertModel`` (e.g. ``facebook/hubert-base-ls960``, ``facebook/hubert-large-ll60k``):
  16 kHz, convolutional hop 320 = 50 frames/s.
- ``mert``: MERT (``m-a-p/MERT-v1-95M``), a HuBERT trained on music at 24 kHz (75 frames/s). Its hub repo ships
  remote code; v2meow never runs it: MERT-v1's weights have HuBERT's layout, so they are loaded into
  ``HubertModel`` with a ``HubertConfig`` made from MERT's config. Variants that compute something HuBERT does not
  (``attention_relax`` in MERT-v1-330M, ``deepnorm``, the CQT branch, batch-norm positions) are refused rather
  than silently run wrong.
- ``w2v-bert``: w2v-BERT 2.0 (``facebook/w2v-bert-2.0``, transformers ``Wav2Vec2BertModel``) over the 80-bin
  fbank frames of its ``SeamlessM4TFeatureExtractor`` stacked by 2: 16 kHz, hop 320 = 50 frames/s.

Frames are aligned to the project's convention ``T_s = ceil(T / hop)`` with frame ``i`` centred on hop ``i``:
the audio is zero-padded by half the receptive field minus half a hop on the left and to the needed length on
the right. ``pool`` averages that many consecutive frames (w2v-BERT at 50 Hz with ``pool: 2`` gives the 25 tokens/s
of the paper). When the pipeline's audio rate (``sample_rate``) differs from the model's, audio is resampled
(polyphase) before the model; ``hop_length`` is then counted in the pipeline's samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from v2meow.configbase import Config, check
from v2meow.errors import ConfigError, UserError
from v2meow.pretrained import FrozenBackbone, config_to_dict, hub_hint, load_hf_model, read_json

SSL_BACKENDS = ("hubert", "mert", "w2v-bert")
DEFAULT_HUB_IDS = {
    "hubert": "facebook/hubert-base-ls960",
    "mert": "m-a-p/MERT-v1-95M",
    "w2v-bert": "facebook/w2v-bert-2.0",
}
# MERT config keys whose non-default values change what the network computes beyond HubertModel.
_MERT_UNSUPPORTED = {"attention_relax": lambda v: v is not None and v > 0, "deepnorm": bool,
                     "feature_extractor_cqt": bool, "conv_pos_batch_norm": bool}


@dataclass
class SSLEncoderConfig(Config):
    """A pretrained SSL encoder (the semantic tokenizer's ``ssl`` section; the backend is chosen beside it).

    ``sample_rate``: the audio rate the tokenizer is given (the pipeline's; resampled to the model's rate).
    ``frame_rate``: semantic tokens per second after pooling; must equal the model's frame rate / ``pool``.
    ``feature_extractor``: the preprocessing settings (read from the checkpoint's ``preprocessor_config.json``
    when left out; saved resolved).
    """

    path: str | None = None
    model_config: dict[str, Any] | None = None
    feature_extractor: dict[str, Any] | None = None
    layer: int = 7
    pool: int = 1
    sample_rate: int = 16000
    frame_rate: float = 50.0

    def validate(self) -> None:
        check(self.path is not None or self.model_config is not None,
              "the semantic tokenizer's ssl section needs a path to pretrained weights (or a model_config for tests).")
        check(self.model_config is None or isinstance(self.model_config, dict), "ssl model_config must be a mapping.")
        check(self.feature_extractor is None or isinstance(self.feature_extractor, dict),
              "ssl feature_extractor must be a mapping.")
        check(0 <= self.layer <= 128, f"ssl layer must be in 0..128, got {self.layer}.")
        check(1 <= self.pool <= 64, f"ssl pool must be in 1..64, got {self.pool}.")
        check(self.sample_rate > 0 and self.frame_rate > 0, "ssl sample_rate and frame_rate must be > 0.")
        hop = self.sample_rate / self.frame_rate
        check(abs(hop - round(hop)) < 1e-6,
              f"ssl frame_rate {self.frame_rate:g} must divide sample_rate {self.sample_rate} into whole hops.")

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate / self.frame_rate)


def _mert_config(raw: dict[str, Any]) -> Any:
    """A ``HubertConfig`` for a MERT checkpoint's ``config.json``; refuses MERT variants HuBERT cannot run."""
    from transformers import HubertConfig

    for key, bad in _MERT_UNSUPPORTED.items():
        if key in raw and bad(raw[key]):
            raise UserError(f"This MERT checkpoint uses {key}={raw[key]!r}, which HubertModel does not compute; "
                            "use m-a-p/MERT-v1-95M.")
    keep = {k: v for k, v in raw.items() if k not in ("model_type", "architectures", "auto_map")}
    return HubertConfig.from_dict(keep)


def receptive_field(kernels: list[int], strides: list[int]) -> tuple[int, int]:
    """(receptive field, hop) in samples of a stack of unpadded 1-D convolutions."""
    rf, hop = 1, 1
    for k, s in zip(kernels, strides):
        rf += (k - 1) * hop
        hop *= s
    return rf, hop


class SSLEncoder(FrozenBackbone):
    """A frozen HuBERT / MERT / w2v-BERT truncated after ``layer`` layers: ``wav [B, T]`` → ``[B, T_s, D]``."""

    VERSION = "1"

    def __init__(self, backend: str, config: SSLEncoderConfig, load_weights: bool = True) -> None:
        super().__init__()
        if backend not in SSL_BACKENDS:
            raise ConfigError(f"Unknown SSL encoder {backend!r}; choose one of {', '.join(SSL_BACKENDS)}.")
        self.backend = backend
        self.NAME = f"ssl-{backend}"
        self.config = c = config
        hint = hub_hint(c.path, DEFAULT_HUB_IDS[backend], "semantic_tokenizer.ssl.path")
        what = {"hubert": "HuBERT", "mert": "MERT", "w2v-bert": "w2v-BERT 2.0"}[backend]
        from transformers import HubertConfig, HubertModel, Wav2Vec2BertConfig, Wav2Vec2BertModel

        if backend == "w2v-bert":
            model_cls, config_cls, from_raw = Wav2Vec2BertModel, Wav2Vec2BertConfig, None
        else:
            model_cls, config_cls = HubertModel, HubertConfig
            from_raw = _mert_config if backend == "mert" else None
        self.model, local = load_hf_model(model_cls, config_cls, c.path, c.model_config, load_weights, what, hint,
                                          config_from_dict=from_raw)
        if c.feature_extractor is None:
            raw = read_json(local / "preprocessor_config.json") if local is not None else None
            c.feature_extractor = self._extractor_settings(raw or {})
        self.fx = dict(c.feature_extractor)
        layers = self.model.encoder.layers
        if c.layer > len(layers):
            raise ConfigError(f"semantic_tokenizer.ssl.layer is {c.layer}, but this {what} has {len(layers)} layers.")
        # Keep only what runs: layers past `layer` never affect the features.
        keep = max(c.layer, 1)
        self.model.encoder.layers = nn.ModuleList(list(layers)[:keep])
        self.model.config.num_hidden_layers = keep
        c.model_config = config_to_dict(self.model.config)
        self.dim = int(self.model.config.hidden_size)
        self.model_rate = int(self.fx["sampling_rate"])
        if backend == "w2v-bert":
            stride = int(self.fx["stride"])
            # fbank: 25 ms windows every 10 ms at 16 kHz (400 / 160 samples), stacked by `stride`.
            shift, win = self.model_rate // 100, self.model_rate * 25 // 1000
            self.model_hop = shift * stride
            self.model_rf = win + (stride - 1) * shift
        else:
            self.model_rf, self.model_hop = receptive_field(list(self.model.config.conv_kernel),
                                                            list(self.model.config.conv_stride))
        model_frame_rate = self.model_rate / self.model_hop / c.pool
        # Hop in the pipeline's samples; it must be whole for frames to line up with the codec's.
        ratio = Fraction(c.sample_rate, self.model_rate)
        hop_in = self.model_hop * c.pool * ratio
        if hop_in.denominator != 1:
            raise ConfigError(f"A {what} hop of {self.model_hop * c.pool} samples at {self.model_rate} Hz is not a "
                              f"whole number of samples at {c.sample_rate} Hz; change semantic_tokenizer.ssl.pool.")
        if not math.isclose(model_frame_rate, c.frame_rate, rel_tol=1e-6):
            raise ConfigError(f"The {what} gives {model_frame_rate:g} frames/s with pool {c.pool}, but "
                              f"semantic_tokenizer.ssl.frame_rate says {c.frame_rate:g}.")
        self.sample_rate = int(c.sample_rate)
        self.hop_length = int(hop_in)
        self.frame_rate = c.frame_rate
        self._extractor: Any = None
        self.eval()

    def _extractor_settings(self, raw: dict[str, Any]) -> dict[str, Any]:
        if self.backend == "w2v-bert":
            keys = {"sampling_rate": 16000, "feature_size": 80, "num_mel_bins": 80, "padding_value": 1.0, "stride": 2}
        else:
            keys = {"sampling_rate": 24000 if self.backend == "mert" else 16000,
                    "do_normalize": self.backend == "mert"}
        return {k: raw.get(k, v) for k, v in keys.items()}

    def identity(self) -> dict[str, Any]:
        c = self.config
        return self.stamp(
            {"model": c.model_config, "feature_extractor": self.fx},
            source=c.path or "random-init", sample_rate=self.sample_rate, hop_length=self.hop_length,
            frame_rate=self.frame_rate, pool=c.pool, dim=self.dim,
        )

    def num_frames(self, num_samples: int) -> int:
        return math.ceil(num_samples / self.hop_length)

    def _resample(self, wav: Tensor) -> Tensor:
        if self.sample_rate == self.model_rate:
            return wav
        from scipy.signal import resample_poly

        r = Fraction(self.model_rate, self.sample_rate)
        out = resample_poly(wav.double().cpu().numpy(), r.numerator, r.denominator, axis=-1)
        return torch.from_numpy(out.astype(np.float32))

    def _align(self, wav: Tensor, frames: int) -> Tensor:
        """Zero-pad ``wav [B, T]`` (model rate) so the network gives ``frames`` frames centred on the hops."""
        left = (self.model_rf - self.model_hop) // 2
        total = (frames - 1) * self.model_hop + self.model_rf
        return F.pad(wav, (left, max(0, total - wav.shape[-1] - left)))[:, :total]

    def _run(self, wav: Tensor, frames: int, layer: int) -> Tensor:
        """Model-rate audio ``[B, T]`` → layer ``layer`` states ``[B, frames, D]``."""
        x = wav.float()
        if self.backend != "w2v-bert" and self.fx.get("do_normalize"):
            # Wav2Vec2FeatureExtractor's zero-mean unit-variance, over the real audio (before padding).
            x = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-7)
        x = self._align(x, frames)
        captured: list[Tensor] = []
        target = self.model.encoder.layers[layer - 1] if layer > 0 else self.model.encoder.layers[0]

        def after(_m: nn.Module, _args: tuple, out: Any) -> None:
            captured.append(out[0] if isinstance(out, tuple) else out)

        def before(_m: nn.Module, args: tuple, kwargs: dict) -> None:
            captured.append(args[0] if args else kwargs["hidden_states"])

        handle = (target.register_forward_hook(after) if layer > 0
                  else target.register_forward_pre_hook(before, with_kwargs=True))
        try:
            if self.backend == "w2v-bert":
                feats = self._fbank(x)
                self.model(input_features=feats, attention_mask=torch.ones(feats.shape[:2], dtype=torch.long))
            else:
                self.model(input_values=x)
        finally:
            handle.remove()
        h = captured[0]  # [B, T', D]
        if h.shape[1] >= frames:
            return h[:, :frames]
        return torch.cat([h, h[:, -1:].expand(-1, frames - h.shape[1], -1)], 1)

    def _fbank(self, x: Tensor) -> Tensor:
        """w2v-BERT 2.0 input features ``[B, T_f / stride, feature_size * stride]`` from its feature extractor."""
        if self._extractor is None:
            from transformers import SeamlessM4TFeatureExtractor

            self._extractor = SeamlessM4TFeatureExtractor(**self.fx)
        out = self._extractor(list(x.numpy()), sampling_rate=self.model_rate, return_tensors="pt",
                              padding=True, return_attention_mask=True)
        return out["input_features"].float()

    @torch.no_grad()
    def features(self, wav: Tensor, layer: int | None = None) -> Tensor:
        """``wav [B, T]`` at :attr:`sample_rate` → layer ``layer`` features ``[B, ceil(T / hop_length), D]``."""
        layer = self.config.layer if layer is None else layer
        if layer != self.config.layer:
            raise ValueError(f"this encoder keeps layer {self.config.layer} only, got {layer}.")
        if wav.dim() != 2 or wav.shape[-1] == 0:
            raise ValueError(f"wav must be a non-empty [B, T], got shape {tuple(wav.shape)}.")
        n = self.num_frames(wav.shape[-1])
        pool = self.config.pool
        h = self._run(self._resample(wav), n * pool, layer)  # [B, n * pool, D]
        return h.view(h.shape[0], n, pool, -1).mean(2)

    def forward(self, wav: Tensor) -> Tensor:
        return self.features(wav)


def build_ssl_encoder(backend: str, config: SSLEncoderConfig, load_weights: bool = True) -> SSLEncoder:
    """The SSL encoder ``backend`` (``hubert`` | ``mert`` | ``w2v-bert``) with ``config``."""
    return SSLEncoder(backend, config, load_weights)
