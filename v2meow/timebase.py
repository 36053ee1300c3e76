"""Seconds to indices, the one way every part of v2meow does it.

A unit is a token, a codec frame or a feature row at ``rate`` per second. ``seconds * rate`` within
``TIME_SLACK`` of a whole number counts as that number, so float noise (``2.3 * 50 = 114.99999999999999``)
never adds or drops a unit. Dependency-free, so configs, feature encoders, the dataset and generation all use it.
"""

from __future__ import annotations

import math

TIME_SLACK = 1e-6


def index_at(seconds: float, rate: float) -> int:
    """The index of the unit that ``seconds`` falls in (the first unit of a span starting there)."""
    return int(math.floor(seconds * rate + TIME_SLACK))


def units_in(seconds: float, rate: float) -> int:
    """How many units it takes to cover ``seconds`` from 0 (the end of a span ending there)."""
    return int(math.ceil(seconds * rate - TIME_SLACK))
