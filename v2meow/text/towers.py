"""Text towers behind one interface.

``hash``: a weightless, deterministic embedding of words and character trigrams (signed feature hashing).
It carries no musical knowledge; it exists so the debug preset and the tests can exercise prompting and
guidance end to end with no download. Trained towers (the packaged MiniLM sentence model with a learned
projection, CLAP) plug in through :func:`build_text_tower` under their own names.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from v2meow.configbase import Config, check
from v2meow.errors import UserError

MAX_PROMPT_CHARS = 2000
TEXT_BACKENDS = ("hash",)


@dataclass
class TextConfig(Config):
    backend: str = "hash"
    dim: int = 64

    def validate(self) -> None:
        check(self.backend in TEXT_BACKENDS, f"text backend must be one of {TEXT_BACKENDS}, got {self.backend!r}.")
        check(1 <= self.dim <= 65536, f"text dim must be in 1..65536, got {self.dim}.")


def clean_prompt(text: str) -> str:
    """Normalise a user's prompt; refuse empty or overlong ones with one clear sentence."""
    if not isinstance(text, str):
        raise UserError("The prompt must be text.")
    text = unicodedata.normalize("NFKC", text).strip()
    if not text:
        raise UserError("The prompt is empty; give a few words such as \"warm acoustic guitar\".")
    if len(text) > MAX_PROMPT_CHARS:
        raise UserError(f"The prompt is {len(text)} characters long; the limit is {MAX_PROMPT_CHARS}.")
    return text


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


def build_text_tower(cfg: TextConfig) -> HashTextTower:
    if cfg.backend == "hash":
        return HashTextTower(cfg.dim)
    raise UserError(f"Unknown text backend {cfg.backend!r}; available: {', '.join(TEXT_BACKENDS)}.")
