"""MuLan Cycle Consistency (MCC) / CLAP score: mean cosine similarity in a joint music-text space.

For each generated clip, the cosine similarity between its joint-space embedding and either (a) the
embedding of the reference audio (video→music task) or (b) the embedding of the text prompt
(video+text→music task), averaged over pairs. Cosine as ``torch.nn.functional.cosine_similarity`` with
eps 1e-8 (audiocraft's CLAP consistency): x·y / (max(‖x‖, eps) · max(‖y‖, eps)). audiocraft embeds one
10 s crop at 48 kHz (:func:`crop_seconds`). The joint model (MuLan in the paper, CLAP or the project's
own tower here) is a named, swappable :class:`JointEmbedder`, reported beside the number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from v2meow.errors import UserError
from v2meow.metrics.base import Metric, check_choice, mean_std, model_or_name

COSINE_EPS = 1e-8


class JointEmbedder:
    """A named joint music-text embedding model (MuLan, CLAP, ...).

    Attributes:
        name: reported beside the score, e.g. ``"clap-music"``.
        sample_rate: rate :meth:`embed_audio` expects, in Hz (48 kHz for CLAP).
        crop_seconds: audio length it embeds (10 s for CLAP); longer clips are cropped from the start.
    """

    name: str = "base"
    sample_rate: int = 48000
    crop_seconds: float = 10.0

    def embed_audio(self, wav: np.ndarray) -> np.ndarray:
        """Embedding ``[D]`` of mono audio ``[N]`` at :attr:`sample_rate`."""
        raise NotImplementedError

    def embed_text(self, text: str) -> np.ndarray:
        """Embedding ``[D]`` of a text prompt."""
        raise NotImplementedError


def cosine_similarity(x: np.ndarray, y: np.ndarray, eps: float = COSINE_EPS) -> np.ndarray:
    """Row-wise cosine ``[B]`` of ``x [B, D]`` and ``y [B, D]``: x·y / (max(‖x‖, eps) · max(‖y‖, eps))."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    nx = np.maximum(np.linalg.norm(x, axis=-1), eps)
    ny = np.maximum(np.linalg.norm(y, axis=-1), eps)
    return np.sum(x * y, axis=-1) / (nx * ny)


def crop_seconds(wav: np.ndarray, sample_rate: int, seconds: float = 10.0) -> np.ndarray:
    """The first ``seconds`` of ``wav`` (``[..., N]``); shorter clips are returned whole."""
    return np.asarray(wav)[..., : int(round(seconds * sample_rate))]


class JointCosine(Metric):
    """MCC / CLAP score: mean cosine similarity of paired joint-space embeddings.

    Args:
        model: the joint model's name (reported; states from different models never merge) or a
            :class:`JointEmbedder`, which enables :meth:`update_audio` and :meth:`update_text`.
        target: what the generated audio is compared with: ``"audio"`` (reference audio) or ``"text"``.
        eps: cosine epsilon (1e-8).
    """

    def __init__(
        self,
        model: str | JointEmbedder = "unknown",
        target: Literal["audio", "text"] = "audio",
        eps: float = COSINE_EPS,
    ) -> None:
        super().__init__()
        check_choice("target", target, ("audio", "text"))
        self.embedder, self.model = model_or_name(model, JointEmbedder)
        self.target, self.eps = target, float(eps)
        self._add_state("cosine", "cat")  # per-pair cosine similarity

    def config(self) -> dict[str, Any]:
        return {"model": self.model, "target": self.target, "eps": self.eps}

    def update(self, generated: Any, other: Any) -> None:
        """Add pairs: embeddings of generated audio ``[B, D]`` and of their references or prompts ``[B, D]``."""
        g = np.asarray(generated, dtype=np.float64)
        o = np.asarray(other, dtype=np.float64)
        if g.ndim == 1:
            g, o = g[None], np.atleast_2d(o)
        if g.ndim != 2 or g.shape != o.shape:
            raise UserError(f"Paired embeddings must both be [B, D] of one shape, got {g.shape} and {o.shape}.")
        if not (np.isfinite(g).all() and np.isfinite(o).all()):
            raise UserError("Joint embeddings contain NaN or infinite values.")
        self._append("cosine", cosine_similarity(g, o, self.eps))

    def _model(self) -> JointEmbedder:
        if self.embedder is None:
            raise UserError("This MCC metric was built with a model name only; pass a JointEmbedder.")
        return self.embedder

    def embed_clip(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """A clip ``[N]`` or ``[C, N]`` at ``sample_rate`` in the joint space, as the metric embeds it."""
        from v2meow.io.audio import resample

        model = self._model()
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim == 2:
            wav = wav.mean(axis=0)
        wav = resample(wav, sample_rate, model.sample_rate)
        return np.asarray(model.embed_audio(crop_seconds(wav, model.sample_rate, model.crop_seconds)))

    def update_audio(self, generated: np.ndarray, reference: np.ndarray, sample_rate: int) -> None:
        """Embed a generated clip and its reference (``[N]`` or ``[C, N]``) and add their cosine."""
        if self.target != "audio":
            raise UserError("This MCC metric compares with text prompts; use update_text.")
        self.update(self.embed_clip(generated, sample_rate)[None], self.embed_clip(reference, sample_rate)[None])

    def update_text(self, generated: Sequence[np.ndarray], prompts: Sequence[str], sample_rate: int) -> None:
        """Embed generated clips and their text prompts and add their cosines."""
        if self.target != "text":
            raise UserError("This MCC metric compares with reference audio; use update_audio.")
        if len(generated) != len(prompts):
            raise UserError(f"Got {len(generated)} clips but {len(prompts)} prompts.")
        model = self._model()
        for wav, text in zip(generated, prompts):
            self.update(self.embed_clip(wav, sample_rate)[None], np.asarray(model.embed_text(text))[None])

    def scores(self) -> np.ndarray:
        """The cosine of every pair scored so far, in the order they were added."""
        return self._concat("cosine")

    def compute(self) -> dict[str, Any]:
        cos = self._concat("cosine")
        if cos.size == 0:
            raise UserError("MCC has no scored pairs yet.")
        mean, std = mean_std(cos)
        return {"mcc": mean, "mcc_std": std, "n": int(cos.size), "model": self.model, "target": self.target}
