"""k-means quantiser of feature frames (the "+ k-means" half of a semantic tokenizer).

Fitting uses scikit-learn (seeded, so deterministic); prediction is a nearest-centroid search in torch so it
runs on the device of the features. The quantiser remembers what it was fitted on (``fitted_on``: the
identity of the encoder and layer), which travels as safetensors metadata next to the centroids.

Also here: the first-iteration HuBERT targets (k-means ids of log-mel + chroma frames), which train the first
semantic encoder before any learned features exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from v2meow.errors import UserError

__all__ = ["KMeans", "spectral_frames", "fit_first_iteration_kmeans", "first_iteration_targets"]

_FORMAT = "v2meow-kmeans/1"


class KMeans(nn.Module):
    """Nearest-centroid quantiser: features ``[..., D]`` → ids ``[...]`` in ``[0, K)``.

    Buffers (float, in the state_dict): ``centroids [K, D]`` in standardised units, ``mean [D]`` and
    ``scale [D]``, the per-dimension standardisation applied before the search (so no feature dimension
    dominates the distance just by its units). An unfitted quantiser has ``K = 0``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("centroids", torch.zeros(0, 0))
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("scale", torch.ones(0))
        self.fitted_on: dict[str, Any] = {}

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def fitted(self) -> bool:
        return self.k > 0

    @classmethod
    def random(cls, k: int, dim: int, fitted_on: dict[str, Any], seed: int = 0) -> KMeans:
        """``k`` standard-normal centroids of ``dim`` (an untrained model's: every weight random), as if fitted on
        ``fitted_on``."""
        km = cls()
        km.centroids = torch.randn(k, dim, generator=torch.Generator().manual_seed(seed))
        km.mean, km.scale = torch.zeros(dim), torch.ones(dim)
        km.fitted_on = dict(fitted_on)
        return km

    def fit(
        self,
        features: np.ndarray | Tensor,
        k: int,
        seed: int = 0,
        fitted_on: dict[str, Any] | None = None,
        standardize: bool = True,
        minibatch: bool | None = None,
        max_iter: int = 100,
        n_init: int = 1,
    ) -> KMeans:
        """Fit ``k`` centroids to ``features [N, D]``; the same inputs and seed give the same centroids.

        ``minibatch=None`` picks scikit-learn's MiniBatchKMeans above 50,000 frames and KMeans below;
        ``n_init`` k-means++ restarts keep the best.
        ``fitted_on`` is recorded as the identity of what produced the features (checked by consumers).
        """
        from sklearn.cluster import KMeans as SkKMeans
        from sklearn.cluster import MiniBatchKMeans

        x = features.detach().cpu().numpy() if isinstance(features, Tensor) else np.asarray(features)
        if x.ndim != 2:
            raise ValueError(f"features must be [N, D], got shape {x.shape}.")
        x = x.astype(np.float64)  # float64 so results do not depend on summation order across threads as much
        if not np.isfinite(x).all():
            raise UserError("k-means features contain NaN or infinite values.")
        if k < 2:
            raise UserError(f"k-means needs k >= 2 clusters, got {k}.")
        if x.shape[0] < k:
            raise UserError(f"k-means with k={k} needs at least {k} feature frames, got {x.shape[0]}.")
        mean = x.mean(0) if standardize else np.zeros(x.shape[1])
        scale = np.maximum(x.std(0), 1e-6) if standardize else np.ones(x.shape[1])
        z = (x - mean) / scale
        if minibatch is None:
            minibatch = x.shape[0] > 50_000
        if minibatch:
            algo = MiniBatchKMeans(
                n_clusters=k, random_state=seed, batch_size=min(10_000, x.shape[0]), n_init=n_init, max_iter=max_iter
            )
        else:
            algo = SkKMeans(n_clusters=k, random_state=seed, n_init=n_init, max_iter=max_iter)
        algo.fit(z)
        self.centroids = torch.as_tensor(algo.cluster_centers_, dtype=torch.float32)
        self.mean = torch.as_tensor(mean, dtype=torch.float32)
        self.scale = torch.as_tensor(scale, dtype=torch.float32)
        self.fitted_on = dict(fitted_on or {})
        return self

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Features ``[..., D]`` → nearest-centroid ids ``[...]`` (long)."""
        if not self.fitted:
            raise RuntimeError("KMeans.predict called before fit or load.")
        if x.shape[-1] != self.dim:
            raise ValueError(f"features have dimension {x.shape[-1]}, but the k-means was fitted on {self.dim}.")
        lead = x.shape[:-1]
        z = (x.reshape(-1, self.dim).float() - self.mean) / self.scale  # [M, D]
        c = self.centroids
        # ||z||^2 is the same for every centroid, so it is left out of the argmin.
        dist = c.square().sum(1)[None, :] - 2.0 * (z @ c.t())  # [M, K]
        return dist.argmin(1).reshape(lead)

    forward = predict

    # ---- saving -------------------------------------------------------------------------------------------

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Tensor],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # K and D are only known from the data: resize the empty buffers to what is being loaded.
        for name in ("centroids", "mean", "scale"):
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.empty_like(state_dict[key], dtype=torch.float32))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def to_metadata(self) -> dict[str, str]:
        """str → str metadata for safetensors: format, k, dim and ``fitted_on`` as JSON."""
        return {
            "format": _FORMAT,
            "k": str(self.k),
            "dim": str(self.dim),
            "fitted_on": json.dumps(self.fitted_on, sort_keys=True),
        }

    def load_metadata(self, metadata: dict[str, str]) -> None:
        """Restore ``fitted_on`` from :meth:`to_metadata` output; refuses other formats."""
        if metadata.get("format") != _FORMAT:
            raise UserError(f"this file is not a v2meow k-means (format {metadata.get('format')!r}).")
        self.fitted_on = json.loads(metadata.get("fitted_on", "{}"))

    def save(self, path: str | Path) -> None:
        """Write centroids and standardisation as safetensors, ``fitted_on`` as its metadata."""
        from safetensors.torch import save_file

        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(path), metadata=self.to_metadata())

    @classmethod
    def load(cls, path: str | Path) -> KMeans:
        """Read a file written by :meth:`save`."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise UserError(f"k-means file {path} does not exist.")
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        km = cls()
        km.load_metadata(metadata)
        km.load_state_dict(load_file(str(path)))
        return km


# ---- first-iteration HuBERT targets ---------------------------------------------------------------------


@torch.no_grad()
def spectral_frames(frontend: nn.Module, wav: Tensor) -> Tensor:
    """``wav [B, T]`` → frame features ``[B, T_s, F]`` from a spectral frontend returning ``[B, F, T_s]``."""
    return frontend(wav).transpose(1, 2)


def fit_first_iteration_kmeans(
    frontend: nn.Module,
    wavs: Iterable[Tensor],
    k: int,
    seed: int = 0,
    max_frames: int = 200_000,
    fitted_on: dict[str, Any] | None = None,
) -> KMeans:
    """Fit the HuBERT iteration-1 quantiser: k-means of spectral frames (log-mel + chroma) of ``wavs``.

    ``frontend`` maps ``[B, T]`` to ``[B, F, T_s]`` at the semantic frame rate (e.g.
    :class:`v2meow.tokenizers.semantic.SpectralFrontend`); each item of ``wavs`` is ``[T]`` or ``[B, T]``.
    At most ``max_frames`` frames are used, drawn evenly (deterministically) if there are more.
    """
    chunks = []
    for wav in wavs:
        wav = wav[None] if wav.dim() == 1 else wav
        frames = spectral_frames(frontend, wav)  # [B, T_s, F]
        chunks.append(frames.reshape(-1, frames.shape[-1]).cpu())
    if not chunks:
        raise UserError("no audio was given to fit the first-iteration k-means.")
    feats = torch.cat(chunks, dim=0).numpy()
    if feats.shape[0] > max_frames:
        feats = feats[np.linspace(0, feats.shape[0] - 1, max_frames).round().astype(np.int64)]
    return KMeans().fit(feats, k, seed=seed, fitted_on=fitted_on)


def first_iteration_targets(frontend: nn.Module, kmeans: KMeans, wav: Tensor) -> Tensor:
    """Masked-prediction targets ``[B, T_s]`` for ``wav [B, T]``: k-means ids of its spectral frames."""
    return kmeans.predict(spectral_frames(frontend, wav))
