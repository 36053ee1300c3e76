"""KL divergence between the class probabilities a classifier gives reference and generated audio (KLD).

audiocraft's definition (``metrics/kld.py``), reproduced exactly:

    KL(p_ref ‖ p_gen) = Σ_c p_ref,c · log(p_ref,c / (p_gen,c + 1e-6)),   terms with p_ref,c = 0 count 0,

with p = softmax of the classifier's logits (PaSST on AudioSet's 527 classes there; LEAF in the paper,
which has no public checkpoint). The classifier is a named, swappable :class:`AudioClassifier`, and its
name is reported beside the number. Audio is mixed to mono, resampled to the classifier's rate and split
into consecutive chunks of ``chunk_seconds`` (10 s for PaSST) with no padding; chunks of 0.15 s or less
are dropped.

audiocraft pairs the chunks of a generated clip with those of its reference and averages the KL over
all chunk pairs (``per="chunk"``, the default; for clips of at most one chunk, the usual 10 s case, it is
simply one term per clip). ``per="item"`` averages each clip's chunk probabilities first, giving one term
per clip even when the two clips split into different numbers of chunks.

The reverse direction KL(p_gen ‖ p_ref + 1e-6) is reported as ``kld_qp`` (audiocraft's ``kld_qp``), and
their sum as ``kld_both``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy.special import xlogy

from v2meow.errors import UserError
from v2meow.metrics.base import Metric, check_choice, model_or_name, mono_audio

KL_EPS = 1e-6  # audiocraft's epsilon, added to the second distribution inside the log
MIN_CHUNK_SECONDS = 0.15  # chunks of this length or shorter are dropped


class AudioClassifier:
    """A named audio classifier for KLD (PaSST, LEAF, PANNs, ...).

    Attributes:
        name: reported beside the score, e.g. ``"passt"``.
        sample_rate: rate :meth:`logits` expects, in Hz (32 kHz for PaSST).
        num_classes: number of classes C (527 for AudioSet).
        chunk_seconds: longest input it takes (10 s for PaSST); longer audio is split into chunks.
    """

    name: str = "base"
    sample_rate: int = 32000
    num_classes: int = 0
    chunk_seconds: float = 10.0

    def logits(self, chunk: np.ndarray) -> np.ndarray:
        """Logits ``[C]`` for one mono chunk ``[N]`` at :attr:`sample_rate`."""
        raise NotImplementedError


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)  # shift for overflow safety; softmax is shift invariant
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = KL_EPS) -> np.ndarray:
    """audiocraft's KL(p ‖ q + eps) along the last axis: Σ_c p_c (log p_c − log(q_c + eps)); ``[..., C]`` → ``[...]``.

    Written as ``xlogy(p, p) − p log(q + eps)`` so that classes with p_c = 0 contribute exactly 0,
    as ``torch.nn.functional.kl_div`` does.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    return np.sum(xlogy(p, p) - p * np.log(q + eps), axis=-1)


def split_chunks(
    wav: np.ndarray, sample_rate: int, chunk_seconds: float = 10.0, min_seconds: float = MIN_CHUNK_SECONDS
) -> list[np.ndarray]:
    """Split mono ``wav [N]`` into consecutive chunks of ``int(chunk_seconds · sr)`` samples, without padding.

    The last chunk may be shorter; any chunk of ``int(min_seconds · sr)`` samples or fewer is dropped
    (audiocraft keeps a chunk only if it is strictly longer). Returns a list of ``[n_i]`` arrays (possibly empty).
    """
    wav = np.asarray(wav)
    if wav.ndim != 1:
        raise UserError(f"split_chunks expects mono audio [N], got shape {wav.shape}.")
    size = int(chunk_seconds * sample_rate)
    min_size = int(min_seconds * sample_rate)
    if size <= 0:
        raise UserError(f"chunk_seconds must be positive, got {chunk_seconds}.")
    chunks = [wav[i : i + size] for i in range(0, wav.shape[0], size)]
    return [c for c in chunks if c.shape[0] > min_size]


def chunk_probabilities(classifier: AudioClassifier, wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Class probabilities ``[n_chunks, C]`` (softmax of the logits) of each chunk of ``wav`` (``[N]`` or ``[C, N]``).

    The audio is mixed to mono, resampled to the classifier's rate, then chunked with :func:`split_chunks`.
    ``n_chunks`` is 0 when the clip is 0.15 s or shorter.
    """
    from v2meow.io.audio import resample

    wav = mono_audio(wav)
    if sample_rate != classifier.sample_rate:
        wav = resample(wav, sample_rate, classifier.sample_rate)
    chunks = split_chunks(wav, classifier.sample_rate, classifier.chunk_seconds)
    if not chunks:
        return np.zeros((0, classifier.num_classes))
    return softmax(np.stack([np.asarray(classifier.logits(c), dtype=np.float64) for c in chunks]))


class ClassKLDivergence(Metric):
    """Mean KL(p_ref ‖ p_gen) over paired rows of class probabilities (see the module docstring).

    Args:
        classifier: the classifier's name (reported; states from different classifiers never merge) or an
            :class:`AudioClassifier`, which enables :meth:`update_audio`.
        inputs: whether :meth:`update` receives ``"logits"`` (softmax applied here) or ``"probs"``.
        per: ``"chunk"`` (audiocraft) or ``"item"``: how :meth:`update_audio` pairs a clip's chunks.
        eps: the epsilon inside the log (1e-6 in audiocraft).
    """

    def __init__(
        self,
        classifier: str | AudioClassifier = "unknown",
        inputs: Literal["logits", "probs"] = "logits",
        per: Literal["chunk", "item"] = "chunk",
        eps: float = KL_EPS,
    ) -> None:
        super().__init__()
        check_choice("inputs", inputs, ("logits", "probs"))
        check_choice("per", per, ("chunk", "item"))
        self.model, self.classifier = model_or_name(classifier, AudioClassifier)
        self.inputs, self.per, self.eps = inputs, per, float(eps)
        self._add_state("kld_pq", "cat")  # per-row KL(ref ‖ gen)
        self._add_state("kld_qp", "cat")  # per-row KL(gen ‖ ref)
        self._add_state("skipped", "sum")  # clip pairs with no chunk longer than 0.15 s

    def config(self) -> dict[str, Any]:
        return {"classifier": self.classifier, "inputs": self.inputs, "per": self.per, "eps": self.eps}

    def _probs(self, x: Any, what: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2:
            raise UserError(f"{what} must be [B, C] class scores, got shape {x.shape}.")
        if not np.isfinite(x).all():
            raise UserError(f"{what} contain NaN or infinite values.")
        if self.inputs == "logits":
            return softmax(x)
        if (x < 0).any() or not np.allclose(x.sum(axis=-1), 1.0, atol=1e-3):
            raise UserError(f"{what} must be probabilities (non-negative, summing to 1); pass inputs='logits'.")
        return x

    def update(self, generated: Any, reference: Any) -> None:
        """Add paired rows: ``generated [B, C]`` and ``reference [B, C]`` logits or probabilities (per ``inputs``)."""
        p_gen = self._probs(generated, "Generated scores")
        p_ref = self._probs(reference, "Reference scores")
        if p_gen.shape != p_ref.shape:
            raise UserError(f"Generated and reference scores differ in shape: {p_gen.shape} vs {p_ref.shape}.")
        self._append("kld_pq", kl_divergence(p_ref, p_gen, self.eps))
        self._append("kld_qp", kl_divergence(p_gen, p_ref, self.eps))

    def update_audio(self, generated: np.ndarray, reference: np.ndarray, sample_rate: int) -> None:
        """Classify one generated clip and its reference (``[N]`` or ``[C, N]`` at ``sample_rate``) and add them."""
        if self.model is None:
            raise UserError("This KLD metric was built with a classifier name only; pass an AudioClassifier.")
        p_gen = chunk_probabilities(self.model, generated, sample_rate)
        p_ref = chunk_probabilities(self.model, reference, sample_rate)
        if p_gen.shape[0] == 0 or p_ref.shape[0] == 0:
            self._add("skipped", np.int64(1))
            return
        if self.per == "item":
            p_gen, p_ref = p_gen.mean(axis=0, keepdims=True), p_ref.mean(axis=0, keepdims=True)
        elif p_gen.shape[0] != p_ref.shape[0]:
            raise UserError(
                f"The generated clip has {p_gen.shape[0]} chunks and its reference {p_ref.shape[0]}; "
                "trim them to the same length or use per='item'."
            )
        # Probabilities now, whatever `inputs` says for update().
        self._append("kld_pq", kl_divergence(p_ref, p_gen, self.eps))
        self._append("kld_qp", kl_divergence(p_gen, p_ref, self.eps))

    def compute(self) -> dict[str, Any]:
        pq, qp = self._concat("kld_pq"), self._concat("kld_qp")
        if pq.size == 0:
            raise UserError("KLD has no scored pairs yet.")
        kld, kld_qp = float(pq.mean()), float(qp.mean())
        return {
            "kld": kld,
            "kld_pq": kld,
            "kld_qp": kld_qp,
            "kld_both": kld + kld_qp,
            "n": int(pq.size),
            "skipped": int(self._total("skipped")),
            "classifier": self.classifier,
        }
