"""MCC / CLAP score: cosine similarity of paired joint-space embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from v2meow.errors import IdentityMismatch, UserError
from v2meow.metrics.mcc import JointCosine, JointEmbedder, cosine_similarity


def test_identical_orthogonal_and_opposite() -> None:
    e = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0], [1.0, -1.0, 0.5]])
    m = JointCosine("clap-music")
    m.update(e, e * 2.5)
    assert m.compute()["mcc"] == pytest.approx(1.0, abs=1e-12)

    o = JointCosine("clap-music")
    o.update(np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[0.0, 3.0], [-1.0, 0.0]]))
    assert o.compute()["mcc"] == pytest.approx(0.0, abs=1e-12)

    both = JointCosine("clap-music")
    both.update(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 0.0], [-1.0, -1.0]]))
    out = both.compute()
    assert out["mcc"] == pytest.approx(0.0, abs=1e-12)  # mean of 1 and −1
    assert (out["n"], out["model"], out["target"]) == (2, "clap-music", "audio")


def test_matches_torch_cosine_with_eps() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    x[0] *= 1e-10  # below eps: clamped norm, as torch does
    ref = torch.nn.functional.cosine_similarity(torch.from_numpy(x), torch.from_numpy(y), dim=1, eps=1e-8)
    np.testing.assert_allclose(cosine_similarity(x, y), ref.numpy(), rtol=1e-12)


def test_merge_equals_one_pass() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    whole, a, b = JointCosine("m"), JointCosine("m"), JointCosine("m")
    whole.update(x, y)
    a.update(x[:4], y[:4])
    b.update(x[4:], y[4:])
    assert a.merge(b).compute()["mcc"] == pytest.approx(whole.compute()["mcc"], rel=1e-12)
    with pytest.raises(IdentityMismatch):
        JointCosine("m", target="text").merge(whole)


class FakeJoint(JointEmbedder):
    """Audio embedding: [length in samples, mean]; text embedding: fixed per prompt."""

    name = "fake"
    sample_rate = 100
    crop_seconds = 2.0

    def embed_audio(self, wav: np.ndarray) -> np.ndarray:
        return np.array([wav.shape[0], wav.mean()])

    def embed_text(self, text: str) -> np.ndarray:
        return np.array([1.0, 0.0]) if text == "along" else np.array([0.0, 1.0])


def test_embedders_crop_and_pair() -> None:
    m = JointCosine(FakeJoint(), target="audio")
    m.update_audio(np.zeros(500), np.zeros(300), 100)  # both cropped to 200 samples: identical embeddings
    assert m.compute()["mcc"] == pytest.approx(1.0)
    t = JointCosine(FakeJoint(), target="text")
    t.update_text([np.zeros(100), np.zeros(100)], ["along", "across"], 100)
    assert t.compute()["mcc"] == pytest.approx(0.5)  # cos 1 with "along", cos 0 with "across"
    with pytest.raises(UserError):
        t.update_audio(np.zeros(10), np.zeros(10), 100)
    with pytest.raises(UserError):
        JointCosine("name-only").update_audio(np.zeros(10), np.zeros(10), 100)
    with pytest.raises(UserError):
        JointCosine().update(np.zeros((2, 3)), np.zeros((3, 3)))
