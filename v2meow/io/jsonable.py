"""Values made ready for ``json.dump``: numpy scalars and arrays become Python values, tuples lists, keys strings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def jsonable(value: Any, finite: bool = False) -> Any:
    """``value`` with numpy scalars/arrays turned into Python values (recursively through dicts, lists and
    tuples; dict keys become strings). With ``finite``, NaN and ±inf become None (strict JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, finite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, finite) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), finite)
    if isinstance(value, np.generic):
        value = value.item()
    if finite and isinstance(value, float) and not math.isfinite(value):
        return None
    return value
