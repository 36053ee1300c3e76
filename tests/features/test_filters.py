import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from v2meow.features.filters import gaussian_smooth, running_max


@pytest.mark.parametrize("n", [1, 2, 5, 37, 200])
@pytest.mark.parametrize("sigma", [0.75, 1.3, 4.2])
def test_gaussian_smooth_is_scipys_with_nearest_edges(n, sigma):
    x = np.random.default_rng(n).normal(size=(n, 3)).astype(np.float32)
    for axis in (0, 1):
        got = gaussian_smooth(x, sigma, axis=axis)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, gaussian_filter1d(x, sigma, axis=axis, mode="nearest"), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("n", [1, 3, 50])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 10])
def test_running_max_is_scipys_with_nearest_edges(n, size):
    y = np.random.default_rng(size).normal(size=n)
    assert np.array_equal(running_max(y, size), maximum_filter1d(y, size=size, mode="nearest"))


def test_filters_refuse_bad_arguments():
    with pytest.raises(ValueError):
        gaussian_smooth(np.zeros(4), 0.0)
    with pytest.raises(ValueError):
        running_max(np.zeros((2, 2)), 3)


def _quantised(rng, n, levels):
    return np.round(rng.normal(size=n) * levels) / levels  # coarse values: flat tops and ties


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("distance", [1, 2, 3, 7])
def test_find_peaks_is_scipys(seed, distance):
    from scipy.signal import find_peaks as scipy_find_peaks

    from v2meow.features.filters import find_peaks

    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 120))
    for x in (rng.normal(size=n), _quantised(rng, n, 2), np.maximum(rng.normal(size=n), 0.0)):
        height = float(np.quantile(x, 0.4)) if x.size else None
        for h in (None, height):
            got = find_peaks(x, height=h, distance=distance)
            want, _ = scipy_find_peaks(x, height=h, distance=distance)
            assert np.array_equal(got, want), (x, h, distance)


def test_find_peaks_takes_a_flat_top_once_at_its_middle():
    from v2meow.features.filters import find_peaks

    assert find_peaks(np.array([0, 1, 3, 3, 3, 3, 1, 0.0])).tolist() == [3]
    assert find_peaks(np.array([2, 1, 2.0])).tolist() == []  # the ends never count
    assert find_peaks(np.array([0, 5, 0, 4, 0, 3, 0.0]), distance=3).tolist() == [1, 5]
    with pytest.raises(ValueError):
        find_peaks(np.zeros((2, 2)))
