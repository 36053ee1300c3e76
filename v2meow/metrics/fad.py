"""Fréchet Audio Distance (FAD) between embeddings of generated and reference audio.

FAD = ‖μ_r − μ_g‖² + Tr Σ_r + Tr Σ_g − 2 Tr √(Σ_r Σ_g), with the Gaussians fitted to one embedding per
row (per 0.96 s example for VGGish, per frame for TRILL, per clip for CLAP). The computation follows
Google's reference (``frechet_audio_distance``, used by MusicLM and V2Meow) exactly:

- the statistics are accumulated as sums (count, Σx, Σxxᵀ) in float64 and turned into the mean and the
  unbiased covariance Σ = (Σxxᵀ − n μμᵀ) / (n − 1) at the end, so batches and processes add up;
- the square root is ``scipy.linalg.sqrtm`` of the product of the covariances; the reference's
  ``compute_fad`` passes the background (reference) statistics first, so the product is Σ_r Σ_g (Σ_g Σ_r
  is similar to it: same eigenvalues, same trace, different rounding);
- if that root is not finite, 1e-7·I is added to both covariances and the root taken again;
- if any diagonal entry of the root has an imaginary part above 1e-3 the computation fails, otherwise
  the real part is kept.

FAD∞ (fadtk) extrapolates away the upward small-sample bias: FAD is measured on random subsets of the
generated embeddings of 25 sizes from ``min_n`` to N, FAD_n = a/n + b is fitted, and b is reported.

Which network makes the embeddings is a named, swappable :class:`AudioEmbedder`; the VGGish one is in
:mod:`v2meow.metrics.vggish`. Always report N and the backend beside the number: FAD values are only
comparable at equal N against the same reference set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg

from v2meow.errors import UserError
from v2meow.metrics.base import Metric, model_or_name, mono_audio

# Google's reference constants.
SQRTM_EPS = 1e-7  # added to both covariances' diagonals when the first square root is not finite
MAX_IMAG = 1e-3  # largest tolerated |imaginary part| on the diagonal of the square root


class AudioEmbedder:
    """A named audio embedding network used for FAD (VGGish, TRILL, CLAP, PANNs, ...).

    Attributes:
        name: backend name reported beside the score, e.g. ``"vggish"``.
        sample_rate: rate :meth:`embed` expects, in Hz.
        dim: embedding size D.
    """

    name: str = "base"
    sample_rate: int = 16000
    dim: int = 0

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """Embed mono audio ``wav [N]`` at :attr:`sample_rate`; returns float ``[frames, D]`` (frames may be 0)."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What must match for two embedding sets to be comparable."""
        return {"name": self.name, "sample_rate": int(self.sample_rate), "dim": int(self.dim)}


def embed_audio(embedder: AudioEmbedder, wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mix ``wav`` (``[N]`` or channels-first ``[C, N]``) to mono, resample it to the embedder's rate and
    embed it; returns ``[frames, D]``."""
    from v2meow.io.audio import resample

    wav = mono_audio(wav, np.float32)
    wav = resample(wav, sample_rate, embedder.sample_rate)
    return np.asarray(embedder.embed(wav))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = SQRTM_EPS
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), with Google's reference numerics.

    ``‖mu1 − mu2‖² + Tr sigma1 + Tr sigma2 − 2 Tr sqrtm(sigma1 @ sigma2)``; see the module docstring for the
    retry with ``eps``·I and the imaginary-part check.

    Args:
        mu1, mu2: means ``[D]``.
        sigma1, sigma2: covariances ``[D, D]``.
        eps: diagonal offset for the retry when the first square root is not finite.

    Raises:
        UserError: shapes disagree, or the square root has a large imaginary part (usually too few
            embeddings for their dimension).
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    if mu1.ndim != 1 or sigma1.ndim != 2:
        raise UserError(f"Means must be [D] and covariances [D, D], got {mu1.shape} and {sigma1.shape}.")
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise UserError(
            f"Fréchet distance needs matching sizes, got means {mu1.shape}, {mu2.shape} "
            f"and covariances {sigma1.shape}, {sigma2.shape}."
        )
    diff = mu1 - mu2
    root = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(root).all():
        # The product can be (nearly) singular; the reference regularises both factors and retries.
        offset = np.eye(sigma1.shape[0]) * eps
        root = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(root):
        imag = float(np.max(np.abs(np.diagonal(root).imag))) if root.size else 0.0
        if imag > MAX_IMAG:
            raise UserError(
                f"The covariance square root has a large imaginary part ({imag:.3g}); "
                "use more embeddings than dimensions."
            )
        root = root.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(root))


def gaussian_from_sums(n: int, total: np.ndarray, outer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` from n, Σx ``[D]`` and Σxxᵀ ``[D, D]``.

    Σ = Σxxᵀ/(n−1) − μμᵀ·n/(n−1), the reference's accumulator formula (equal to ``np.cov(X, rowvar=False)``).
    """
    if n < 2:
        raise UserError(f"FAD needs at least 2 embeddings per set, got {n}.")
    mu = total / n
    sigma = outer / (n - 1) - np.outer(mu, mu) * (n / (n - 1))
    return mu, sigma


def _check_embeddings(emb: Any) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2:
        raise UserError(f"Embeddings must be [N, D], got shape {emb.shape}.")
    if not np.isfinite(emb).all():
        raise UserError("Embeddings contain NaN or infinite values.")
    return emb


def fad_inf_fit(
    mu_r: np.ndarray,
    sigma_r: np.ndarray,
    generated: np.ndarray,
    min_n: int = 500,
    steps: int = 25,
    seed: int = 0,
    replace: bool = False,
) -> dict[str, Any]:
    """FAD∞: fit FAD_n = a/n + b on random subsets of ``generated [N, D]`` against a fixed reference.

    Subset sizes are ``int`` of ``steps`` evenly spaced values from ``min_n`` to N (fadtk; the steps are
    clamped to the number of distinct sizes, and N must exceed ``min_n``). Subsets are drawn without replacement
    by default (so the n = N point is the full-set FAD); ``replace=True`` reproduces fadtk's sampling.

    Returns:
        ``{"fad_inf": b, "fad_inf_slope": a, "fad_inf_r2": R² of the fit, "fad_inf_points": [[n, FAD_n]]}``.
    """
    generated = _check_embeddings(generated)
    max_n = generated.shape[0]
    min_n = max(2, int(min_n))
    if max_n <= min_n:
        raise UserError(f"FAD-inf needs more than min_n={min_n} generated embeddings, got {max_n}; lower min_n.")
    steps = max(2, min(int(steps), max_n - min_n + 1))
    ns = [int(n) for n in np.linspace(min_n, max_n, steps)]
    rng = np.random.default_rng(seed)
    points = []
    for n in ns:
        idx = rng.choice(max_n, size=n, replace=replace)
        x = generated[idx]
        mu_g, sigma_g = gaussian_from_sums(n, x.sum(axis=0), x.T @ x)
        points.append([n, frechet_distance(mu_r, sigma_r, mu_g, sigma_g)])
    xs = 1.0 / np.array(ns, dtype=np.float64)
    ys = np.array([p[1] for p in points])
    slope, intercept = np.polyfit(xs, ys, 1)
    ss_tot = float(np.sum((ys - ys.mean()) ** 2))
    r2 = 1.0 - float(np.sum((ys - (slope * xs + intercept)) ** 2)) / ss_tot if ss_tot > 0 else float("nan")
    return {"fad_inf": float(intercept), "fad_inf_slope": float(slope), "fad_inf_r2": r2, "fad_inf_points": points}


class FrechetAudioDistance(Metric):
    """FAD between accumulated reference and generated embeddings.

    Args:
        backend: the embedder's name (reported; states from different backends never merge) or an
            :class:`AudioEmbedder`, which also enables :meth:`update_reference_audio` /
            :meth:`update_generated_audio`.
        fad_inf: also report FAD∞ (keeps every generated embedding in memory).
        min_n, steps, seed, replace: FAD∞ settings, see :func:`fad_inf_fit`.

    :meth:`compute` returns ``fad``, ``n_reference``, ``n_generated``, ``dim``, ``backend`` (and the
    ``fad_inf*`` entries when enabled).
    """

    def __init__(
        self,
        backend: str | AudioEmbedder = "unknown",
        fad_inf: bool = False,
        min_n: int = 500,
        steps: int = 25,
        seed: int = 0,
        replace: bool = False,
    ) -> None:
        super().__init__()
        self.embedder, self.backend = model_or_name(backend, AudioEmbedder)
        self.fad_inf = bool(fad_inf)
        self.min_n, self.steps, self.seed, self.replace = int(min_n), int(steps), int(seed), bool(replace)
        for side in ("reference", "generated"):
            self._add_state(f"{side}_n", "sum")
            self._add_state(f"{side}_sum", "sum")  # Σx   [D]
            self._add_state(f"{side}_outer", "sum")  # Σxxᵀ [D, D]
        self._add_state("generated_embeddings", "cat")  # [n_i, D] per update, only with fad_inf

    def config(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "fad_inf": self.fad_inf,
            "min_n": self.min_n,
            "steps": self.steps,
            "seed": self.seed,
            "replace": self.replace,
        }

    def _update(self, side: str, emb: Any) -> None:
        emb = _check_embeddings(emb)
        if emb.shape[0] == 0:
            return
        other = "generated" if side == "reference" else "reference"
        other_sum = self._state[f"{other}_sum"]
        if other_sum is not None and other_sum.shape[0] != emb.shape[1]:
            raise UserError(
                f"{side.capitalize()} embeddings have {emb.shape[1]} dimensions but the {other} ones "
                f"have {other_sum.shape[0]}; embed both with the same backend."
            )
        self._add(f"{side}_n", np.int64(emb.shape[0]))
        self._add(f"{side}_sum", emb.sum(axis=0))
        self._add(f"{side}_outer", emb.T @ emb)
        if side == "generated" and self.fad_inf:
            self._append("generated_embeddings", emb)

    def update_reference(self, emb: Any) -> None:
        """Add reference embeddings ``[N, D]`` (one row per example or frame, as the backend defines)."""
        self._update("reference", emb)

    def update_generated(self, emb: Any) -> None:
        """Add generated embeddings ``[N, D]``."""
        self._update("generated", emb)

    def update(self, generated: Any = None, reference: Any = None) -> None:
        """Add generated and/or reference embeddings ``[N, D]`` in one call."""
        if generated is not None:
            self.update_generated(generated)
        if reference is not None:
            self.update_reference(reference)

    def _embedder(self) -> AudioEmbedder:
        if self.embedder is None:
            raise UserError("This FAD metric was built with a backend name only; pass an AudioEmbedder to embed audio.")
        return self.embedder

    def update_reference_audio(self, wav: np.ndarray, sample_rate: int) -> None:
        """Embed one reference clip (``[N]`` or ``[C, N]`` at ``sample_rate``) and add its embeddings."""
        self.update_reference(embed_audio(self._embedder(), wav, sample_rate))

    def update_generated_audio(self, wav: np.ndarray, sample_rate: int) -> None:
        """Embed one generated clip and add its embeddings."""
        self.update_generated(embed_audio(self._embedder(), wav, sample_rate))

    def statistics(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``[D]`` and unbiased covariance ``[D, D]`` of the ``"reference"`` or ``"generated"`` set."""
        n = int(self._total(f"{side}_n"))
        if n < 2:
            raise UserError(f"FAD needs at least 2 {side} embeddings, got {n}.")
        return gaussian_from_sums(n, self._state[f"{side}_sum"], self._state[f"{side}_outer"])

    def compute(self) -> dict[str, Any]:
        mu_r, sigma_r = self.statistics("reference")
        mu_g, sigma_g = self.statistics("generated")
        # Reference first, as the reference implementation's compute_fad does: sqrtm(Σ_r Σ_g).
        out: dict[str, Any] = {
            "fad": frechet_distance(mu_r, sigma_r, mu_g, sigma_g),
            "n_reference": int(self._total("reference_n")),
            "n_generated": int(self._total("generated_n")),
            "dim": int(mu_r.shape[0]),
            "backend": self.backend,
        }
        if self.fad_inf:
            generated = np.concatenate(self._state["generated_embeddings"], axis=0)
            out.update(fad_inf_fit(mu_r, sigma_r, generated, self.min_n, self.steps, self.seed, self.replace))
        return out
