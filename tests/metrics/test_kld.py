"""KLD against hand computations, and the chunking rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from v2meow.errors import IdentityMismatch, UserError
from v2meow.metrics.kld import AudioClassifier, ClassKLDivergence, kl_divergence, softmax, split_chunks


def test_kl_of_known_distributions_by_hand() -> None:
    p_ref = np.array([0.5, 0.5, 0.0])
    p_gen = np.array([0.25, 0.25, 0.5])
    # Σ p_ref log(p_ref / (p_gen + 1e-6)); the zero-probability class contributes nothing.
    expected = 2 * 0.5 * math.log(0.5 / (0.25 + 1e-6))
    m = ClassKLDivergence("hand", inputs="probs")
    m.update(p_gen[None], p_ref[None])
    out = m.compute()
    assert out["kld"] == pytest.approx(expected, rel=1e-12)
    assert abs(out["kld"] - math.log(2)) > 1e-6  # the epsilon is really there
    expected_qp = 0.25 * math.log(0.25 / 0.500001) * 2 + 0.5 * math.log(0.5 / 1e-6)
    assert out["kld_qp"] == pytest.approx(expected_qp, rel=1e-12)
    assert out["kld_both"] == pytest.approx(expected + expected_qp)
    assert out["classifier"] == "hand" and out["n"] == 1


def test_logits_go_through_softmax_and_items_average() -> None:
    rng = np.random.default_rng(0)
    logits_gen, logits_ref = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    m = ClassKLDivergence("passt")
    m.update(logits_gen[:1], logits_ref[:1])
    m.update(logits_gen[1:], logits_ref[1:])
    by_hand = []
    for g, r in zip(logits_gen, logits_ref):
        pg, pr = np.exp(g) / np.exp(g).sum(), np.exp(r) / np.exp(r).sum()
        by_hand.append(sum(pr[c] * math.log(pr[c] / (pg[c] + 1e-6)) for c in range(6)))
    assert m.compute()["kld"] == pytest.approx(np.mean(by_hand), rel=1e-10)
    # Adding a constant to the logits changes nothing.
    shifted = ClassKLDivergence("passt")
    shifted.update(logits_gen + 7.0, logits_ref - 3.0)
    assert shifted.compute()["kld"] == pytest.approx(np.mean(by_hand), rel=1e-10)


def test_merge_and_identity() -> None:
    rng = np.random.default_rng(1)
    g, r = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    whole, a, b = ClassKLDivergence("c"), ClassKLDivergence("c"), ClassKLDivergence("c")
    whole.update(g, r)
    a.update(g[:2], r[:2])
    b.update(g[2:], r[2:])
    assert a.merge(b).compute() == whole.compute()
    with pytest.raises(IdentityMismatch):
        ClassKLDivergence("other").merge(whole)


def test_chunking_drops_short_chunks_without_padding() -> None:
    sr = 1000
    chunks = split_chunks(np.arange(2150.0), sr, chunk_seconds=1.0)
    assert [c.shape[0] for c in chunks] == [1000, 1000]  # the 150-sample (0.15 s) tail is dropped
    chunks = split_chunks(np.arange(2151.0), sr, chunk_seconds=1.0)
    assert [c.shape[0] for c in chunks] == [1000, 1000, 151]  # kept as is, not padded
    assert chunks[2][0] == 2000 and chunks[2][-1] == 2150
    assert split_chunks(np.zeros(150), sr, 1.0) == []


class LevelClassifier(AudioClassifier):
    """Two classes whose logits are the chunk's mean level and its negation."""

    name = "level"
    sample_rate = 1000
    num_classes = 2
    chunk_seconds = 1.0

    def logits(self, chunk: np.ndarray) -> np.ndarray:
        level = float(np.mean(chunk))
        return np.array([level, -level])


def probs(level: float) -> np.ndarray:
    return np.exp([level, -level]) / np.exp([level, -level]).sum()


def kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(sum(p[c] * math.log(p[c] / (q[c] + 1e-6)) for c in range(len(p))))


def test_audio_per_chunk_and_per_item() -> None:
    gen = np.concatenate([np.full(1000, 0.2), np.full(1000, 0.9), np.full(100, 5.0)])  # last chunk ≤ 0.15 s
    ref = np.concatenate([np.full(1000, -0.4), np.full(1000, 0.1), np.full(100, -5.0)])
    chunk = ClassKLDivergence(LevelClassifier(), per="chunk")
    chunk.update_audio(gen, ref, 1000)
    expected_chunk = (kl(probs(-0.4), probs(0.2)) + kl(probs(0.1), probs(0.9))) / 2
    assert chunk.compute()["kld"] == pytest.approx(expected_chunk, rel=1e-9)
    assert chunk.compute()["n"] == 2 and chunk.compute()["classifier"] == "level"

    item = ClassKLDivergence(LevelClassifier(), per="item")
    item.update_audio(gen, ref, 1000)
    p_gen = (probs(0.2) + probs(0.9)) / 2  # probabilities (not logits) averaged over chunks
    p_ref = (probs(-0.4) + probs(0.1)) / 2
    assert item.compute()["kld"] == pytest.approx(kl(p_ref, p_gen), rel=1e-9)
    assert item.compute()["n"] == 1

    short = ClassKLDivergence(LevelClassifier())
    short.update_audio(np.zeros(150), np.zeros(150), 1000)
    with pytest.raises(UserError):
        short.compute()
    with pytest.raises(UserError, match="chunks"):
        chunk.update_audio(gen, ref[:1000], 1000)


def test_bad_inputs() -> None:
    with pytest.raises(UserError, match="probabilities"):
        ClassKLDivergence(inputs="probs").update(np.array([[0.5, 0.7]]), np.array([[0.5, 0.5]]))
    with pytest.raises(UserError, match="shape"):
        ClassKLDivergence().update(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(UserError):
        ClassKLDivergence().update_audio(np.zeros(10), np.zeros(10), 1000)
    assert kl_divergence(softmax(np.zeros(4)), softmax(np.zeros(4))) == pytest.approx(-math.log1p(4e-6), rel=1e-6)
