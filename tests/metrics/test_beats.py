"""BCS / BHS / F1 on hand-built onset bins, onset detection on clicks, and the beat F-measure."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from v2meow.errors import IdentityMismatch, UserError
from v2meow.metrics.beats import (
    BEAT_SAMPLE_RATE,
    HOP_LENGTH,
    BeatAlignment,
    BeatFMeasure,
    beat_counts,
    detect_onsets,
    f1_from_means,
    onset_bins,
    segment_clip,
)

SR = BEAT_SAMPLE_RATE


@pytest.fixture(scope="module", autouse=True)
def librosa_loaded() -> None:
    """Import librosa's onset and beat modules once per run: the import itself takes seconds (scipy.signal,
    and numba kernels that librosa.beat compiles at import), which would otherwise be billed to one test."""
    import librosa.beat  # noqa: F401
    import librosa.onset  # noqa: F401
    import mir_eval.beat  # noqa: F401


def click_track(times: np.ndarray, seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """Silence with a short decaying noise burst starting at each time."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * sr), dtype=np.float32)
    for t in times:
        i = int(round(t * sr))
        n = min(256, y.size - i)
        y[i : i + n] += (rng.standard_normal(n) * np.exp(-np.arange(n) / 40)).astype(np.float32)
    return y


def test_onset_binning() -> None:
    assert onset_bins(np.array([0.2, 0.7, 2.5, 3.99]), 4.2).tolist() == [1, 0, 1, 1, 0]  # ⌈4.2⌉ = 5 bins
    assert onset_bins(np.array([]), 3.0).tolist() == [0, 0, 0]
    assert onset_bins(np.array([1.0, 3.0]), 3.0).tolist() == [0, 1, 0]  # t = duration has no bin
    with pytest.raises(UserError):
        onset_bins(np.array([-0.1]), 2.0)


# Hand-built clips: (generated bins, reference bins).
CLIPS = [
    ([1, 1, 0, 1, 0, 1], [1, 0, 1, 1, 0, 0, 1, 1]),  # reference cut to 6 bins: B_s 4, B_t 3, B_a 2
    ([0, 0, 0], [1, 1, 0]),  # B_s 0, B_t 2, B_a 0
    ([1, 0], [0, 0]),  # B_s 1, B_t 0, B_a 0
    ([1, 1, 1, 1], [1, 0, 0, 0]),  # B_s 4, B_t 1, B_a 1
]


def test_counts_by_hand() -> None:
    assert [beat_counts(np.array(g), np.array(r)) for g, r in CLIPS] == [(4, 3, 2), (0, 2, 0), (1, 0, 0), (4, 1, 1)]
    with pytest.raises(UserError, match="reference"):
        beat_counts(np.array([1, 0, 1]), np.array([1, 0]))


@pytest.mark.parametrize(
    "mode, bcs, bhs",
    [
        # LORIS: BCS = B_a / B_s, BHS = B_a / B_t, 0 for a zero denominator.
        ("loris", [2 / 4, 0.0, 0 / 1, 1 / 4], [2 / 3, 0 / 2, 0.0, 1 / 1]),
        # Original: BCS = B_s / B_t (above 1 here), BHS = B_a / B_t.
        ("original", [4 / 3, 0 / 2, 0.0, 4 / 1], [2 / 3, 0 / 2, 0.0, 1 / 1]),
    ],
)
def test_scores_by_hand(mode: str, bcs: list[float], bhs: list[float]) -> None:
    m = BeatAlignment(mode)
    for g, r in CLIPS:
        m.update_bins(np.array(g), np.array(r))
    out = m.compute()
    n = len(CLIPS)
    assert out["bcs"] == pytest.approx(sum(bcs) / n)
    assert out["bhs"] == pytest.approx(sum(bhs) / n)
    assert out["bcs_std"] == pytest.approx(statistics.stdev(bcs))
    assert out["bhs_std"] == pytest.approx(statistics.stdev(bhs))
    mb, mh = sum(bcs) / n, sum(bhs) / n
    assert out["f1"] == pytest.approx(2 * mb * mh / (mb + mh))  # from the means...
    per_clip_f1 = [2 * c * h / (c + h) if c + h else 0.0 for c, h in zip(bcs, bhs)]
    assert out["f1"] != pytest.approx(sum(per_clip_f1) / n)  # ...not the mean of per-clip F1s
    assert (out["n"], out["mode"]) == (n, mode)


def test_f1_from_means_and_merge() -> None:
    assert f1_from_means(0.5, 1.0) == pytest.approx(2 / 3)
    assert f1_from_means(0.0, 0.0) == 0.0
    a, b, whole = BeatAlignment(), BeatAlignment(), BeatAlignment()
    for i, (g, r) in enumerate(CLIPS):
        (a if i == 0 else b).update_bins(np.array(g), np.array(r))
        whole.update_bins(np.array(g), np.array(r))
    assert a.merge(b).compute() == whole.compute()
    with pytest.raises(IdentityMismatch):
        BeatAlignment("original").merge(whole)


def test_onsets_of_clicks_within_one_hop() -> None:
    times = np.array([12, 50, 97, 140, 171]) * HOP_LENGTH / SR  # on frame boundaries, ≥ 0.5 s apart
    y = click_track(times, 4.5)
    for mode in ("loris", "original"):
        found = detect_onsets(y, SR, mode)
        assert found.shape == times.shape
        assert np.all(np.abs(found - times) <= HOP_LENGTH / SR + 1e-9)
    # Audio at another rate is resampled to 22050 Hz first.
    found = detect_onsets(click_track(times, 4.5, sr=44100), 44100)
    assert np.all(np.abs(found - times) <= HOP_LENGTH / SR + 1e-9)


@pytest.mark.parametrize("mode, window", [("loris", 3), ("original", 1)])
def test_onset_detection_settings(monkeypatch: pytest.MonkeyPatch, mode: str, window: int) -> None:
    """The settings of librosa's onset_detect that the metric's definition names (tests/metrics/test_onsets.py
    checks that v2meow.metrics.onsets gives librosa's onsets with them)."""
    import v2meow.metrics.onsets as onsets

    seen: dict = {}

    def spy(y, sr, hop_length, window, wait, delta):
        seen.update(y=y, sr=sr, hop_length=hop_length, window=window, wait=wait, delta=delta)
        return np.array([0.5])

    monkeypatch.setattr(onsets, "onset_times", spy)
    detect_onsets(np.ones(44100, dtype=np.float32), 44100, mode)
    assert seen["y"].shape == (22050,)  # resampled to 22050 Hz
    assert {k: v for k, v in seen.items() if k != "y"} == {"sr": 22050, "hop_length": 512, "window": window,
                                                           "wait": 1, "delta": 0.2}


def test_ground_truth_against_itself_scores_one() -> None:
    y = click_track(np.array([0.3, 1.4, 2.2, 3.7, 4.1]), 5.0)
    m = BeatAlignment("loris")
    m.update(y, y, SR)
    out = m.compute()
    assert out["bcs"] == 1.0 and out["bhs"] == 1.0 and out["f1"] == 1.0
    # A generated clip with clicks elsewhere: B_a counts only shared seconds.
    other = click_track(np.array([0.5, 2.9]), 3.0)  # bins {0, 2} against reference bins {0, 1, 2} (cut to 3)
    m2 = BeatAlignment("loris")
    m2.update(other, y, SR)
    assert m2.compute()["bcs"] == 1.0 and m2.compute()["bhs"] == pytest.approx(2 / 3)


def test_segments_for_table_2() -> None:
    wav = np.arange(2500.0)  # 25 s at 100 Hz
    for seconds, count in [(2.0, 12), (6.0, 4), (10.0, 2)]:
        segments = segment_clip(wav, 100, seconds)
        assert len(segments) == count and all(s.shape == (int(seconds * 100),) for s in segments)
        assert segments[1][0] == seconds * 100  # consecutive, non-overlapping
    assert len(segment_clip(np.zeros((2, 250)), 100, 2.0)) == 1  # [C, N] split along time


def test_beat_f_measure_by_hand() -> None:
    m = BeatFMeasure()
    m.update_beats([1.0, 2.0, 3.05], [1.0, 2.1, 3.0])  # 2 of 3 within ±70 ms
    assert m.compute()["beat_f"] == pytest.approx(2 / 3)
    wide = BeatFMeasure(window=0.11)
    wide.update_beats([1.0, 2.0, 3.05], [1.0, 2.1, 3.0])
    assert wide.compute()["beat_f"] == pytest.approx(1.0)
    empty = BeatFMeasure()
    empty.update_beats([], [1.0])
    assert empty.compute()["beat_f"] == 0.0


def test_beat_f_measure_of_a_click_track_at_the_visual_beats() -> None:
    beats = np.arange(0.5, 8.0, 0.5)
    y = click_track(beats, 8.2)
    m = BeatFMeasure()
    m.update(y, beats, SR)
    assert m.compute()["beat_f"] == pytest.approx(1.0)
    off = BeatFMeasure()
    off.update_beats(np.arange(0.5, 8.0, 0.5), beats + 0.25)  # between the beats: no match
    assert off.compute()["beat_f"] == 0.0


def test_beat_f_measure_is_mir_evals():
    import warnings

    import mir_eval

    from v2meow.metrics.beats import beat_f_measure

    rng = np.random.default_rng(0)
    for trial in range(400):
        n, m = rng.integers(0, 25, size=2)
        ref = np.sort(rng.uniform(0, 10, n))
        est = np.sort(rng.uniform(0, 10, m) if trial % 3 else ref[: m] + rng.normal(0, 0.05, min(m, n)))
        if trial % 7 == 0 and len(ref) and len(est):  # exact window edges and repeated times
            est = np.sort(np.concatenate([est, ref[:2] + 0.07, ref[:2] - 0.07, est[:1]]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            want = mir_eval.beat.f_measure(ref, est, f_measure_threshold=0.07)
        assert beat_f_measure(ref, est, 0.07) == pytest.approx(want, abs=1e-12), (ref, est)


def test_beat_f_against_its_own_video_and_the_others():
    from v2meow.metrics.beats import beat_f_own_and_others

    own = np.arange(0.5, 10, 0.5)
    others = [np.arange(0.25, 10, 0.5), np.arange(0.5, 10, 1.0)]  # off the beat; every other beat
    f_own, f_other = beat_f_own_and_others(own[::-1], own, others)  # unsorted input is sorted first
    assert f_own == 1.0 and f_other == pytest.approx(np.mean([0.0, 2 * 10 / (19 + 10)]))  # 10 of 19 matched
    assert np.isnan(beat_f_own_and_others(own, own, [])[1])
