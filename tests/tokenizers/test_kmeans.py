"""k-means quantiser: determinism, nearest-centroid prediction, saving with metadata, first-iteration targets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from v2meow.errors import UserError
from v2meow.tokenizers.kmeans import KMeans, first_iteration_targets, fit_first_iteration_kmeans
from v2meow.tokenizers.semantic import SemanticEncoderConfig, SpectralFrontend

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def blobs(n: int = 600, dim: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(8, dim)) * 4
    # Dimensions on different scales, so standardisation matters.
    return (centers[rng.integers(0, 8, n)] + rng.normal(size=(n, dim))) * np.array([1, 10, 0.1, 1, 100])[:dim]


@pytest.mark.parametrize("minibatch", [False, True])
def test_same_seed_same_centroids_and_ids(minibatch: bool) -> None:
    x = blobs()
    a = KMeans().fit(x, k=8, seed=3, minibatch=minibatch)
    b = KMeans().fit(x, k=8, seed=3, minibatch=minibatch)
    assert a.centroids.shape == (8, 5)
    assert torch.equal(a.centroids, b.centroids)
    t = torch.as_tensor(x, dtype=torch.float32)
    assert torch.equal(a.predict(t), b.predict(t))


def test_predict_is_the_nearest_centroid() -> None:
    x = blobs()
    km = KMeans().fit(x, k=8, seed=0)
    q = torch.as_tensor(blobs(50, seed=1), dtype=torch.float32)
    z = (q - km.mean) / km.scale
    brute = torch.cdist(z.double(), km.centroids.double()).argmin(1)
    assert torch.equal(km.predict(q), brute)
    # Leading dimensions are kept: [2, 25, D] → [2, 25].
    assert torch.equal(km.predict(q.reshape(2, 25, 5)), brute.reshape(2, 25))
    assert torch.equal(km(q), brute)


def test_standardisation_keeps_small_scale_dimensions() -> None:
    """Two clusters that differ only in a dimension of tiny scale are still told apart."""
    rng = np.random.default_rng(0)
    side = rng.integers(0, 2, 400)
    x = np.stack([rng.normal(size=400) * 100, side * 0.01 + rng.normal(size=400) * 1e-4], axis=1)
    km = KMeans().fit(x, k=2, seed=0)
    ids = km.predict(torch.as_tensor(x, dtype=torch.float32)).numpy()
    agreement = (ids == side).mean()
    assert max(agreement, 1 - agreement) > 0.99


def test_save_load_keeps_centroids_and_fitted_on(tmp_path) -> None:
    km = KMeans().fit(blobs(), k=8, seed=0, fitted_on={"name": "enc", "layer": 3, "weights": "abc"})
    meta = km.to_metadata()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    km.save(tmp_path / "km.safetensors")
    loaded = KMeans.load(tmp_path / "km.safetensors")
    assert loaded.fitted_on == {"name": "enc", "layer": 3, "weights": "abc"}
    assert loaded.k == 8 and torch.equal(loaded.centroids, km.centroids)
    q = torch.randn(30, 5)
    assert torch.equal(loaded.predict(q), km.predict(q))
    with pytest.raises(UserError, match="not a v2meow k-means"):
        KMeans().load_metadata({"format": "something-else"})
    with pytest.raises(UserError, match="does not exist"):
        KMeans.load(tmp_path / "missing.safetensors")


def test_user_errors() -> None:
    with pytest.raises(UserError, match="at least 8"):
        KMeans().fit(np.zeros((5, 3)), k=8)
    with pytest.raises(UserError, match="NaN"):
        KMeans().fit(np.full((20, 3), np.nan), k=2)
    with pytest.raises(RuntimeError):
        KMeans().predict(torch.zeros(3, 2))
    km = KMeans().fit(blobs(), k=4)
    with pytest.raises(ValueError, match="dimension"):
        km.predict(torch.zeros(3, 2))


def test_first_iteration_targets_separate_different_sounds() -> None:
    cfg = SemanticEncoderConfig.debug()
    frontend = SpectralFrontend(cfg)
    t = torch.arange(8000) / 16000
    low = 0.5 * torch.sin(2 * math.pi * 220 * t)
    high = 0.5 * torch.sin(2 * math.pi * 1760 * t) * torch.sin(2 * math.pi * 2 * t).abs()
    wav = torch.stack([low, high])  # [2, 8000]
    km = fit_first_iteration_kmeans(frontend, [wav], k=4, seed=0, fitted_on=frontend.identity())
    assert km.fitted_on["name"] == "v2meow-spectral-frontend"
    targets = first_iteration_targets(frontend, km, wav)
    assert targets.shape == (2, 13)  # ceil(8000 / 640) frames at 25 Hz
    # The steady low tone and the high tone share no cluster in their interiors.
    assert not set(targets[0, 1:-1].tolist()) & set(targets[1, 1:-1].tolist())
