"""scripts/paired_fad.py: FAD per set from clip sums, and the paired bootstrap of a difference."""


import numpy as np
from script_module import load_script

from v2meow.metrics.fad import FrechetAudioDistance


def _script():
    return load_script("paired_fad")


def _clips(rng, n, shift=0.0, dim=6):
    return [rng.normal(shift, 1.0, size=(int(rng.integers(20, 40)), dim)) for _ in range(n)]


def test_full_set_fad_equals_the_accumulated_metric():
    mod = _script()
    rng = np.random.default_rng(0)
    real, gen = _clips(rng, 12), _clips(rng, 12, shift=0.3)
    full, draws = mod.paired_bootstrap(real, [gen], boot=5)
    fad = FrechetAudioDistance("test")
    for r, g in zip(real, gen):
        fad.update_reference(r)
        fad.update_generated(g)
    assert np.isclose(full[0], fad.compute()["fad"], rtol=1e-9)
    assert draws.shape == (5, 1)


def test_paired_difference_is_zero_for_the_same_set_and_resolves_a_real_one():
    mod = _script()
    rng = np.random.default_rng(1)
    real = _clips(rng, 30)
    same = _clips(rng, 30, 0.2)
    near = [c.copy() for c in same]
    far = [c + 0.8 for c in same]
    full, draws = mod.paired_bootstrap(real, [same, near, far], boot=60)
    assert np.allclose(draws[:, 1], draws[:, 0])  # the same clips: no difference on any resample
    d = draws[:, 2] - draws[:, 0]
    assert full[2] > full[0] and d.mean() > 3 * d.std(ddof=1)  # a shift of 0.8 in every dimension is not noise
