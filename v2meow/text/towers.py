"""Text towers behind one interface.

``hash``: a weightless, deterministic embedding of words and character trigrams (signed feature hashing).
It carries no musical knowledge; it exists so the debug preset and the tests can exercise prompting and
guidance end to end with no download. ``clap``: the pretrained CLAP music checkpoint (:mod:`v2meow.text.clap`),
text and audio in one joint space. Trained towers (the packaged MiniLM sentence model with a learned
projection) plug in through :func:`build_text_tower` under their own names.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from v2meow.configbase import Config, check
from v2meow.errors import UserError
from v2meow.text.base import MAX_PROMPT_CHARS, AudioTextTower, TextTower, clean_prompt
from v2meow.text.clap import ClapTextConfig
from v2meow.text.joint import JointConfig

TEXT_BACKENDS = ("hash", "clap", "minilm")
__all__ = ["MAX_PROMPT_CHARS", "TEXT_BACKENDS", "AudioTextTower", "HashTextTower", "TextConfig", "TextTower",
           "build_text_tower", "clean_prompt"]


@dataclass
class TextConfig(Config):
    backend: str = "hash"
    dim: int = 64
    clap: ClapTextConfig | None = None  # settings of the ``clap`` backend (weights path, ...)
    joint: JointConfig | None = None  # the ``minilm`` backend: the trained joint model (v2meow.text.joint)

    def __post_init__(self) -> None:
        if self.backend == "clap" and self.clap is None:
            self.clap = ClapTextConfig()
        if self.backend == "minilm" and self.joint is None:
            self.joint = JointConfig(dim=self.dim)
        super().__post_init__()

    def validate(self) -> None:
        check(self.backend in TEXT_BACKENDS, f"text backend must be one of {TEXT_BACKENDS}, got {self.backend!r}.")
        check(1 <= self.dim <= 65536, f"text dim must be in 1..65536, got {self.dim}.")
        check(self.backend == "clap" or self.clap is None, f"text backend {self.backend!r} takes no clap section.")
        check(self.backend == "minilm" or self.joint is None, f"text backend {self.backend!r} takes no joint section.")
        check(self.joint is None or self.joint.dim == self.dim,
              f"text.joint.dim ({self.joint.dim if self.joint else 0}) must equal text.dim ({self.dim}).")


class HashTextTower:
    """Signed feature hashing of words and character trigrams, L2-normalised: ``[B, dim]``."""

    name = "hash"
    version = "1"

    def __init__(self, dim: int):
        self.dim = dim

    def identity(self) -> dict:
        return {"name": self.name, "version": self.version, "dim": self.dim}

    def _features(self, text: str) -> list[str]:
        words = re.findall(r"\w+", text.lower())
        grams = [f"#{w[i:i + 3]}" for w in words for i in range(max(1, len(w) - 2))]
        return words + grams

    def embed_text(self, texts: list[str]) -> Tensor:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, t in enumerate(texts):
            for f in self._features(clean_prompt(t)):
                h = hashlib.blake2b(f.encode("utf-8"), digest_size=8).digest()
                idx = int.from_bytes(h[:4], "little") % self.dim
                out[row, idx] += 1.0 if h[4] & 1 else -1.0
            n = np.linalg.norm(out[row])
            if n > 0:
                out[row] /= n
        return torch.from_numpy(out)


def build_text_tower(cfg: TextConfig, load_weights: bool = True) -> TextTower:
    """The text tower ``cfg`` names: ``hash`` (weightless), ``clap`` (pretrained; ``load_weights`` False builds it
    from its stored ``model_config`` for a model directory to fill) or ``minilm`` (the embedded joint model). Each
    is a :class:`TextTower`; ``clap`` and ``minilm`` are also :class:`AudioTextTower`."""
    if cfg.backend == "hash":
        return HashTextTower(cfg.dim)
    if cfg.backend == "clap":
        from v2meow.text.clap import ClapTower

        if cfg.clap is None:
            cfg.clap = ClapTextConfig()
        return ClapTower(cfg.clap, cfg.dim, load_weights=load_weights)
    if cfg.backend == "minilm":  # the embedded joint model: frozen MiniLM + projection, audio tower trained here
        from v2meow.text.joint import build_joint_tower

        return build_joint_tower(cfg, load_weights=load_weights)
    raise UserError(f"Unknown text backend {cfg.backend!r}; available: {', '.join(TEXT_BACKENDS)}.")
