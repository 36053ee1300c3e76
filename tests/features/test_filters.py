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
