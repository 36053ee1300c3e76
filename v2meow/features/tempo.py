"""A tempo the user names: the stages' rhythm streams set to those of a picture pulsing at that tempo.

The stages learnt tempo from the picture: the ``motion`` encoder (how much and how periodically it moves) and
the ``beat`` encoder's clock. A text prompt does not reach them (the joint music-text space barely reads tempo,
docs/embedded-model.md), so a tempo in BPM, given as ``tempo=`` or named in the prompt ("... at 120 BPM"),
replaces both streams with what they read from a picture that flashes on every beat of a steady pulse at that
tempo: the kind of picture the stages follow best (bench.rhythm). What the picture looks like (``appearance``)
is kept, and so is the phase of its own strongest moments: the pulse's beats land where the picture's motion
peaks best fit the named tempo. Replacing only the periodicity and the clock, and keeping the picture's own
motion energy, moved the music's tempo far less (docs/embedded-model.md, "A tempo you name").

The same pulse serves a picture that already moves on one: where the ``beat`` encoder's clock ticks on a steady
tempo from the start of the clip to its end (a bouncing ball, a dancer's steps, a metronome), :func:`steady_pulse`
reads that tempo and phase, and generation can lock the music onto it (``generation.lock_tempo``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from v2meow.errors import UserError
from v2meow.features.beat import clock_beats
from v2meow.features.motion import _LAG_MAX, _LAG_MIN, _MAX_FPS

MIN_BPM = 60.0 / _LAG_MAX  # 30: the motion encoder's longest period
MAX_BPM = 60.0 / _LAG_MIN  # 300: its shortest
RHYTHM_ENCODERS = ("motion", "beat")
CLOCK_COLUMNS = 3  # the beat stream's cos, sin (the clock) and strength; its fourth column is the picture's novelty
# A clip "moves on a steady pulse" when its clock's beats span this share of it, at least this share of their
# intervals lie within STEADY_TOLERANCE of their median, and there are at least STEADY_MIN_BEATS of them.
STEADY_COVER = 0.85
STEADY_AGREEMENT = 0.9
STEADY_TOLERANCE = 0.08  # the tempo accuracy window (acc1) of bench.rhythm
STEADY_MIN_BEATS = 4
# Where the whole clip does not pass, a stretch of it this long whose clock ticks steadily can be locked on its own
STEADY_MIN_SECONDS = 6.0
_BPM = re.compile(r"(\d+(?:\.\d+)?)\s*(?:bpm|beats per minute)\b", re.IGNORECASE)


def check_tempo(bpm: float | None) -> float | None:
    if bpm is None:
        return None
    if not (math.isfinite(bpm) and MIN_BPM <= bpm <= MAX_BPM):
        raise UserError(f"--tempo must be between {MIN_BPM:g} and {MAX_BPM:g} BPM, got {bpm:g}.")
    return float(bpm)


def prompt_tempo(prompt: str | None) -> float | None:
    """The tempo a prompt names in BPM ("upbeat pop at 128 BPM" -> 128.0), else None. A number outside
    [:data:`MIN_BPM`, :data:`MAX_BPM`] is refused with one sentence rather than silently ignored."""
    if not prompt:
        return None
    found = _BPM.findall(prompt)
    if not found:
        return None
    if len(set(found)) > 1:
        raise UserError(f"the prompt names more than one tempo ({', '.join(f + ' BPM' for f in found)}); name one.")
    bpm = float(found[0])
    if not MIN_BPM <= bpm <= MAX_BPM:
        raise UserError(f"the prompt names {bpm:g} BPM, but a tempo must be between {MIN_BPM:g} and {MAX_BPM:g} BPM.")
    return bpm


def steady_pulse(beat: np.ndarray, rate: float, duration: float) -> tuple[float, float] | None:
    """``(bpm, phase)`` of a picture that moves on one steady pulse over all of its ``duration`` seconds, read off
    its ``beat`` features (``[T, 4]`` at ``rate``; :func:`v2meow.features.beat.clock_beats`), else None: the clock
    must tick through most of the clip (:data:`STEADY_COVER`), nearly always at the same interval
    (:data:`STEADY_AGREEMENT` of them within :data:`STEADY_TOLERANCE` of the median), inside the range a tempo may
    take. ``phase`` (s, in ``[0, 60 / bpm)``) places the pulse's first beat: the circular mean of the clock's
    beats. A still picture, one that moves without a pulse, or one whose pulse changes gives None."""
    return _whole_pulse(clock_beats(np.asarray(beat), rate), duration)


def _beats_phase(beats: np.ndarray, period: float) -> float:
    """The circular mean of ``beats`` (s) on a grid of ``period``: where in ``[0, period)`` they fall."""
    angle = np.angle(np.mean(np.exp(2j * np.pi * beats / period)))
    return float((angle / (2 * np.pi) * period) % period)


def _whole_pulse(clock: np.ndarray, duration: float) -> tuple[float, float] | None:
    """:func:`steady_pulse` on the clock's beat times."""
    if len(clock) < STEADY_MIN_BEATS or duration <= 0:
        return None
    gaps = np.diff(clock)
    period = float(np.median(gaps))
    if period <= 0 or not MIN_BPM <= 60.0 / period <= MAX_BPM:
        return None
    if np.mean(np.abs(gaps / period - 1.0) <= STEADY_TOLERANCE) < STEADY_AGREEMENT:
        return None
    if (clock[-1] - clock[0] + period) < STEADY_COVER * duration:
        return None
    return 60.0 / period, _beats_phase(clock, period)


@dataclass(frozen=True)
class Pulse:
    """A steady pulse over ``[start, end)`` (s from the clip's start) at ``bpm``, one of whose beats falls at
    ``phase`` (s from the clip's start, anywhere in the pulse's period grid)."""

    start: float
    end: float
    bpm: float
    phase: float

    @property
    def period(self) -> float:
        return 60.0 / self.bpm

    def beats(self) -> np.ndarray:
        first = self.start + (self.phase - self.start) % self.period
        return np.arange(first, self.end, self.period)


def steady_pulses(beat: np.ndarray, rate: float, duration: float,
                  min_seconds: float = STEADY_MIN_SECONDS) -> list[Pulse]:
    """The steady pulses of a picture's ``beat`` features (``[T, 4]`` at ``rate``) over ``duration`` seconds: the
    whole clip as one :class:`Pulse` where :func:`steady_pulse` finds one; else (with ``min_seconds`` > 0) each
    stretch of at least ``min_seconds`` (and :data:`STEADY_MIN_BEATS` beats) over which every interval of the clock
    lies within :data:`STEADY_TOLERANCE` of the stretch's median, each from half a period before its first beat to
    half a period after its last, phased on its own beats; else none."""
    clock = clock_beats(np.asarray(beat), rate)
    whole = _whole_pulse(clock, duration)
    if whole is not None:
        return [Pulse(0.0, float(duration), *whole)]
    if min_seconds <= 0:
        return []
    out: list[Pulse] = []
    i = 0
    while i + STEADY_MIN_BEATS <= len(clock):
        j = i + 1  # the run is clock[i..j]: grow it while every interval stays near the run's median
        while j + 1 < len(clock):
            gaps = np.diff(clock[i : j + 2])
            if np.any(np.abs(gaps / np.median(gaps) - 1.0) > STEADY_TOLERANCE):
                break
            j += 1
        run = clock[i : j + 1]
        period = float(np.median(np.diff(run)))
        start = max(0.0, run[0] - period / 2, out[-1].end if out else 0.0)
        end = min(float(duration), run[-1] + period / 2)
        if len(run) >= STEADY_MIN_BEATS and end - start >= min_seconds and MIN_BPM <= 60.0 / period <= MAX_BPM:
            out.append(Pulse(float(start), float(end), 60.0 / period, _beats_phase(run, period)))
        i = max(j, i + 1)
    return out


def clock_phase(novelty: np.ndarray, rate: float, bpm: float) -> float:
    """Seconds from the start to the first beat of a ``bpm`` pulse whose beats best meet the peaks of ``novelty``
    (``[T]`` at ``rate``): the angle of the novelty demodulated at the pulse's frequency. 0 for a still picture."""
    period = 60.0 / bpm
    n = np.asarray(novelty, dtype=np.float64)
    if n.size == 0 or not np.any(n > 0):
        return 0.0
    t = (np.arange(n.size) + 0.5) / rate
    z = np.sum((n - n.mean()) * np.exp(-2j * np.pi * t / period))
    if abs(z) < 1e-9:
        return 0.0
    return float((-np.angle(z) / (2 * np.pi) * period) % period)


def tempo_beats(bpm: float, duration: float, phase: float = 0.0) -> np.ndarray:
    """Beat times (s) of a steady ``bpm`` pulse over ``[0, duration)`` whose first beat is at ``phase``."""
    return Pulse(0.0, duration, bpm, phase).beats()


def _flash(t: float, beats_phase: float, period: float, size: tuple[int, int]) -> np.ndarray:
    """One RGB frame of a picture that flashes on each beat and fades in about a tenth of a second."""
    u = ((t - beats_phase) / period) % 1.0  # position in the beat: 0 on the beat
    level = int(24 + 220 * math.exp(-u * period / 0.12))
    w, h = size
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = (level, int(level * 0.8), int(level * 0.5))
    return frame


def pulse_features(encoders: list, bpm: float, duration: float, phase: float = 0.0) -> dict[str, np.ndarray]:
    """What the rhythm encoders among ``encoders`` (``motion``, ``beat``) read from a picture that flashes on
    every beat of a steady ``bpm`` pulse whose first beat is at ``phase``: ``{name: [T, D]}``."""
    rhythm = [e for e in encoders if e.name in RHYTHM_ENCODERS]
    if not rhythm:
        return {}
    states = {e.name: e.begin(duration) for e in rhythm}
    period = 60.0 / bpm
    size = (int(rhythm[0].frame_size[0]), int(rhythm[0].frame_size[1]))
    for i in range(max(2, int(math.ceil(duration * _MAX_FPS)))):
        t = i / _MAX_FPS
        frame = _flash(t, phase, period, size)
        for state in states.values():
            state.add(t, frame)
    return {name: state.finish() for name, state in states.items()}


def named_pulse(feats: dict[str, np.ndarray], encoders: list, bpm: float, duration: float,
                phase: float | None = None) -> Pulse:
    """A named ``bpm``'s pulse over the whole ``duration``, first beat at ``phase`` (default: where its beats best
    meet the picture's own motion peaks in ``feats``' ``beat`` stream, :func:`clock_phase`)."""
    bpm = check_tempo(bpm)
    if phase is None:
        phase = 0.0
        if "beat" in feats and len(feats["beat"]):
            rate = next(e.rate for e in encoders if e.name == "beat")
            phase = clock_phase(np.expm1(feats["beat"][:, 3]), rate, bpm)
    return Pulse(0.0, float(duration), bpm, phase)


def impose_pulses(feats: dict[str, np.ndarray], encoders: list, pulses: list[Pulse],
                  clock_only: bool = False, mix: float = 1.0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``feats`` (encoder name -> ``[T, D]``, as :func:`extract_features` gives them for ``encoders``) with the
    rhythm streams (``motion`` and ``beat``) replaced, over each of ``pulses``' stretches, by those of a picture
    flashing on that pulse (:func:`pulse_features`), and kept elsewhere; returns them (a new dict, the inputs
    untouched) and the pulses' beat times. Other streams (``appearance``) are kept. A named tempo imposes its
    :func:`named_pulse`.
    ``clock_only`` replaces only the ``beat`` stream's clock and strength (its first :data:`CLOCK_COLUMNS`
    columns): the picture's own motion and novelty stay. ``mix`` below 1 writes ``mix`` times the pulse's rows plus
    ``1 - mix`` times the picture's own instead of the pulse's alone."""
    if not 0.0 < mix <= 1.0:
        raise ValueError(f"mix must be in (0, 1], got {mix}")
    out = dict(feats)
    names = ("beat",) if clock_only else RHYTHM_ENCODERS
    cols = slice(0, CLOCK_COLUMNS) if clock_only else slice(None)
    for pulse in pulses:
        # each stream's pulse is rendered from the first of its windows that the stretch touches, so that its frames
        # fall on the stream's own window grid and the pulse's beats stay where they are in the clip; streams whose
        # grids meet there (all of them, for a stretch from the start) share one render
        by_origin: dict[Fraction, list] = {}
        for enc in encoders:
            if enc.name in feats and enc.name in names:
                first = int(math.floor(pulse.start * enc.rate + 1e-9))
                by_origin.setdefault(Fraction(first) / Fraction(enc.rate), []).append((enc, first))
        for group in by_origin.values():
            origin = group[0][1] / group[0][0].rate
            rendered = pulse_features([enc for enc, _ in group], pulse.bpm, pulse.end - origin,
                                      (pulse.phase - origin) % pulse.period)
            for enc, first in group:
                f = rendered[enc.name]
                n = max(0, min(len(f), len(feats[enc.name]) - first))
                if out[enc.name] is feats[enc.name]:
                    out[enc.name] = feats[enc.name].copy()
                rows = f[:n, cols]
                if mix != 1.0:
                    rows = mix * rows + (1.0 - mix) * feats[enc.name][first : first + n, cols]
                out[enc.name][first : first + n, cols] = rows
    beats = [p.beats() for p in pulses]
    return out, np.concatenate(beats) if beats else np.zeros(0)
