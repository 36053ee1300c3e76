"""scripts/release_gate.py: tempo accuracy judged clip by clip."""

import numpy as np
from script_module import load_script


def test_tempo_accuracy_is_clearly_better_only_beyond_two_standard_errors_and_worse_at_any_loss():
    gate = load_script("release_gate")
    base = np.array([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0] * 3)
    fixed = base.copy()
    fixed[[1, 2, 3, 5, 6, 7, 13, 14]] = 1  # 8 clips now at the tempo, none lost
    row = gate.tempo_row("tempo", base, fixed)
    assert row["verdict"] == "better" and row["clear"] and "z" not in row
    one = base.copy()
    one[1] = 1
    assert gate.tempo_row("tempo", base, one)["verdict"] == "better" and not gate.tempo_row("tempo", base, one)["clear"]
    lost = base.copy()
    lost[0] = 0
    assert gate.tempo_row("tempo", base, lost)["verdict"] == "worse"  # any loss fails, as before
    assert gate.tempo_row("tempo", base, base)["verdict"] == "equal"
