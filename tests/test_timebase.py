import math

from v2meow.timebase import index_at, units_in


def test_float_noise_neither_adds_nor_drops_a_unit():
    assert math.ceil(1.1 * 50) == 56 and units_in(1.1, 50) == 55  # 1.1 * 50 = 55.00000000000001
    assert math.floor(0.29 * 100) == 28 and index_at(0.29, 100) == 29  # 0.29 * 100 = 28.999999999999996


def test_spans_cover_their_seconds():
    assert units_in(10.0, 25) == 250 and units_in(10.01, 25) == 251 and units_in(0.001, 50) == 1
    assert index_at(0.0, 50) == 0 and index_at(0.019, 50) == 0 and index_at(0.02, 50) == 1
    assert index_at(1.5, 1.0) == 1  # the row that 1.5 s falls in, not a rounding to 2
