"""CLAP (LAION, Wu et al. 2023) as the joint music-text embedding: MuLan's role in the paper.

``embed_text`` gives the text tower's L2-normalised embedding in the joint space (inference: the prompt);
``embed_audio`` the audio tower's (training: the clip's music, averaged over 10 s segments as the paper does
with MuLan, :meth:`ClapTower.embed_audio_segments`). Both come from transformers' ``ClapModel``; the music
checkpoint is ``laion/larger_clap_music`` (512-d joint space, 48 kHz audio). Audio is resampled to the model's
rate here, because the pipeline's audio runs at the codec's rate.

The tokenizer (a ``tokenizers`` BPE, ``tokenizer.json``) is read from the checkpoint directory, or from
``tokenizer`` when given (tests build a tiny one); a saved model directory keeps it in the metadata of
``joint.safetensors``, so it needs neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from v2meow.configbase import Config, check
from v2meow.errors import ConfigError, UserError
from v2meow.pretrained import FrozenBackbone, config_to_dict, hub_hint, load_hf_model, read_json, resolve_local
from v2meow.text.base import clean_prompt

DEFAULT_HUB_ID = "laion/larger_clap_music"
SEGMENT_SECONDS = 10.0  # CLAP embeds 10 s; longer music is averaged over segments (paper: MuLan, 10 s)
TOKENIZER_KEY = "tokenizer.json"
_EXTRACTOR_KEYS = ("feature_size", "sampling_rate", "hop_length", "max_length_s", "fft_window_size", "padding_value",
                   "frequency_min", "frequency_max", "top_db", "truncation", "padding")


@dataclass
class ClapTextConfig(Config):
    """CLAP weights (``path``: local directory or hub id; ``model_config``: a ``ClapConfig`` dict, random weights,
    tests), its tokenizer (``tokenizer``: a ``tokenizer.json`` file or directory; default: ``path``) and its audio
    preprocessing (``feature_extractor``; read from the checkpoint when left out, saved resolved)."""

    path: str | None = DEFAULT_HUB_ID
    model_config: dict[str, Any] | None = None
    tokenizer: str | None = None
    feature_extractor: dict[str, Any] | None = None
    max_text_tokens: int = 77  # LAION-CLAP's text length

    def validate(self) -> None:
        check(self.path is not None or self.model_config is not None,
              "text.clap needs a path to pretrained weights (or a model_config for tests).")
        check(self.model_config is None or isinstance(self.model_config, dict),
              "text.clap.model_config must be a mapping.")
        check(self.feature_extractor is None or isinstance(self.feature_extractor, dict),
              "text.clap.feature_extractor must be a mapping.")
        check(4 <= self.max_text_tokens <= 512,
              f"text.clap.max_text_tokens must be in 4..512, got {self.max_text_tokens}.")


def _load_tokenizer(where: Path, what: str, hint: str) -> Any:
    from tokenizers import Tokenizer

    file = where / TOKENIZER_KEY if where.is_dir() else where
    if file.is_file():
        return Tokenizer.from_file(str(file))
    if where.is_dir():  # vocab.json + merges.txt only: let transformers assemble the fast tokenizer
        try:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(str(where), local_files_only=True).backend_tokenizer
        except (OSError, ValueError):
            pass
    raise UserError(f"No {what} tokenizer at {where}; {hint}.")


class ClapTower(FrozenBackbone):
    """Text and audio embeddings ``[B, D]`` in CLAP's joint space (L2-normalised)."""

    NAME = "clap"
    VERSION = "1"
    name = "clap"

    def __init__(self, config: ClapTextConfig, dim: int, load_weights: bool = True) -> None:
        super().__init__()
        from transformers import ClapConfig, ClapModel

        self.config = c = config
        hint = hub_hint(c.path, DEFAULT_HUB_ID, "text.clap.path")
        self.model, local = load_hf_model(ClapModel, ClapConfig, c.path, c.model_config, load_weights, "CLAP", hint)
        c.model_config = config_to_dict(self.model.config)
        self.dim = int(self.model.config.projection_dim)
        if self.dim != dim:
            raise ConfigError(f"CLAP embeds in {self.dim} dimensions but text.dim is {dim}.")
        if c.feature_extractor is None:
            raw = read_json(local / "preprocessor_config.json") if local is not None else None
            from transformers import ClapFeatureExtractor

            defaults = ClapFeatureExtractor()
            c.feature_extractor = {k: (raw or {}).get(k, getattr(defaults, k, None)) for k in _EXTRACTOR_KEYS}
            if raw is None:  # the fused (4-channel) input only fits a checkpoint built with fusion
                fused = bool(self.model.config.audio_config.enable_fusion)
                c.feature_extractor["truncation"] = "fusion" if fused else "rand_trunc"
        self.fx_settings = dict(c.feature_extractor)
        self.sample_rate = int(self.fx_settings["sampling_rate"])
        self._fx: Any = None
        self.tokenizer: Any = None
        if load_weights:  # a model directory restores the tokenizer from its metadata instead
            source = c.tokenizer or c.path
            if source is None:
                raise UserError("text.clap needs a tokenizer (a tokenizer.json file or a checkpoint directory).")
            where = Path(source).expanduser() if Path(source).expanduser().exists() else resolve_local(source, "CLAP",
                                                                                                        hint)
            self.tokenizer = _load_tokenizer(where, "CLAP", hint)
            self._tokenizer_ready()

    # -- model directory hooks: the tokenizer travels in the metadata of text.safetensors ---------------
    def safetensors_metadata(self) -> dict[str, str]:
        return {TOKENIZER_KEY: self.tokenizer.to_str()}

    def load_safetensors_metadata(self, metadata: dict[str, str] | None) -> None:
        from tokenizers import Tokenizer

        text = (metadata or {}).get(TOKENIZER_KEY)
        if not text:
            raise UserError("The CLAP weights in this model directory carry no tokenizer; save the model again.")
        self.tokenizer = Tokenizer.from_str(text)
        self._tokenizer_ready()

    def _tokenizer_ready(self) -> None:
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.config.max_text_tokens)

    def identity(self) -> dict[str, Any]:
        tok = self.tokenizer.to_str() if self.tokenizer is not None else ""
        return self.stamp(
            {"model": self.config.model_config, "feature_extractor": self.fx_settings,
             "tokenizer": hash_text(tok), "max_text_tokens": self.config.max_text_tokens},
            source=self.config.path or "random-init", dim=self.dim, sample_rate=self.sample_rate,
        )

    # -- embeddings -----------------------------------------------------------------------------
    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> Tensor:
        """Prompts → L2-normalised text embeddings float32 ``[B, D]``."""
        if self.tokenizer is None:
            raise UserError("This CLAP tower has no tokenizer.")
        enc = self.tokenizer.encode_batch([clean_prompt(t) for t in texts])
        n = max(len(e.ids) for e in enc)
        pad = int(self.model.config.text_config.pad_token_id or 0)
        ids = torch.full((len(enc), n), pad, dtype=torch.long)
        mask = torch.zeros((len(enc), n), dtype=torch.long)
        for i, e in enumerate(enc):
            ids[i, : len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
            mask[i, : len(e.ids)] = 1
        out = self.model.get_text_features(input_ids=ids, attention_mask=mask)
        return _pooled(out)

    @torch.no_grad()
    def embed_audio(self, wav: Tensor, sample_rate: int) -> Tensor:
        """Mono clips ``[B, T]`` at ``sample_rate`` (each at most 10 s) → L2-normalised embeddings ``[B, D]``."""
        if wav.dim() != 2 or wav.shape[-1] == 0:
            raise ValueError(f"wav must be a non-empty [B, T], got shape {tuple(wav.shape)}.")
        x = wav.double().cpu().numpy()
        if sample_rate != self.sample_rate:
            from scipy.signal import resample_poly

            r = Fraction(self.sample_rate, int(sample_rate))
            x = resample_poly(x, r.numerator, r.denominator, axis=-1)
        if self._fx is None:
            from transformers import ClapFeatureExtractor

            self._fx = ClapFeatureExtractor(**self.fx_settings)
        feats = self._fx(list(x.astype(np.float32)), sampling_rate=self.sample_rate, return_tensors="pt")
        is_longer = feats.get("is_longer")
        if is_longer is not None:
            # Segments are never longer than the model's window, so fusion's random crops never happen.
            is_longer = torch.zeros_like(torch.as_tensor(is_longer), dtype=torch.bool)
        out = self.model.get_audio_features(input_features=feats["input_features"].float(), is_longer=is_longer)
        return _pooled(out)

    @torch.no_grad()
    def embed_audio_segments(self, wav: Tensor, sample_rate: int, batch: int = 8) -> Tensor:
        """A whole clip ``[T]`` → the mean of its segments' embeddings (10 s, CLAP's window), re-normalised ``[D]``."""
        seconds = float(self.fx_settings.get("max_length_s") or SEGMENT_SECONDS)
        seg = int(round(seconds * sample_rate))
        pieces = [wav[a: a + seg] for a in range(0, max(1, wav.shape[-1]), seg)]
        # A short last piece would weigh as much as a full one: fold it into the previous unless it is alone.
        if len(pieces) > 1 and pieces[-1].shape[-1] < seg // 2:
            pieces[-2] = torch.cat([pieces[-2], pieces[-1]])[-seg:]
            pieces.pop()
        embs = []
        # Equal lengths only in one batch: CLAP pads a short clip by repeating it, not with silence.
        for n in sorted({p.shape[-1] for p in pieces}):
            same = [p for p in pieces if p.shape[-1] == n]
            for i in range(0, len(same), batch):
                embs.append(self.embed_audio(torch.stack(same[i: i + batch]).float(), sample_rate))
        mean = torch.cat(embs).mean(0)
        return mean / mean.norm().clamp_min(1e-8)

    def forward(self, texts: list[str]) -> Tensor:
        return self.embed_text(texts)


def _pooled(out: Any) -> Tensor:
    """transformers >= 5 returns an output object whose ``pooler_output`` is the projected, normalised embedding."""
    emb = out if isinstance(out, Tensor) else out.pooler_output
    return torch.nn.functional.normalize(emb.float(), dim=-1)


def hash_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:12]


__all__ = ["ClapTextConfig", "ClapTower", "DEFAULT_HUB_ID", "SEGMENT_SECONDS"]
