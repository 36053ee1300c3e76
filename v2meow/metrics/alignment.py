"""How well a soundtrack fits its video: the score ``v2meow generate --candidates N`` picks by, and its picture.

- The video's beats (:func:`video_beats`): a synth-data sidecar's beat times when the video has one; else, where
  the picture moves periodically, the turns of the ``beat`` encoder's clock (:func:`v2meow.features.beat.clock_beats`);
  else the peaks of the ``motion`` encoder's novelty at 10 Hz (the rise of frame-difference energy plus flash
  strength, a brightening weighted over a fade). These are the visual beats ``v2meow evaluate`` scores against.
- The music's onsets (:func:`v2meow.metrics.beats.detect_onsets`, LORIS windows) and tracked beats
  (:func:`v2meow.metrics.beats.track_beats`, only for the plot: tracking costs seconds the pick does not need).
- The beat score: the F-measure of the music's onsets against the visual beats, ±70 ms
  (:class:`v2meow.metrics.beats.BeatFMeasure`, as ``mir_eval.beat.f_measure`` scores it), in [0, 1].
- With a prompt and a model whose joint music-text model has an audio side, the text score: the cosine
  (:func:`v2meow.metrics.mcc.cosine_similarity`) of the music's joint embedding (mean over 10 s segments) and
  the prompt's, in [-1, 1]. The total is the beat score plus the text score when there is one.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from v2meow.errors import UserError
from v2meow.metrics.beats import BeatFMeasure, beats_tempo, detect_onsets, track_beats
from v2meow.metrics.mcc import cosine_similarity

MOTION_RATE = 10.0  # Hz: the motion curve's rate
# Fewer clock beats than this (under ~2 s of periodic motion) and the motion's own peaks are the beats. On the
# periodic-motion videos of bench.rhythm the clock's beats score F 1.00 against the true ones (all 12), the
# motion peaks 0.58 on average (0.00 on a bouncing ball, whose beat is its landing, not its speed's rise).
MIN_CLOCK_BEATS = 4


@dataclass
class VideoBeats:
    """A stretch of video's visual beats (seconds from the stretch's start) and its motion curve."""

    times: np.ndarray  # [K]
    energy: np.ndarray  # [T] motion energy (frame difference + flash strength), at ``rate``
    novelty: np.ndarray  # [T] its weighted rise, whose peaks are the beats when there is no sidecar
    rate: float
    source: str  # "sidecar", "beat clock", "motion", "tempo" (a named tempo's pulse) or "steady pulse" (a locked one)


@dataclass
class CandidateScore:
    """One candidate soundtrack's fit: ``total = beat + (text or 0) - noise_penalty * (noise or 0)``."""

    index: int
    seed: int
    beat: float  # F-measure of its onsets against the visual beats (±70 ms)
    text: float | None  # cosine with the prompt in the joint space; None without a prompt or an audio tower
    total: float
    onsets: np.ndarray  # [K] seconds
    beats: np.ndarray | None = None  # [K] seconds (librosa's beat tracker), tracked when a plot needs them
    noise: float | None = None  # noise_score, where the pick weighs it (generation.noise_penalty)
    tempo: float | None = None  # BPM (music_tempo), where the pick prefers the picture's pulse (generation.tempo_pick)


def video_beats(video: str, duration: float, start: float = 0.0, curve: bool = True) -> VideoBeats:
    """The visual beats and motion curve of ``[start, start + duration)`` of ``video`` (times from ``start``).
    With ``curve`` False and a sidecar, the video is not decoded and the curve is empty."""
    from v2meow.features.filters import find_peaks
    from v2meow.features.registry import EncoderConfig, build_encoder, extract_features

    side = _sidecar_beats(video)
    if side is not None and not curve:
        times = side[(side >= start) & (side < start + duration)] - start
        return VideoBeats(times, np.zeros(0), np.zeros(0), MOTION_RATE, "sidecar")
    from v2meow.features.beat import clock_beats

    encs = [build_encoder(EncoderConfig(name=n, rate=MOTION_RATE)) for n in ("motion", "beat")]
    feats = extract_features(video, encs, start, duration)  # one decode for both
    f = feats["motion"]
    energy = f[:, 0] + f[:, 5]  # frame-difference energy + flash strength
    # a flash changes the picture twice per cycle; count the brightening, not the fade back
    weight = 1.0 + np.tanh(f[:, 4])
    novelty = np.maximum(np.diff(energy, prepend=energy[:1]), 0.0) * weight
    if side is not None:
        times = side[(side >= start) & (side < start + duration)] - start
        return VideoBeats(times, energy, novelty, MOTION_RATE, "sidecar")
    clock = clock_beats(feats["beat"], MOTION_RATE)
    if len(clock) >= MIN_CLOCK_BEATS:  # the picture moves periodically: its clock places the beats best
        return VideoBeats(clock, energy, novelty, MOTION_RATE, "beat clock")
    if novelty.size == 0 or novelty.max() <= 0:
        return VideoBeats(np.zeros(0), energy, novelty, MOTION_RATE, "motion")
    peaks = find_peaks(novelty, height=0.3 * novelty.max(), distance=2)
    return VideoBeats(peaks / MOTION_RATE, energy, novelty, MOTION_RATE, "motion")


def _sidecar_beats(video: str) -> np.ndarray | None:
    side = Path(video).with_suffix(".json")
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    beats = data.get("beats", data.get("analysis", {}).get("beats")) if isinstance(data, dict) else None
    if not isinstance(beats, list):
        return None
    return np.asarray([t for t in beats if isinstance(t, (int, float)) and t >= 0], dtype=float)


def beat_score(onsets: np.ndarray, visual: np.ndarray) -> float:
    """F-measure of ``onsets`` against the ``visual`` beat times (±70 ms); 0 when either is empty."""
    m = BeatFMeasure()
    m.update_beats(onsets, visual)
    return float(m.compute()["beat_f"])


def text_score(tower, wav: np.ndarray, sample_rate: int, prompt_embedding: torch.Tensor) -> float:
    """Cosine of ``wav``'s joint embedding (``tower.embed_audio_segments``) and the prompt's ``[1, D]``."""
    with torch.no_grad():
        a = tower.embed_audio_segments(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), sample_rate)
    a = a.reshape(1, -1).double().numpy()
    return float(cosine_similarity(a, prompt_embedding.reshape(1, -1).double().numpy())[0])


def noise_score(wav: np.ndarray, sample_rate: int, n_fft: int = 2048, hop: int = 512) -> float:
    """How much of ``wav [N]``'s sound is broadband noise: the spectral flatness of each frame (the geometric over
    the arithmetic mean of its power spectrum, in [0, 1]) averaged with the frames' energies as weights, so that
    silence (flat at the floor) does not count. Tonal music scores under 0.02, noise bursts 0.1 and more."""
    y = np.asarray(wav, dtype=np.float64).reshape(-1)
    if y.size < n_fft:
        y = np.pad(y, (0, n_fft - y.size))
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2 + 1e-12
    flat = np.exp(np.log(power).mean(-1)) / power.mean(-1)
    energy = power.sum(-1)
    return float((flat * energy).sum() / energy.sum())


def score_candidates(wavs: list[np.ndarray], sample_rate: int, seeds: list[int], visual: VideoBeats,
                     tower=None, prompt_embedding: torch.Tensor | None = None,
                     noise_penalty: float = 0.0) -> list[CandidateScore]:
    """Score each candidate soundtrack ``[N]`` against the video's beats (and the prompt, given a tower); with
    ``noise_penalty`` the total loses that many times the candidate's :func:`noise_score`."""
    out = []
    for i, (wav, seed) in enumerate(zip(wavs, seeds)):
        onsets = detect_onsets(wav, sample_rate)
        beat = beat_score(onsets, visual.times)
        text = None
        if tower is not None and prompt_embedding is not None:
            text = text_score(tower, wav, sample_rate, prompt_embedding)
        noise = noise_score(wav, sample_rate) if noise_penalty else None
        total = beat + (text or 0.0) - noise_penalty * (noise or 0.0)
        out.append(CandidateScore(i, int(seed), beat, text, total, onsets, noise=noise))
    return out


def best_candidate(scores: list[CandidateScore]) -> int:
    """The index of the highest total; the lowest index wins a tie."""
    return max(range(len(scores)), key=lambda i: (scores[i].total, -i))


PULSE_SOURCES = ("beat clock", "tempo", "steady pulse")  # visual beats that tick on one pulse


def _tracker_envelope(wav: np.ndarray, sample_rate: int) -> np.ndarray | None:
    """The onset envelope ``librosa.beat.beat_track`` reads (median over mel bands, at the beat tracker's rate and
    hop); None for silence."""
    from v2meow.metrics.beats import BEAT_SAMPLE_RATE, HOP_LENGTH, to_beat_audio
    from v2meow.metrics.onsets import onset_envelope

    y = to_beat_audio(wav, sample_rate)
    if y.size == 0 or not np.any(y):
        return None
    return onset_envelope(y, BEAT_SAMPLE_RATE, HOP_LENGTH, median=True)


TEMPO_TOLERANCE = 0.08  # a music is at a pulse's tempo within this fraction of it (the acc1 of tempo accuracy)


def music_tempo(wav: np.ndarray, sample_rate: int) -> float | None:
    """The tempo (BPM) ``librosa.beat.beat_track`` would start from, in numpy: the global tempo of the median-over-bands
    onset envelope (:func:`v2meow.metrics.onsets.envelope_tempo`); None for silence."""
    from v2meow.metrics.beats import BEAT_SAMPLE_RATE, HOP_LENGTH
    from v2meow.metrics.onsets import envelope_tempo

    env = _tracker_envelope(wav, sample_rate)
    return None if env is None else envelope_tempo(env, BEAT_SAMPLE_RATE, HOP_LENGTH)


def at_tempo(tempo: float | None, bpm: float, tolerance: float = TEMPO_TOLERANCE) -> bool:
    """Whether a music's ``tempo`` (BPM, None for none found) is ``bpm``'s, within ``tolerance`` of it."""
    return tempo is not None and abs(tempo - bpm) <= tolerance * bpm


def pick_at_tempo(scores: list[CandidateScore], visual: VideoBeats, tolerance: float = TEMPO_TOLERANCE) -> int:
    """Best of N that prefers the picture's tempo: where the visual beats tick on one pulse (the beat clock, a named
    tempo or a locked pulse), the best total among the candidates whose ``tempo`` lies within ``tolerance`` of the
    pulse's (60 / the median interval of the visual beats); :func:`best_candidate` when none does or there is no
    pulse."""
    default = best_candidate(scores)
    pulse = beats_tempo(np.sort(visual.times)) if visual.source in PULSE_SOURCES else None
    if pulse is None:
        return default
    near = [i for i, c in enumerate(scores) if at_tempo(c.tempo, pulse, tolerance)]
    if not near:
        return default
    return max(near, key=lambda i: (scores[i].total, -i))


@dataclass
class PulseFit:
    """How :func:`fit_to_pulses` put a stretch of a soundtrack on the picture's pulse."""

    tempo: float  # BPM the music was made at there (the global tempo of its onset envelope)
    rate: float  # it plays this many times as fast now, on the whole (the pulse's tempo over its own)
    shift: float  # seconds of the music as made that come before the output's start (a stretch from 0 only)
    beats: int  # how many of its beats were moved onto the pulse's
    start: float = 0.0  # the stretch of the output (s) it covers
    end: float = 0.0


def fit_to_pulse(wav: np.ndarray, sample_rate: int, beats: np.ndarray, samples: int,
                 max_stretch: float) -> tuple[np.ndarray, PulseFit | None]:
    """:func:`fit_to_pulses` with one steady pulse over the whole output, given by its ``beats`` (s); its fit or
    None."""
    pulse = beats_pulse(beats, samples / sample_rate)
    if pulse is None:
        return wav[:samples].astype(np.float32, copy=True), None
    out, fits = fit_to_pulses(wav, sample_rate, [pulse], samples, max_stretch)
    return out, fits[0] if fits else None


def beats_pulse(beats: np.ndarray, seconds: float):
    """The steady pulse over ``[0, seconds)`` whose beats are ``beats`` (s): its tempo their median interval's, its
    phase their first at or after 0 (:class:`v2meow.features.tempo.Pulse`); None with fewer than three beats."""
    from v2meow.features.tempo import Pulse

    grid = np.sort(np.asarray(beats, dtype=float))
    bpm, ahead = beats_tempo(grid), grid[grid >= 0]
    return None if bpm is None or ahead.size == 0 else Pulse(0.0, float(seconds), bpm, float(ahead[0]))


def fit_to_pulses(wav: np.ndarray, sample_rate: int, pulses: list, samples: int,
                  max_stretch: float) -> tuple[np.ndarray, list[PulseFit]]:
    """``samples`` of ``wav [N]`` with its beats moved, over each stretch of ``pulses``
    (:class:`v2meow.features.tempo.Pulse`, in order, not overlapping), onto that steady pulse's beats; and how
    (one :class:`PulseFit` per stretch fitted). A stretch is left as made where the music's tempo there (its onset
    envelope's, :func:`v2meow.metrics.onsets.envelope_tempo`) lies more than ``max_stretch`` off the pulse's, or where
    too few of its beats are found; with none fitted, ``wav``'s first ``samples`` as they are.

    Over a stretch the music's beats are tracked at its own tempo (:func:`v2meow.metrics.onsets.track_pulse` on
    the envelope a beat tracker reads), one is paired with the pulse's first beat and each next beat with the
    next, and the music is time-warped through those pairs (:func:`v2meow.io.stretch.time_warp`, the pitch kept),
    no stretch between two beats more than ``max_stretch`` off 1 (a beat the music hurries or drags beyond that
    lands off the pulse by the rest, which later beats take up). A stretch from the output's start pairs the
    first beat with enough music before it to fill the start (the music before that is left out); a later one the
    beat whose distance from where the music's own pace would put it the bound takes up in the fewest beats. Between
    stretches the music plays as made. ``N`` should
    reach ``(samples + one period) * (1 + max_stretch)``: the warp holds the last frame where the music runs out."""
    from v2meow.io.stretch import time_warp

    as_made = wav[:samples].astype(np.float32, copy=True), []
    env = _tracker_envelope(wav, sample_rate) if pulses else None
    if env is None:
        return as_made
    seconds = samples / sample_rate
    t_out, t_in, fits = [0.0], [0.0], []  # the warp's anchors: output time -> time of the music as made
    for p in pulses:
        if p.start >= seconds:
            break
        at = t_in[-1] + (p.start - t_out[-1])  # as made, the music plays on at its own pace up to the stretch
        found = _stretch_pairs(env, p, at, seconds, max_stretch)
        if found is None:
            continue
        targets, src, fit = found
        if p.start == 0.0:
            t_out, t_in = [], []
        elif p.start > t_out[-1]:
            t_out.append(p.start)
            t_in.append(at)
        t_out.extend(targets)
        t_in.extend(src)
        fits.append(fit)
    if not fits:
        return as_made
    if fits[-1].end < seconds:  # after the last stretch the music plays on as made
        t_out.append(t_out[-1] + 1.0)
        t_in.append(t_in[-1] + 1.0)
    out = time_warp(wav, np.asarray(t_out), np.asarray(t_in), samples, sample_rate)
    if fits[0].shift > 0:  # only a stretch from the output's start leaves music out before it
        fade = min(out.size, int(0.01 * sample_rate))
        out[:fade] *= np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
    return out, fits


def _stretch_pairs(env: np.ndarray, p, at: float, seconds: float,
                   max_stretch: float) -> tuple[list[float], list[float], PulseFit] | None:
    """The warp's anchors over stretch ``p`` of the output (output times, times of the music as made) and its
    :class:`PulseFit`, the music reaching the stretch's start at ``at`` s of ``env`` (the tracker envelope of the
    whole music as made); None where the stretch is left as made (:func:`fit_to_pulses`)."""
    from v2meow.metrics.beats import BEAT_SAMPLE_RATE, HOP_LENGTH
    from v2meow.metrics.onsets import envelope_tempo, track_pulse

    frame_rate = BEAT_SAMPLE_RATE / HOP_LENGTH
    pulse, period = p.bpm, p.period
    lead = p.start == 0.0  # the stretch starts the output: the music may start later than it was made to
    tail = p.end >= seconds  # the stretch runs to the output's end: its beats go one period past it
    span = min(p.end, seconds) - p.start
    first = int(round(at * frame_rate))
    region = env[first : first + int(np.ceil((span + period) * (1.0 + max_stretch) * frame_rate)) + 1]
    if region.size < 2 or not np.any(region > 0):
        return None
    tempo = envelope_tempo(region[: int(np.ceil(span * frame_rate)) + 1], BEAT_SAMPLE_RATE, HOP_LENGTH)
    if tempo is None or abs(pulse / tempo - 1.0) > max_stretch:
        return None
    own = (track_pulse(region, 60.0 / tempo * frame_rate) + first) / frame_rate  # its beats, s of the music as made
    rate = pulse / tempo
    targets = p.beats()
    if targets.size == 0:
        return None
    if tail:
        targets = np.arange(targets[0], seconds + period, period)
    if not lead:  # a beat right at the stretch's start leaves no time to reach it
        targets = targets[targets - p.start >= period / 4]
    if targets.size == 0:
        return None
    lo, hi = 1.0 - max_stretch, 1.0 + max_stretch
    if lead:  # music enough before a beat to fill the output's start
        start = np.flatnonzero(own - targets[0] * rate >= 0)
    else:  # the beat whose distance from where the music's own pace puts the pulse's first the bound takes up soonest
        after = np.flatnonzero(own > at)
        late = own[after] - at - (targets[0] - p.start) * rate
        beats_to_go = np.where(late >= 0, late / max(hi - rate, 1e-3), -late / max(rate - lo, 1e-3))
        start = after[np.argmin(beats_to_go)][None] if after.size else after
    if start.size == 0:
        return None
    own = own[start[0] :][: targets.size]
    if own.size < 2:
        return None
    targets = targets[: own.size]
    if lead:
        src, shift = [float(own[0])], float(own[0] - targets[0] * rate)
    else:
        gap = targets[0] - p.start
        src, shift = [at + float(np.clip((own[0] - at) / gap, lo, hi)) * gap], 0.0
    for k in range(1, own.size):  # each interval's rate held within the bound; what it cannot take carries on
        src.append(src[-1] + np.clip((own[k] - src[-1]) / period, lo, hi) * period)
    out = [float(t) for t in targets]
    if lead and targets[0] > 0:  # the output's start, read at the overall rate before the first beat
        out, src = [0.0, *out], [shift, *src]
    return out, [float(s) for s in src], PulseFit(float(tempo), float(rate), shift, int(own.size), float(p.start),
                                                 float(min(p.end, seconds)))


def render_plot(wav: np.ndarray, sample_rate: int, score: CandidateScore, visual: VideoBeats, start: float = 0.0,
                title: str = "") -> bytes:
    """A PNG: the music's spectrogram with its onsets and beats, above the video's motion curve and visual
    beats; the alignment score in the title. Times on both axes are seconds of the video."""
    try:
        import matplotlib
    except ImportError:
        raise UserError("--plot needs matplotlib; install it with `pip install matplotlib`.") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from v2meow.metrics.beats import BEAT_SAMPLE_RATE, to_beat_audio

    y = to_beat_audio(wav, sample_rate)
    beats = track_beats(wav, sample_rate) if score.beats is None else score.beats
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, height_ratios=(3, 2))
    nfft = min(1024, max(16, 1 << int(np.log2(max(16, y.size)))))
    top.specgram(y + 1e-9, NFFT=nfft, Fs=BEAT_SAMPLE_RATE, noverlap=nfft // 2, cmap="magma", xextent=(
        start, start + y.size / BEAT_SAMPLE_RATE))
    for k, t in enumerate(score.onsets):
        top.axvline(start + t, color="cyan", lw=0.8, alpha=0.8, label="onsets" if k == 0 else None)
    for k, t in enumerate(beats):
        top.axvline(start + t, color="lime", lw=1.4, ls=":", alpha=0.9, label="beats" if k == 0 else None)
    top.set_ylim(0, min(sample_rate, BEAT_SAMPLE_RATE) / 2)  # nothing above the music's own Nyquist
    top.set_ylabel("Hz")
    if len(score.onsets) or len(beats):
        top.legend(loc="upper right", fontsize=7)
    t = start + np.arange(visual.energy.size) / visual.rate
    bottom.plot(t, visual.energy, color="tab:blue", lw=1.0, label="motion energy")
    bottom.plot(t, visual.novelty, color="tab:orange", lw=1.0, label="motion novelty")
    for k, b in enumerate(visual.times):
        bottom.axvline(start + b, color="black", lw=1.0, ls="--", label=f"visual beats ({visual.source})"
                       if k == 0 else None)
    bottom.set_xlabel("seconds of the video")
    bottom.legend(loc="upper right", fontsize=7)
    text = f", text {score.text:.3f}" if score.text is not None else ""
    fig.suptitle(f"{title}alignment {score.beat:.3f} (onset F-measure ±70 ms vs visual beats){text}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in its folder (never half a file)."""
    from v2meow.io.atomic import staged_file

    with staged_file(path, Path(path).suffix) as tmp:
        Path(tmp).write_bytes(data)
