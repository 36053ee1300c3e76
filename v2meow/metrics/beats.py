"""Beat alignment of generated music with its ground truth (BCS, BHS, F1) and with visual beats.

BCS / BHS (D2M-GAN, CDCD, LORIS; the paper uses LORIS's version). Onsets, not beats:
``librosa.onset.onset_detect(y, sr=22050, units='time', wait=1, delta=0.2, pre_avg=w, post_avg=w,
pre_max=w, post_max=w)`` on audio at 22050 Hz mono (hop 512), with w = 1 in the original version and
w = 3 in LORIS's. Onset times are binned to whole seconds, b[⌊t⌋] = 1 over ⌈duration⌉ bins; the
ground-truth bins are cut to the generated clip's length. With B_s = Σ b_gen, B_t = Σ b_ref and
B_a = Σ (b_gen ∧ b_ref):

- ``mode="original"``: BCS = B_s / B_t (can exceed 1), BHS = B_a / B_t;
- ``mode="loris"``: BCS = B_a / B_s, BHS = B_a / B_t;

each 0 when its denominator is 0, computed per clip and averaged over clips;
F1 = 2·mean(BCS)·mean(BHS) / (mean(BCS) + mean(BHS)) from the means; sample stds (ddof 1) beside them.
Scores are fractions (the paper prints them ×100). The paper evaluates 2 s, 6 s and 10 s segments
(:func:`segment_clip`, :data:`TABLE2_SEGMENT_SECONDS`), 5 generations per segment.

The one-second bins are coarse; :class:`BeatFMeasure` adds a finer check, reported beside BCS/BHS and
never instead of them: librosa's beat tracker on the generated audio against the video's visual beat
times, scored as ``mir_eval.beat.f_measure`` scores them (a beat matches within ±70 ms; :func:`beat_f_measure`).

librosa is imported on first use (the beat tracker); librosa compiles its numba kernels once per
environment (cached afterwards), so the very first call is slow.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from v2meow.errors import UserError
from v2meow.metrics.base import Metric, mean_std, mono_audio

BEAT_SAMPLE_RATE = 22050
HOP_LENGTH = 512
MODES: dict[str, int] = {"original": 1, "loris": 3}  # mode → pre/post averaging and max windows (frames)
ONSET_WAIT = 1
ONSET_DELTA = 0.2
TABLE2_SEGMENT_SECONDS = (2.0, 6.0, 10.0)
F_MEASURE_WINDOW = 0.07  # seconds either side; mir_eval.beat.f_measure's default

Mode = Literal["original", "loris"]


def _check_mode(mode: str) -> int:
    if mode not in MODES:
        raise UserError(f"Beat alignment mode must be one of {sorted(MODES)}, got {mode!r}.")
    return MODES[mode]


def to_beat_audio(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """``wav`` (``[N]`` or channels-first ``[C, N]``) as mono float32 ``[M]`` at 22050 Hz, as ``librosa.load``
    gives it (channel mean, soxr high-quality resampling)."""
    from v2meow.io.audio import resample

    wav = mono_audio(wav, np.float32)
    return resample(wav, sample_rate, BEAT_SAMPLE_RATE)


def detect_onsets(wav: np.ndarray, sample_rate: int = BEAT_SAMPLE_RATE, mode: Mode = "loris") -> np.ndarray:
    """Onset times in seconds ``[K]`` of ``wav``, detected at 22050 Hz with the ``mode``'s peak-picking windows:
    ``librosa.onset.onset_detect`` (hop 512, wait 1, delta 0.2), computed by :mod:`v2meow.metrics.onsets`."""
    from v2meow.metrics.onsets import onset_times

    w = _check_mode(mode)
    y = to_beat_audio(wav, sample_rate)
    if y.size == 0:
        return np.zeros((0,))
    return np.asarray(onset_times(y, BEAT_SAMPLE_RATE, HOP_LENGTH, w, ONSET_WAIT, ONSET_DELTA), dtype=np.float64)


def num_bins(duration: float) -> int:
    """⌈duration⌉: the number of one-second bins of a clip ``duration`` seconds long."""
    return int(math.ceil(duration))


def onset_bins(onset_times: np.ndarray, duration: float) -> np.ndarray:
    """One-second onset bins ``[⌈duration⌉]`` (int8): b[⌊t⌋] = 1 for each onset time t (seconds).

    Onsets at or past the last bin's end (possible only for t = duration exactly) have no bin and are
    ignored; negative times are an error.
    """
    times = np.asarray(onset_times, dtype=np.float64).reshape(-1)
    if (times < 0).any():
        raise UserError("Onset times must be non-negative seconds.")
    bins = np.zeros(num_bins(duration), dtype=np.int8)
    idx = np.floor(times).astype(np.int64)
    bins[idx[idx < bins.size]] = 1
    return bins


def beat_counts(generated_bins: np.ndarray, reference_bins: np.ndarray) -> tuple[int, int, int]:
    """``(B_s, B_t, B_a)`` of one clip from its onset bins; the reference is cut to the generated length.

    Raises:
        UserError: the reference is shorter than the generated clip (the reference evaluation asserts
            equal lengths after the cut).
    """
    g = np.asarray(generated_bins).astype(bool).reshape(-1)
    r = np.asarray(reference_bins).astype(bool).reshape(-1)
    if r.size < g.size:
        raise UserError(
            f"The reference has {r.size} one-second bins but the generated clip {g.size}; "
            "the reference must be at least as long."
        )
    r = r[: g.size]
    return int(g.sum()), int(r.sum()), int((g & r).sum())


def beat_scores(
    b_s: np.ndarray, b_t: np.ndarray, b_a: np.ndarray, mode: Mode = "loris"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-clip ``(BCS, BHS)`` ``[N]`` from the counts ``[N]`` (0 where a denominator is 0)."""
    _check_mode(mode)
    b_s, b_t, b_a = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (b_s, b_t, b_a))

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros_like(num), where=den != 0)

    bcs = ratio(b_s, b_t) if mode == "original" else ratio(b_a, b_s)
    return bcs, ratio(b_a, b_t)


def f1_from_means(bcs_mean: float, bhs_mean: float) -> float:
    """F1 = 2·BCS·BHS / (BCS + BHS) of the mean scores (0 when both are 0)."""
    total = bcs_mean + bhs_mean
    return 0.0 if total == 0 else 2.0 * bcs_mean * bhs_mean / total


def segment_clip(wav: np.ndarray, sample_rate: int, seconds: float) -> list[np.ndarray]:
    """Consecutive, non-overlapping segments of exactly ``seconds`` of ``wav`` (``[..., N]``); a shorter
    tail is dropped. Table 2 of the paper uses 2, 6 and 10 s (:data:`TABLE2_SEGMENT_SECONDS`)."""
    wav = np.asarray(wav)
    size = int(round(seconds * sample_rate))
    if size <= 0:
        raise UserError(f"Segment length must be positive, got {seconds} s.")
    return [wav[..., i : i + size] for i in range(0, wav.shape[-1] - size + 1, size)]


class BeatAlignment(Metric):
    """Beat coverage (BCS), beat hit (BHS) and their F1, per clip then averaged (module docstring).

    Args:
        mode: ``"loris"`` (the paper's, windows 3) or ``"original"`` (D2M-GAN/CDCD, windows 1).

    :meth:`compute` returns ``bcs``, ``bhs``, ``f1``, ``bcs_std``, ``bhs_std``, ``n`` and ``mode``.
    """

    def __init__(self, mode: Mode = "loris") -> None:
        super().__init__()
        _check_mode(mode)
        self.mode = mode
        for name in ("b_s", "b_t", "b_a"):
            self._add_state(name, "cat")  # per-clip counts

    def config(self) -> dict[str, Any]:
        return {"mode": self.mode}

    def update_bins(self, generated_bins: np.ndarray, reference_bins: np.ndarray) -> None:
        """Add one clip from its one-second onset bins (reference cut to the generated length)."""
        b_s, b_t, b_a = beat_counts(generated_bins, reference_bins)
        self._append("b_s", np.array([b_s]))
        self._append("b_t", np.array([b_t]))
        self._append("b_a", np.array([b_a]))

    def update_onsets(
        self,
        generated_onsets: np.ndarray,
        reference_onsets: np.ndarray,
        generated_duration: float,
        reference_duration: float,
    ) -> None:
        """Add one clip from onset times (seconds) and the two clips' durations (seconds)."""
        self.update_bins(
            onset_bins(generated_onsets, generated_duration), onset_bins(reference_onsets, reference_duration)
        )

    def update(self, generated: np.ndarray, reference: np.ndarray, sample_rate: int) -> None:
        """Add one clip pair: generated and ground-truth audio (``[N]`` or ``[C, N]`` at ``sample_rate``)."""
        g = to_beat_audio(generated, sample_rate)
        r = to_beat_audio(reference, sample_rate)
        self.update_onsets(
            detect_onsets(g, BEAT_SAMPLE_RATE, self.mode),
            detect_onsets(r, BEAT_SAMPLE_RATE, self.mode),
            g.size / BEAT_SAMPLE_RATE,
            r.size / BEAT_SAMPLE_RATE,
        )

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-clip ``(B_s, B_t, B_a)``, each ``[N]``."""
        return self._concat("b_s"), self._concat("b_t"), self._concat("b_a")

    def compute(self) -> dict[str, Any]:
        b_s, b_t, b_a = self.counts()
        if b_s.size == 0:
            raise UserError("Beat alignment has no clips yet.")
        bcs, bhs = beat_scores(b_s, b_t, b_a, self.mode)
        bcs_mean, bcs_std = mean_std(bcs)
        bhs_mean, bhs_std = mean_std(bhs)
        return {
            "bcs": bcs_mean,
            "bhs": bhs_mean,
            "f1": f1_from_means(bcs_mean, bhs_mean),
            "bcs_std": bcs_std,
            "bhs_std": bhs_std,
            "n": int(b_s.size),
            "mode": self.mode,
        }


def track_beats(wav: np.ndarray, sample_rate: int = BEAT_SAMPLE_RATE) -> np.ndarray:
    """Beat times in seconds ``[K]`` from ``librosa.beat.beat_track`` (22050 Hz mono, hop 512, defaults)."""
    import librosa

    y = to_beat_audio(wav, sample_rate)
    if y.size == 0:
        return np.zeros((0,))
    _, beats = librosa.beat.beat_track(y=y, sr=BEAT_SAMPLE_RATE, hop_length=HOP_LENGTH, units="time")
    return np.asarray(beats, dtype=np.float64)


def beats_tempo(beats: np.ndarray) -> float | None:
    """The tempo (BPM) of sorted beat times: 60 / their median interval; None with fewer than three beats."""
    if len(beats) < 3:
        return None
    return float(60.0 / np.median(np.diff(beats)))


def _beat_times(times: Any, what: str) -> np.ndarray:
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if not np.isfinite(t).all() or (t < 0).any():
        raise UserError(f"{what} must be finite, non-negative times in seconds.")
    return np.sort(t)  # mir_eval requires increasing times


def beat_f_measure(reference: np.ndarray, estimated: np.ndarray, window: float = F_MEASURE_WINDOW) -> float:
    """``mir_eval.beat.f_measure(reference, estimated, window)`` for sorted beat times: the F-measure of the
    largest one-to-one matching in which a pair lies within ``window`` s (``est - window <= ref <= est + window``,
    as mir_eval tests it). Each estimated beat, in time order, takes the earliest reference beat still free in its
    window: for windows of one width that greedy matching is a largest one (tests compare it with mir_eval's).
    Without mir_eval's import of scipy (1.2 s of every best-of-N generation)."""
    if reference.size == 0 or estimated.size == 0:
        return 0.0
    lo = np.searchsorted(reference, estimated - window, side="left")
    hi = np.searchsorted(reference, estimated + window, side="right")
    matched, free = 0, 0  # reference beats before index `free` are taken or passed
    for a, b in zip(lo, hi):
        k = max(int(a), free)
        if k < b:
            matched += 1
            free = k + 1
    if matched == 0:
        return 0.0
    precision, recall = matched / estimated.size, matched / reference.size
    return 2 * precision * recall / (precision + recall)


def beat_f_own_and_others(tracked: Any, own: Any, others: list[Any],
                          window: float = F_MEASURE_WINDOW) -> tuple[float, float]:
    """The beat F-measure of one clip's tracked beats against its own video's beats, and the mean against each of
    ``others`` (other videos' beats: the mismatched control; NaN without any)."""
    est = _beat_times(tracked, "Audio beats")

    def f(ref: Any) -> float:
        return beat_f_measure(_beat_times(ref, "Visual beats"), est, window)

    return f(own), (float(np.mean([f(r) for r in others])) if others else float("nan"))


class BeatFMeasure(Metric):
    """F-measure of the generated audio's tracked beats against visual beat times (±``window`` s), per clip,
    averaged. Reported beside BCS/BHS, never instead of them.

    No trimming of the first 5 s (``mir_eval.beat.evaluate`` trims; clips here are often shorter).
    A clip where either side has no beats scores 0, as in mir_eval.
    """

    def __init__(self, window: float = F_MEASURE_WINDOW) -> None:
        super().__init__()
        self.window = float(window)
        self._add_state("f", "cat")  # per-clip F-measure

    def config(self) -> dict[str, Any]:
        return {"window": self.window, "tracker": "librosa.beat.beat_track", "sample_rate": BEAT_SAMPLE_RATE}

    def update_beats(self, audio_beats: Any, visual_beats: Any) -> None:
        """Add one clip from beat times already found in the generated audio and the video's beat times."""
        est = _beat_times(audio_beats, "Audio beats")
        ref = _beat_times(visual_beats, "Visual beats")
        self._append("f", np.array([beat_f_measure(ref, est, self.window)], dtype=np.float64))

    def update(self, generated: np.ndarray, visual_beats: Any, sample_rate: int) -> None:
        """Track the beats of one generated clip (``[N]`` or ``[C, N]`` at ``sample_rate``) and add it."""
        self.update_beats(track_beats(generated, sample_rate), visual_beats)

    def compute(self) -> dict[str, Any]:
        f = self._concat("f")
        if f.size == 0:
            raise UserError("Beat F-measure has no clips yet.")
        mean, std = mean_std(f)
        return {"beat_f": mean, "beat_f_std": std, "n": int(f.size), "window": self.window}
