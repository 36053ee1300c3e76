"""FAD against closed forms and independent numpy computations."""

from __future__ import annotations

import numpy as np
import pytest

from v2meow.errors import IdentityMismatch, UserError
from v2meow.metrics import fad as fad_module
from v2meow.metrics.fad import FrechetAudioDistance, fad_inf_fit, frechet_distance


def closed_form(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Fréchet distance with Tr √(Σ1 Σ2) = Σ √eig(Σ1^½ Σ2 Σ1^½), via symmetric eigendecompositions (no sqrtm)."""
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(w)) @ v.T
    ev = np.linalg.eigvalsh(root @ s2 @ root)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(ev, 0, None))))


def same(a: dict, b: dict, rel: float = 1e-10) -> None:
    """Two compute() results agree: numbers to ``rel``, everything else exactly."""
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], (int, float)):
            assert a[k] == pytest.approx(b[k], rel=rel), k
        else:
            assert a[k] == b[k], k


def gaussians(d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    mu1 = rng.standard_normal(d)
    return mu1, a @ a.T + 0.5 * np.eye(d), mu1 + 0.5 * rng.standard_normal(d), b @ b.T + 0.5 * np.eye(d)


def test_frechet_distance_matches_closed_form_exactly() -> None:
    mu1, s1, mu2, s2 = gaussians()
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(closed_form(mu1, s1, mu2, s2), rel=1e-10)
    # Symmetric in its two Gaussians.
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(closed_form(mu1, s1, mu2, s2), rel=1e-10)


def test_fad_of_large_gaussian_samples_approaches_closed_form() -> None:
    mu1, s1, mu2, s2 = gaussians()
    rng = np.random.default_rng(1)
    m = FrechetAudioDistance("test-backend")
    m.update_reference(rng.multivariate_normal(mu1, s1, 20000))
    m.update_generated(rng.multivariate_normal(mu2, s2, 20000))
    out = m.compute()
    assert out["fad"] == pytest.approx(closed_form(mu1, s1, mu2, s2), rel=0.03)
    assert (out["n_reference"], out["n_generated"], out["dim"], out["backend"]) == (20000, 20000, 4, "test-backend")


def test_fad_uses_unbiased_covariance_on_small_sets() -> None:
    rng = np.random.default_rng(2)
    ref, gen = rng.standard_normal((6, 3)), rng.standard_normal((7, 3)) + 0.3
    m = FrechetAudioDistance()
    m.update_reference(ref)
    m.update_generated(gen)
    mu_r, sigma_r = m.statistics("reference")
    np.testing.assert_allclose(sigma_r, np.cov(ref, rowvar=False, ddof=1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mu_r, ref.mean(axis=0), rtol=1e-12)
    expected = closed_form(ref.mean(0), np.cov(ref, rowvar=False), gen.mean(0), np.cov(gen, rowvar=False))
    assert m.compute()["fad"] == pytest.approx(expected, rel=1e-8)


def test_fad_of_identical_sets_is_zero() -> None:
    x = np.random.default_rng(3).standard_normal((300, 8)) * 3 + 5
    m = FrechetAudioDistance()
    m.update(generated=x, reference=x)
    assert abs(m.compute()["fad"]) < 1e-8


def test_batches_and_merges_equal_one_pass() -> None:
    rng = np.random.default_rng(4)
    ref, gen = rng.standard_normal((90, 5)), rng.standard_normal((70, 5)) * 1.5
    whole = FrechetAudioDistance("b")
    whole.update(generated=gen, reference=ref)

    batched = FrechetAudioDistance("b")
    for i in range(0, 90, 25):
        batched.update_reference(ref[i : i + 25])
    for i in range(0, 70, 13):
        batched.update_generated(gen[i : i + 13])
    same(batched.compute(), whole.compute())

    left, right = FrechetAudioDistance("b"), FrechetAudioDistance("b")
    left.update(generated=gen[:30], reference=ref[:50])
    right.update(generated=gen[30:], reference=ref[50:])
    merged = FrechetAudioDistance("b")
    merged.load_state_dict(left.state_dict())
    merged.merge(right)
    same(merged.compute(), whole.compute())
    # left itself is unchanged by being merged into another metric
    assert left.compute()["n_generated"] == 30

    with pytest.raises(IdentityMismatch):
        FrechetAudioDistance("other").merge(left)


def test_eps_retry_regularises_both_covariances(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    ref, gen = rng.standard_normal((3, 6)), rng.standard_normal((4, 6))  # fewer rows than dims: singular
    m = FrechetAudioDistance()
    m.update(generated=gen, reference=ref)
    _, s_r = m.statistics("reference")
    _, s_g = m.statistics("generated")

    real_sqrtm = fad_module.linalg.sqrtm
    calls: list[np.ndarray] = []

    def flaky_sqrtm(a: np.ndarray) -> np.ndarray:
        calls.append(a.copy())
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(fad_module.linalg, "sqrtm", flaky_sqrtm)
    value = m.compute()["fad"]
    assert len(calls) == 2
    np.testing.assert_allclose(calls[0], s_r @ s_g, rtol=1e-12)  # reference first, as compute_fad does
    eye = np.eye(6) * 1e-7
    np.testing.assert_allclose(calls[1], (s_r + eye) @ (s_g + eye), rtol=1e-12)
    mu_r, mu_g = ref.mean(0), gen.mean(0)
    root = real_sqrtm((s_r + eye) @ (s_g + eye)).real
    expected = np.sum((mu_r - mu_g) ** 2) + np.trace(s_r) + np.trace(s_g) - 2 * np.trace(root)
    assert value == pytest.approx(expected, rel=1e-9)


def test_singular_covariances_give_a_finite_fad() -> None:
    rng = np.random.default_rng(6)
    m = FrechetAudioDistance()
    m.update(generated=rng.standard_normal((3, 10)), reference=rng.standard_normal((4, 10)))
    with np.errstate(all="ignore"):
        assert np.isfinite(m.compute()["fad"])


@pytest.mark.parametrize("imag, ok", [(5e-4, True), (2e-3, False)])
def test_imaginary_part_check(monkeypatch: pytest.MonkeyPatch, imag: float, ok: bool) -> None:
    mu1, s1, mu2, s2 = gaussians(d=3)
    real = fad_module.linalg.sqrtm(s1 @ s2)
    monkeypatch.setattr(fad_module.linalg, "sqrtm", lambda a: real + 1j * imag * np.eye(3))
    if ok:
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(closed_form(mu1, s1, mu2, s2), rel=1e-9)
    else:
        with pytest.raises(UserError, match="imaginary"):
            frechet_distance(mu1, s1, mu2, s2)


def test_fad_inf_fit_and_points() -> None:
    rng = np.random.default_rng(7)
    d = 16
    ref = rng.standard_normal((30000, d))
    gen = rng.standard_normal((3000, d))  # same distribution: true FAD is 0, FAD_n is biased upward ~ 1/n
    m = FrechetAudioDistance("b", fad_inf=True, min_n=100, steps=25, seed=3)
    m.update(generated=gen[:1200], reference=ref)
    m.update_generated(gen[1200:])
    out = m.compute()
    ns = [p[0] for p in out["fad_inf_points"]]
    assert ns == [int(n) for n in np.linspace(100, 3000, 25)]
    # Without replacement the n = N subset is the whole set.
    assert out["fad_inf_points"][-1][1] == pytest.approx(out["fad"], rel=1e-9)
    slope, intercept = np.polyfit(1 / np.array(ns), [p[1] for p in out["fad_inf_points"]], 1)
    assert out["fad_inf"] == pytest.approx(intercept) and out["fad_inf_slope"] == pytest.approx(slope)
    assert slope > 0  # small samples inflate FAD
    assert abs(out["fad_inf"]) < out["fad"]  # closer to the true 0 than the biased full-set FAD
    # Seeded: the same state gives the same FAD-inf.
    again = FrechetAudioDistance("b", fad_inf=True, min_n=100, seed=3).merge(m).compute()
    assert again["fad_inf"] == out["fad_inf"] and again["fad_inf_points"] == out["fad_inf_points"]


def test_fad_inf_clamps_sizes_to_the_data() -> None:
    rng = np.random.default_rng(8)
    ref, gen = rng.standard_normal((50, 2)), rng.standard_normal((30, 2))
    out = fad_inf_fit(ref.mean(0), np.cov(ref, rowvar=False), gen, min_n=10, steps=25)
    assert [p[0] for p in out["fad_inf_points"]] == list(range(10, 31))  # steps clamped to 21 distinct sizes
    with pytest.raises(UserError, match="min_n"):
        fad_inf_fit(ref.mean(0), np.cov(ref, rowvar=False), gen, min_n=500)


def test_bad_inputs_are_user_errors() -> None:
    m = FrechetAudioDistance()
    m.update_reference(np.zeros((3, 4)))
    with pytest.raises(UserError, match="dimensions"):
        m.update_generated(np.zeros((3, 5)))
    with pytest.raises(UserError):
        m.update_generated(np.zeros(4))
    with pytest.raises(UserError, match="at least 2"):
        m.compute()
    with pytest.raises(UserError):
        FrechetAudioDistance().update_generated_audio(np.zeros(16000), 16000)
