"""scripts/tempo_candidates.py: the pick that prefers candidates at the picture clock's tempo."""

from script_module import load_script


def _script():
    return load_script("tempo_candidates")


def _row(clock, cands, chosen):
    return {"clock_tempo": clock, "chosen": chosen, "candidates": [
        {"tempo": t, "score": s, "acc1": a, "f": f} for t, s, a, f in cands]}


def test_the_best_scored_candidate_at_the_clocks_tempo_is_kept_else_the_default():
    mod = _script()
    # candidates 1 and 3 lie within 8 % of 100 BPM; 3 scores higher; the default kept 0 (best score overall)
    row = _row(100.0, [(150.0, 0.9, False, 0.2), (104.0, 0.5, True, 0.6), (60.0, 0.3, False, 0.1),
                       (97.0, 0.7, True, 0.8)], chosen=0)
    assert mod.tempo_pick(row) == 3
    assert mod.tempo_pick(row, tolerance=0.02) == 0  # none that close: the default stays
    assert mod.tempo_pick(_row(None, [(100.0, 0.5, True, 0.5), (50.0, 0.9, False, 0.1)], chosen=1)) == 1  # no clock
    assert mod.tempo_pick(_row(100.0, [(None, 0.5, False, 0.0), (100.0, 0.1, True, 0.4)], chosen=0)) == 1  # no beats


def test_the_summary_counts_picks_and_pairs_their_beat_f():
    mod = _script()
    rows = [_row(100.0, [(150.0, 0.9, False, 0.2), (100.0, 0.5, True, 0.6)], chosen=0),
            _row(120.0, [(120.0, 0.9, True, 0.7), (60.0, 0.5, False, 0.1)], chosen=0),
            _row(90.0, [(200.0, 0.9, False, 0.3), (45.0, 0.5, False, 0.2)], chosen=0)]
    text = mod.summary(rows)
    assert "| by beat alignment (the default) | 33% | 0.400 |" in text
    assert "| at the clock's tempo, else the default | 67% | 0.533 (paired +0.133 ± 0.133) |" in text
    assert "| any candidate at the tempo | 67% | |" in text
    assert "clips whose pick changes: 1" in text
