"""Synthetic paired data: music in, music videos out (``v2meow synth-data MUSIC_DIR -o VIDEO_DIR``).

No real music videos are available offline, so the embedded model, the tests and the demos learn and
check the video-music correspondence on videos RENDERED from music. Each track is analysed (beats and
tempo, onsets and onset strength, loudness, brightness, section boundaries, an overall character and each
section's energy and brightness), and a
small animated scene is rendered whose motion, flashes, cuts and colours follow the analysis:

- objects pulse, hop, bounce or speed up on beats, with an amplitude from the beat's onset strength;
- strong onsets flash the picture; loudness sets the exposure and the speed of motion (with the tempo);
- section boundaries cut to a new layout with the new section's palette (sometimes a new world); some phrase
  starts (every 8 or 16 beats) cut to a new layout too;
- the palette comes from the character of the section on screen (the track's mode and tempo, the section's
  energy and brightness): bright, fast, loud, major music gets warm saturated colours, dark, slow, quiet,
  minor music cool dim ones, so colours change when a section brings other instruments or playing.

Five visual worlds exist (:data:`WORLDS`): ``starfield`` (particles flying at the camera), ``shapes``
(pulsing, rotating, hopping geometric shapes), ``plasma`` (colour waves), ``bounce`` (balls that hit the
floor on the beats) and ``city`` (a parallax skyline with windows lit on onsets). The world is drawn at
random with probabilities that depend on the character, so a world's style is learnable but not
determined by the music; within a world, counts, shapes, positions, phases and colours are random.
Nothing draws the waveform or spectrum. Visual noise unrelated to the music (film grain, a slow camera
drift, a light blinking at its own rate, rare cuts at random times, random per-object motion) makes a
model learn the correspondence rather than copy a signal.

Every video (H.264 yuv420p with the track's audio as AAC, so one file gives both) gets a sidecar JSON
with the same stem: the analysis (tempo, beat times = the video's "visual beats", onsets, sections,
character), the chosen worlds and cuts, the seed, and the source file with its licence if known.
Outputs are written atomically (temporary name, then rename); existing outputs are skipped, so a run
can be resumed; ``workers > 1`` renders files in parallel processes.

Rendering is numpy-vectorised and streamed frame by frame into the encoder (a video is never held in
memory); at 256×144 and 24 fps it runs many times faster than real time on one core.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import logging
import math
import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from v2meow.errors import UserError
from v2meow.io.atomic import publish
from v2meow.io.video import encode_audio_packets, packet_time

logger = logging.getLogger(__name__)

SYNTH_VERSION = 1
FORMAT = "v2meow-synth-video"
AUDIO_EXTENSIONS = (".ogg", ".oga", ".opus", ".wav", ".flac", ".mp3", ".m4a", ".aac", ".aiff", ".aif", ".wma")
WORLDS = ("starfield", "shapes", "plasma", "bounce", "city")

# Analysis settings. The onset envelope uses a short window (1024 samples at 22.05 kHz, 86 frames/s)
# so that beats and onsets are placed within ~10 ms; timbre, harmony and loudness use 2048/512.
ANALYSIS_SR = 22050
_ONSET_NFFT, _ONSET_HOP = 1024, 256
_FEAT_NFFT, _FEAT_HOP = 2048, 512
_FINE_NFFT, _FINE_HOP = 512, 128
_CHUNK_SECONDS = 30.0  # analysis works on chunks of this length (memory), with margins of:
_MARGIN = 5 * _FEAT_HOP  # samples, at least n_fft / 2 + hop of every STFT here (a multiple of every hop)
_SECTION_BLOCK = 0.5  # seconds per block of the self-similarity matrix
_SECTION_KERNEL = 8.0  # seconds: half-width of the checkerboard kernel (shorter for short tracks)
_MIN_SECTION = 4.0  # seconds between section boundaries (at least)
_ENV_FLOOR = 1.0  # onset-envelope value (mean positive dB change per mel band) that counts as loud

# Krumhansl-Kessler key profiles (C major / C minor), for the major/minor guess.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_KEYS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


# ---------------------------------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------------------------------


@dataclass
class TrackAnalysis:
    """What the renderer knows about a track. Envelopes are sampled at ``env_rate`` frames per second,
    frame k at time ``k / env_rate``; all envelopes are in [0, 1]."""

    duration: float
    tempo: float  # beats per minute; 0 when no beat was found
    beats: np.ndarray  # seconds
    beat_strength: np.ndarray  # [0, 1] per beat (onset strength at the beat)
    onsets: np.ndarray  # seconds
    onset_strength: np.ndarray  # [0, 1] per onset
    sections: np.ndarray  # section boundaries in seconds (neither 0 nor the end)
    character: dict[str, Any]
    env_rate: float
    onset_env: np.ndarray
    loudness: np.ndarray
    brightness: np.ndarray
    # energy and brightness of each section (``len(sections) + 1`` of them, the first from 0): an arrangement
    # changes colour with the music when a section brings other instruments, louder playing or denser notes
    section_characters: list[dict[str, Any]] = field(default_factory=list)

    def character_at(self, t: float) -> dict[str, Any]:
        """The character of the section playing at ``t`` seconds (the whole track's when sections have none)."""
        if not self.section_characters:
            return self.character
        k = int(np.searchsorted(np.asarray(self.sections), t, side="right"))
        return {**self.character, **self.section_characters[min(k, len(self.section_characters) - 1)]}

    def to_json(self) -> dict[str, Any]:
        return {
            "sample_rate": ANALYSIS_SR,
            "tempo": round(float(self.tempo), 2),
            "beats": _rounded(self.beats),
            "beat_strength": _rounded(self.beat_strength),
            "onsets": _rounded(self.onsets),
            "onset_strength": _rounded(self.onset_strength),
            "sections": _rounded(self.sections),
            "character": self.character,
            "section_characters": self.section_characters,
        }


def _rounded(x: np.ndarray, digits: int = 3) -> list[float]:
    return [round(float(v), digits) for v in np.asarray(x).ravel()]


def _normalise(x: np.ndarray, floor: float, q: float = 99.0) -> np.ndarray:
    """``x / max(percentile(x, q), floor)`` clipped to [0, 1] (float32)."""
    if x.size == 0:
        return x.astype(np.float32)
    scale = max(float(np.percentile(x, q)), floor)
    return np.clip(x / scale, 0.0, 1.0).astype(np.float32)


def _resize_env(x: np.ndarray, n: int) -> np.ndarray:
    """Pad (with the last value) or cut an envelope to ``n`` frames."""
    if len(x) >= n:
        return x[:n]
    pad = x[-1] if len(x) else 0.0
    return np.concatenate([x, np.full(n - len(x), pad, dtype=x.dtype)])


def section_boundaries(features: np.ndarray, block_rate: float, duration: float) -> np.ndarray:
    """Section boundaries (seconds) from block features ``[B, D]`` by Foote's checkerboard novelty.

    Features are z-normalised per dimension; the cosine self-similarity matrix is correlated along its
    diagonal with a Gaussian-tapered checkerboard kernel (half-width 8 s, less for short tracks), and
    novelty peaks that stand out (above mean + 1 std, with prominence) and lie at least
    ``_MIN_SECTION`` seconds apart and from either end are boundaries.
    """
    from scipy.signal import find_peaks  # scipy.signal takes a second to import: only when needed

    n = features.shape[0]
    half = int(min(_SECTION_KERNEL * block_rate, n // 4))
    if half < 2:
        return np.zeros(0)
    x = features - features.mean(axis=0)
    x = x / (x.std(axis=0) + 1e-6)
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-6)
    ssm = x @ x.T
    idx = np.arange(-half, half) + 0.5
    sign = np.sign(idx)
    taper = np.exp(-0.5 * (idx / (0.5 * half)) ** 2)
    kernel = np.outer(sign * taper, sign * taper)
    padded = np.pad(ssm, half, mode="constant")
    novelty = np.zeros(n)
    for i in range(n):
        novelty[i] = float(np.sum(kernel * padded[i : i + 2 * half, i : i + 2 * half]))
    # Near the ends the kernel sees padding: damp there so the track's start is not a "boundary".
    edge = np.minimum(np.arange(n), np.arange(n)[::-1]) / max(half, 1)
    novelty *= np.clip(edge, 0.0, 1.0)
    if not np.any(novelty > 0):
        return np.zeros(0)
    height = novelty.mean() + novelty.std()
    min_gap = max(_MIN_SECTION, min(duration / 8.0, 12.0))
    peaks, _ = find_peaks(
        novelty, height=height, distance=max(1, int(min_gap * block_rate)), prominence=0.5 * novelty.std()
    )
    times = peaks / block_rate
    return times[(times >= min(_MIN_SECTION, duration / 4)) & (times <= duration - min(_MIN_SECTION, duration / 4))]


def _key_and_mode(chroma_mean: np.ndarray) -> tuple[str, str, float]:
    """Best key (Krumhansl-Kessler correlation), major/minor, and a confidence in [0, 1]."""
    if not np.any(chroma_mean > 0):
        return "C", "major", 0.0
    c = chroma_mean - chroma_mean.mean()
    scores = {}
    for mode, profile in (("major", _MAJOR), ("minor", _MINOR)):
        p = profile - profile.mean()
        for k in range(12):
            q = np.roll(p, k)
            scores[(k, mode)] = float(np.dot(c, q) / (np.linalg.norm(c) * np.linalg.norm(q) + 1e-9))
    (k, mode), best = max(scores.items(), key=lambda kv: kv[1])
    other = max(v for (kk, m), v in scores.items() if m != mode)
    return _KEYS[k], mode, float(np.clip((best - other) * 5.0, 0.0, 1.0))


def _log_mel(librosa: Any, s: np.ndarray, sr: int, n_mels: int, n_fft: int) -> np.ndarray:
    mel = librosa.feature.melspectrogram(S=s**2, sr=sr, n_mels=n_mels, n_fft=n_fft)
    return librosa.power_to_db(mel, ref=1.0)


def _frame_features(librosa: Any, y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """Frame-wise features of ``y``, computed in chunks of ``_CHUNK_SECONDS`` so that memory stays small
    for long tracks: ``env`` (onset flux, 1024/256), ``fine`` (onset flux, 512/128), and at 2048/512
    ``rms``, ``centroid``, ``mfcc`` [13, T] and ``chroma`` [12, T]. Frame k of a hop h is centred at k·h.

    Each chunk is analysed with margins of real signal on both sides, and only the frames centred inside
    the chunk are kept, so the result equals a whole-track analysis (up to the 80 dB floor of the log-mel
    spectra, which is relative to each chunk's loudest bin).
    """
    n = len(y)
    step = max(_FEAT_HOP, int(_CHUNK_SECONDS * sr) // _FEAT_HOP * _FEAT_HOP)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("env", "fine", "rms", "centroid", "mfcc", "chroma")}
    for a in range(0, n, step):
        b = min(a + step, n)
        s0, s1 = max(0, a - _MARGIN), min(n, b + _MARGIN)
        seg = y[s0:s1]

        def core(x: np.ndarray, hop: int) -> np.ndarray:
            j0 = (a - s0) // hop
            return x[..., j0 : j0 + -(-(b - a) // hop)]

        s_on = np.abs(librosa.stft(seg, n_fft=_ONSET_NFFT, hop_length=_ONSET_HOP))
        mel_on = _log_mel(librosa, s_on, sr, 64, _ONSET_NFFT)
        # center=False: no extra shift of the envelope; frame k stays centred at k * hop.
        env = librosa.onset.onset_strength(S=mel_on, sr=sr, hop_length=_ONSET_HOP, center=False)
        parts["env"].append(core(env, _ONSET_HOP))
        s_fine = np.abs(librosa.stft(seg, n_fft=_FINE_NFFT, hop_length=_FINE_HOP))
        mel_fine = _log_mel(librosa, s_fine, sr, 40, _FINE_NFFT)
        fine = librosa.onset.onset_strength(S=mel_fine, sr=sr, hop_length=_FINE_HOP, center=False)
        parts["fine"].append(core(fine, _FINE_HOP))
        s_feat = np.abs(librosa.stft(seg, n_fft=_FEAT_NFFT, hop_length=_FEAT_HOP))
        parts["rms"].append(core(librosa.feature.rms(S=s_feat, frame_length=_FEAT_NFFT)[0], _FEAT_HOP))
        parts["centroid"].append(core(librosa.feature.spectral_centroid(S=s_feat, sr=sr)[0], _FEAT_HOP))
        mel = _log_mel(librosa, s_feat, sr, 96, _FEAT_NFFT)
        parts["mfcc"].append(core(librosa.feature.mfcc(S=mel, n_mfcc=14)[1:], _FEAT_HOP))
        parts["chroma"].append(core(librosa.feature.chroma_stft(S=s_feat**2, sr=sr, tuning=0.0), _FEAT_HOP))
    out = {k: np.concatenate(v, axis=-1).astype(np.float32) for k, v in parts.items()}
    # The first and last frames see the STFT's zero padding: their flux is an artefact of the edges
    # (a spike there pulls the beat tracker off the last real beats).
    for key, nfft, hop in (("env", _ONSET_NFFT, _ONSET_HOP), ("fine", _FINE_NFFT, _FINE_HOP)):
        edge = nfft // (2 * hop) + 1
        out[key][:edge] = 0.0
        out[key][max(0, out[key].shape[-1] - edge) :] = 0.0
    return out


def _refine_times(times: np.ndarray, fine: np.ndarray, rate: float, radius: float = 0.035) -> np.ndarray:
    """Move each time to the maximum of ``fine`` (an envelope at ``rate``) within ``radius`` seconds,
    when that window has a clear peak; otherwise keep it."""
    out = np.asarray(times, dtype=np.float64).copy()
    r = int(round(radius * rate))
    for i, t in enumerate(out):
        c = int(round(t * rate))
        a, b = max(0, c - r), min(len(fine), c + r + 1)
        if b - a < 2:
            continue
        seg = fine[a:b]
        k = int(np.argmax(seg))
        if seg[k] > 0 and seg[k] > 2.0 * float(np.median(seg)):
            out[i] = (a + k) / rate
    return out


def estimate_tempo(librosa: Any, env: np.ndarray, sr: int, hop: int, stride: int = 4, batch: int = 2048) -> float:
    """librosa's global tempo estimate of an onset envelope: the mean of its tempogram (autocorrelations of
    Hann-windowed 8-second stretches, each normalised by its maximum) times a log-normal prior around
    120 BPM. Here the mean is taken over every ``stride``-th window (``stride=1`` gives librosa's value
    exactly), ``batch`` windows at a time: librosa's whole tempogram needs ~1 GB for a 10-minute track at
    86 frames per second; this needs a few tens of MB and a quarter of the time."""
    from scipy.signal import get_window

    window = int(librosa.time_to_frames(8.0, sr=sr, hop_length=hop))  # librosa's ac_size = 8 s
    n = len(env)
    if n < 2 or not np.any(env > 0):
        return 0.0
    half = window // 2
    padded = np.pad(np.asarray(env, dtype=np.float64), (half, half), mode="linear_ramp", end_values=(0, 0))
    taper = get_window("hann", window, fftbins=True)
    starts = np.arange(0, n, stride)
    total = np.zeros(window)
    for i in range(0, len(starts), batch):
        idx = starts[i : i + batch, None] + np.arange(window)[None, :]
        ac = librosa.autocorrelate(padded[idx] * taper, axis=-1)
        peak = np.max(np.abs(ac), axis=-1, keepdims=True)
        total += np.sum(np.divide(ac, peak, out=np.zeros_like(ac), where=peak > 0), axis=0)
    mean = (total / len(starts))[:, None]
    return float(librosa.feature.tempo(tg=mean, sr=sr, hop_length=hop, onset_envelope=None)[0])


def analyse_audio(wav: np.ndarray, sample_rate: int) -> TrackAnalysis:
    """Analyse a mono waveform (float ``[N]``) at any sample rate; see :class:`TrackAnalysis`."""
    import librosa  # imported here: it takes a while and only analysis needs it

    from v2meow.io.audio import resample

    y = np.asarray(wav, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=0)
    y = resample(y, sample_rate, ANALYSIS_SR) if sample_rate != ANALYSIS_SR else y
    sr = ANALYSIS_SR
    duration = len(y) / sr
    if len(y) < _FEAT_NFFT:
        y = np.pad(y, (0, _FEAT_NFFT - len(y)))
    env_rate = sr / _ONSET_HOP

    feats = _frame_features(librosa, y, sr)
    # Onsets and beats from the short-window log-mel flux.
    env = feats["env"]
    n_env = int(math.ceil(duration * env_rate)) + 1
    env = _resize_env(env, n_env)
    env_norm = _normalise(env, _ENV_FLOOR)
    if np.any(env > 0.05 * _ENV_FLOOR):
        # Zeros after the end: without them the tracker's last-beat rule often drops or misplaces the
        # final beats (its local score window runs past the end).
        padded = np.concatenate([env, np.zeros(int(env_rate * 1.5), np.float32)])
        # The tempo is estimated here (librosa's tempogram needs ~1 GB for a 10-minute track).
        tempo_est = estimate_tempo(librosa, env, sr, _ONSET_HOP)
        _, beat_frames = librosa.beat.beat_track(
            onset_envelope=padded, sr=sr, hop_length=_ONSET_HOP, bpm=tempo_est, trim=True
        )
        beat_frames = beat_frames[beat_frames < n_env]
        onset_frames = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=_ONSET_HOP, units="frames")
    else:  # silence: no beats, no onsets
        tempo_est, beat_frames, onset_frames = 0.0, np.zeros(0, int), np.zeros(0, int)
    beat_frames = np.asarray(beat_frames, dtype=np.int64)
    onset_frames = np.asarray(onset_frames, dtype=np.int64)
    # Place beats and onsets more finely: at the peak of a short-window (23 ms) flux within ±35 ms.
    fine = feats["fine"]
    beats = _refine_times(beat_frames / env_rate, fine, sr / _FINE_HOP)
    onsets = _refine_times(onset_frames / env_rate, fine, sr / _FINE_HOP)
    # Strength at a beat: the envelope's maximum within ±2 frames (±23 ms).
    local_max = maximum_filter1d(env_norm, size=5)
    beat_strength = local_max[np.clip(beat_frames, 0, n_env - 1)] if len(beat_frames) else np.zeros(0)
    onset_strength = env_norm[np.clip(onset_frames, 0, n_env - 1)] if len(onset_frames) else np.zeros(0)
    if len(beats) >= 2:
        tempo = 60.0 / float(np.median(np.diff(beats)))
    else:
        tempo = float(np.atleast_1d(tempo_est)[0]) if len(beats) else 0.0

    # Timbre, harmony, loudness, brightness at 43 frames/s.
    feat_rate = sr / _FEAT_HOP
    rms, centroid, mfcc, chroma = feats["rms"], feats["centroid"], feats["mfcc"], feats["chroma"]
    rms_db = 20.0 * np.log10(rms + 1e-5)
    audible = rms_db > max(float(np.percentile(rms_db, 95)) - 30.0, -70.0)

    # Envelopes on the onset grid.
    t_env = np.arange(n_env) / env_rate
    t_feat = np.arange(len(rms)) / feat_rate
    loud_ref = float(np.percentile(rms_db, 95)) if rms_db.size else -100.0
    loud = np.clip((rms_db - (loud_ref - 24.0)) / 24.0, 0.0, 1.0) * (rms_db > -70.0)
    loudness = np.interp(t_env, t_feat, gaussian_filter1d(loud, 2.0)).astype(np.float32)
    log_c = np.log2(np.maximum(centroid, 1.0))
    bright = np.clip((log_c - np.log2(300.0)) / np.log2(5000.0 / 300.0), 0.0, 1.0) * audible
    brightness = np.interp(t_env, t_feat, gaussian_filter1d(bright, feat_rate * 0.5)).astype(np.float32)

    # Sections from blocks of 0.5 s of MFCC + chroma.
    per_block = max(1, int(round(_SECTION_BLOCK * feat_rate)))
    nb = mfcc.shape[1] // per_block
    if nb >= 8:
        stacked = np.concatenate([mfcc, 3.0 * chroma], axis=0)[:, : nb * per_block]
        blocks = stacked.reshape(stacked.shape[0], nb, per_block).mean(axis=2).T
        sections = section_boundaries(blocks, feat_rate / per_block, duration)
    else:
        sections = np.zeros(0)
    if len(sections) and len(beats) >= 2:
        # Snap boundaries onto the nearest beat when one is close: music videos cut on the beat.
        period = 60.0 / tempo
        nearest = beats[np.argmin(np.abs(beats[None, :] - sections[:, None]), axis=1)]
        sections = np.where(np.abs(nearest - sections) <= 0.5 * period, nearest, sections)
        sections = np.unique(sections)

    # Character, of the whole track and of each section.
    def energy_brightness(t0: float, t1: float) -> tuple[float, float, float, float]:
        """(energy, brightness level, level dB, onset rate) of the music in ``[t0, t1)`` seconds."""
        fa, fb = int(t0 * feat_rate), max(int(t0 * feat_rate) + 1, int(math.ceil(t1 * feat_rate)))
        ea, eb = int(t0 * env_rate), max(int(t0 * env_rate) + 1, int(math.ceil(t1 * env_rate)))
        aud = audible[fa:fb]
        lvl_db = float(np.mean(rms_db[fa:fb][aud])) if np.any(aud) else -100.0
        rate = float(np.sum((onsets >= t0) & (onsets < t1))) / max(t1 - t0, 1e-6)
        lvl = float(np.clip((lvl_db + 32.0) / 22.0, 0.0, 1.0))
        fl = float(np.mean(env[ea:eb])) / _ENV_FLOOR if len(env[ea:eb]) else 0.0
        en = float(np.clip(0.35 * lvl + 0.35 * min(rate / 7.0, 1.0) + 0.3 * min(fl / 1.5, 1.0), 0.0, 1.0))
        br = float(np.median(bright[fa:fb][aud])) if np.any(aud) else 0.0
        return en, br, lvl_db, rate

    energy, _, level_db, onset_rate = energy_brightness(0.0, duration)
    edges = [0.0, *[float(x) for x in sections], duration]
    section_characters = []
    for a, b in zip(edges[:-1], edges[1:]):
        en, br, _, _ = energy_brightness(a, b)
        section_characters.append({"energy": round(en, 3), "brightness": round(br, 3)})
    brightness_level = float(np.median(bright[audible])) if np.any(audible) else 0.0
    key, mode, mode_conf = _key_and_mode(chroma[:, audible].mean(axis=1) if np.any(audible) else np.zeros(12))
    tempo_class = "none" if tempo <= 0 else ("slow" if tempo < 90 else ("fast" if tempo >= 130 else "medium"))
    dynamics = float(np.clip((np.percentile(rms_db, 95) - np.percentile(rms_db, 20)) / 30.0, 0.0, 1.0))
    character = {
        "energy": round(energy, 3),
        "brightness": round(brightness_level, 3),
        "loudness_db": round(level_db, 2),
        "dynamics": round(dynamics, 3),
        "onset_rate": round(onset_rate, 3),
        "tempo_class": tempo_class,
        "key": key,
        "mode": mode,
        "mode_confidence": round(mode_conf, 3),
    }
    return TrackAnalysis(
        duration=duration,
        tempo=float(tempo),
        beats=beats,
        beat_strength=np.asarray(beat_strength, dtype=np.float64),
        onsets=onsets,
        onset_strength=np.asarray(onset_strength, dtype=np.float64),
        sections=np.asarray(sections, dtype=np.float64),
        character=character,
        env_rate=env_rate,
        onset_env=env_norm,
        loudness=loudness,
        brightness=brightness,
        section_characters=section_characters,
    )


# ---------------------------------------------------------------------------------------------------
# Per-frame controls
# ---------------------------------------------------------------------------------------------------


@dataclass
class Frame:
    """The music as seen by a world at one video frame (all in [0, 1] unless said otherwise)."""

    index: int
    t: float
    dt: float
    loud: float  # loudness
    onset: float  # onset envelope (max over the frame interval)
    bright: float  # spectral brightness
    pulse: float  # decaying impulse at each beat, scaled by the beat's strength
    phase: float  # position between the last beat and the next, [0, 1)
    beat: int  # index of the last beat (on an extended grid: may be negative before the first)
    new_beat: bool  # a real beat fell since the previous frame
    beat_strength: float  # strength of the last real beat
    flash: float  # decaying flash after strong onsets
    new_onset: bool  # a strong onset fell since the previous frame
    speed: float  # motion speed from tempo and loudness, ~0.2..1.8
    travel: float  # integral of speed (seconds × speed): smooth scrolling positions
    period: float  # seconds per beat


class Controls:
    """Per-frame control signals for a whole video, computed at once from the analysis (vectorised)."""

    def __init__(self, an: TrackAnalysis, fps: float, n: int, rng: np.random.Generator) -> None:
        t = np.arange(n) / fps
        self.t = t
        self.fps = fps
        env_t = np.arange(len(an.onset_env)) / an.env_rate
        span = max(1, int(math.ceil(an.env_rate / fps)))
        # Max over the frame's interval (origin shifted so the window ends at the frame time).
        onset_max = maximum_filter1d(an.onset_env, size=span, origin=(span - 1) // 2)
        self.onset = np.interp(t, env_t, onset_max) if len(env_t) else np.zeros(n)
        self.loud = np.interp(t, env_t, an.loudness) if len(env_t) else np.zeros(n)
        self.bright = np.interp(t, env_t, an.brightness) if len(env_t) else np.zeros(n)

        beats = np.asarray(an.beats, dtype=np.float64)
        strength = np.asarray(an.beat_strength, dtype=np.float64)
        if len(beats) >= 2:
            period = float(np.median(np.diff(beats)))
        elif an.tempo > 0:
            period = 60.0 / an.tempo
        else:
            period = float(rng.uniform(0.6, 1.2))  # no beat: a slow, unmusical grid for phases only
        self.period = period
        # Phase grid: the real beats, extended by whole periods before and after.
        first = beats[0] if len(beats) else float(rng.uniform(0, period))
        last = beats[-1] if len(beats) else first
        n_before = int(math.ceil(first / period)) + 1
        n_after = int(math.ceil(max(0.0, t[-1] - last if n else 0.0) / period)) + 2
        grid = np.concatenate(
            [
                first - period * np.arange(n_before, 0, -1),
                beats if len(beats) else [first],
                last + period * np.arange(1, n_after),
            ]
        )
        k = np.searchsorted(grid, t, side="right") - 1
        k = np.clip(k, 0, len(grid) - 2)
        self.phase = np.clip((t - grid[k]) / (grid[k + 1] - grid[k]), 0.0, 0.999)
        self.beat = k - n_before

        # Pulses at real beats.
        self.pulse = np.zeros(n)
        self.new_beat = np.zeros(n, dtype=bool)
        self.beat_strength = np.zeros(n)
        if len(beats):
            tau = float(np.clip(0.18 * period, 0.05, 0.16))
            b = np.searchsorted(beats, t + 1e-9, side="right") - 1
            has = b >= 0
            bb = np.clip(b, 0, None)
            s = 0.35 + 0.65 * strength[bb]
            self.pulse = np.where(has, s * np.exp(-(t - beats[bb]) / tau), 0.0)
            self.beat_strength = np.where(has, s, 0.0)
            prev = np.concatenate([[-1], b[:-1]])
            self.new_beat = has & (b != prev)

        # Flashes at strong onsets: the top of the track's onsets, and loud in absolute terms.
        self.flash = np.zeros(n)
        self.new_onset = np.zeros(n, dtype=bool)
        on, os_ = np.asarray(an.onsets), np.asarray(an.onset_strength)
        if len(on):
            thresh = max(0.5, float(np.percentile(os_, 70)))
            strong = on[os_ >= thresh]
            strong_s = os_[os_ >= thresh]
            if len(strong):
                j = np.searchsorted(strong, t + 1e-9, side="right") - 1
                has = j >= 0
                jj = np.clip(j, 0, None)
                self.flash = np.where(has, strong_s[jj] * np.exp(-(t - strong[jj]) / 0.07), 0.0)
                prev = np.concatenate([[-1], j[:-1]])
                self.new_onset = has & (j != prev)

        tempo_factor = float(np.clip(60.0 / period / 120.0, 0.5, 1.6))
        smooth_loud = gaussian_filter1d(self.loud, max(1.0, fps * 0.5)) if n else self.loud
        self.speed = tempo_factor * (0.3 + 0.8 * smooth_loud)
        self.travel = np.cumsum(self.speed) / fps

    def frame(self, i: int) -> Frame:
        return Frame(
            index=i,
            t=float(self.t[i]),
            dt=1.0 / self.fps,
            loud=float(self.loud[i]),
            onset=float(self.onset[i]),
            bright=float(self.bright[i]),
            pulse=float(self.pulse[i]),
            phase=float(self.phase[i]),
            beat=int(self.beat[i]),
            new_beat=bool(self.new_beat[i]),
            beat_strength=float(self.beat_strength[i]),
            flash=float(self.flash[i]),
            new_onset=bool(self.new_onset[i]),
            speed=float(self.speed[i]),
            travel=float(self.travel[i]),
            period=self.period,
        )


# ---------------------------------------------------------------------------------------------------
# Colours
# ---------------------------------------------------------------------------------------------------


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))), np.float32)


@dataclass
class Palette:
    """Colours of a scene: a base hue (turns) with saturation and value, and a colour scheme."""

    hue: float
    saturation: float
    value: float
    scheme: str
    colors: np.ndarray = field(init=False)  # [K, 3]
    background: np.ndarray = field(init=False)  # [2, 3]: two background tones
    accent: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        offsets = {
            "analogous": (0.0, 0.06, -0.06, 0.12, -0.12),
            "complementary": (0.0, 0.5, 0.04, 0.54, -0.04),
            "triadic": (0.0, 1 / 3, 2 / 3, 0.05, 0.38),
            "mono": (0.0, 0.0, 0.02, -0.02, 0.0),
        }[self.scheme]
        # The background: a dark tone of the base hue's family, or of its complement / triad partner.
        bg_offset = {"analogous": 0.04, "complementary": 0.5, "triadic": 2 / 3, "mono": 0.0}[self.scheme]
        vs = (1.0, 0.85, 0.7, 0.95, 0.6)
        ss = (1.0, 0.9, 0.75, 0.6, 1.0)
        self.colors = np.stack(
            [_hsv(self.hue + o, self.saturation * s, self.value * v) for o, s, v in zip(offsets, ss, vs)]
        )
        self.background = np.stack(
            [
                _hsv(self.hue + bg_offset, self.saturation * 0.7, 0.12 + 0.25 * self.value),
                _hsv(self.hue + bg_offset - 0.05, self.saturation * 0.5, 0.04 + 0.12 * self.value),
            ]
        )
        self.accent = 0.5 * _hsv(self.hue + 0.08, 0.5 * self.saturation, 1.0) + 0.5

    def lut(self, n: int = 256) -> np.ndarray:
        """A cyclic colour gradient ``[n, 3]`` through the palette and the darker background tone."""
        stops = np.concatenate([self.colors[:4], self.background[1:2] * 1.5, self.colors[:1]], axis=0)
        x = np.linspace(0, len(stops) - 1, n, endpoint=False)
        i = np.floor(x).astype(int)
        f = (x - i)[:, None]
        f = f * f * (3 - 2 * f)
        return ((1 - f) * stops[i] + f * stops[np.minimum(i + 1, len(stops) - 1)]).astype(np.float32)

    def shifted(self, rng: np.random.Generator, amount: float = 0.08) -> Palette:
        return Palette(
            hue=(self.hue + rng.normal(0, amount)) % 1.0,
            saturation=float(np.clip(self.saturation + rng.normal(0, 0.06), 0.15, 1.0)),
            value=float(np.clip(self.value + rng.normal(0, 0.05), 0.3, 1.0)),
            scheme=str(rng.choice(["analogous", "complementary", "triadic", "mono"])),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "hue": round(self.hue * 360.0, 1),
            "saturation": round(self.saturation, 3),
            "value": round(self.value, 3),
            "scheme": self.scheme,
        }


def _tempo_level(tempo: float) -> float:
    return float(np.clip((tempo - 60.0) / 120.0, 0.0, 1.0))


def character_palette(character: dict[str, Any], tempo: float, rng: np.random.Generator) -> Palette:
    """Bright / fast / energetic / major → warm, saturated, light; the opposite → cool, muted, dim."""
    e, b, tl = character["energy"], character["brightness"], _tempo_level(tempo)
    major = 1.0 if character["mode"] == "major" else 0.0
    raw = 0.35 * b + 0.25 * tl + 0.25 * e + 0.15 * major
    # Stretched around the middle: most music sits near it, and colours should still tell tracks apart.
    warmth = float(np.clip(0.5 + 1.6 * (raw - 0.5) + rng.normal(0, 0.08), 0.0, 1.0))
    hue_deg = 220.0 - warmth * 195.0  # 220° (blue) → 25° (orange) through cyan, green and yellow
    sat = 0.3 + 0.6 * (0.5 * e + 0.5 * tl) + rng.normal(0, 0.06)
    val = 0.45 + 0.45 * (0.6 * e + 0.4 * b) + rng.normal(0, 0.04)
    scheme = str(rng.choice(["analogous", "complementary", "triadic", "mono"], p=[0.4, 0.25, 0.2, 0.15]))
    return Palette(
        hue=(hue_deg / 360.0) % 1.0,
        saturation=float(np.clip(sat, 0.15, 1.0)),
        value=float(np.clip(val, 0.3, 1.0)),
        scheme=scheme,
    )


def world_probabilities(character: dict[str, Any], tempo: float) -> np.ndarray:
    """Probability of each world in :data:`WORLDS` given the music's character (never 0 for any)."""
    e, b, tl = character["energy"], character["brightness"], _tempo_level(tempo)
    major = 1.0 if character["mode"] == "major" else 0.0
    scores = np.array(
        [
            1.5 * e + 1.0 * tl - 0.5 * b,  # starfield: energetic, fast, dark-ish
            1.0 * major + 0.5 * b + 0.3 * e,  # shapes: bright, major
            -1.5 * e - 1.0 * tl + 0.5 * (1 - major) + 1.0,  # plasma: calm, slow
            1.5 * tl + 1.0 * major + 0.5 * b - 0.3,  # bounce: fast, happy
            -0.5 * b + 0.8 * (1 - major) + 0.5 - abs(tl - 0.5),  # city: dark, minor, mid tempo
        ]
    )
    p = np.exp(scores - scores.max())
    p = p / p.sum()
    return 0.8 * p + 0.2 / len(p)  # every world stays possible for any music


# ---------------------------------------------------------------------------------------------------
# Worlds
# ---------------------------------------------------------------------------------------------------


def _soft(d: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage from a signed distance in pixels (inside < 0)."""
    return np.clip(0.5 - d, 0.0, 1.0)


def _blend(img: np.ndarray, x0: int, y0: int, alpha: np.ndarray, color: np.ndarray) -> None:
    """``img[y0:, x0:] = mix(img, color, alpha)`` for an ``alpha`` patch (clipped to the image)."""
    h, w = img.shape[:2]
    ph, pw = alpha.shape
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + pw, w), min(y0 + ph, h)
    if xa >= xb or ya >= yb:
        return
    a = alpha[ya - y0 : yb - y0, xa - x0 : xb - x0, None]
    region = img[ya:yb, xa:xb]
    region += a * (color - region)


class World:
    """A visual world: :meth:`layout` draws a random arrangement, :meth:`render` one frame from controls.

    Worlds hold their own random generator (seeded from the video's), so a video is reproducible.
    """

    name = ""

    def __init__(self, rng: np.random.Generator, width: int, height: int, palette: Palette, energy: float) -> None:
        self.rng = rng
        self.w, self.h = width, height
        self.palette = palette
        self.energy = energy
        self.xs = (np.arange(width, dtype=np.float32) + 0.5 - width / 2) / height
        self.ys = (np.arange(height, dtype=np.float32) + 0.5 - height / 2) / height
        self.layout()

    def layout(self) -> None:
        raise NotImplementedError

    def set_palette(self, palette: Palette) -> None:
        self.palette = palette
        self.layout()

    def render(self, f: Frame) -> np.ndarray:
        raise NotImplementedError

    def _gradient(self, angle: float, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
        g = np.cos(angle) * self.xs[None, :] + np.sin(angle) * self.ys[:, None]
        g = (g - g.min()) / max(float(np.ptp(g)), 1e-6)
        return (c0 * (1 - g[..., None]) + c1 * g[..., None]).astype(np.float32)


class Starfield(World):
    """Stars (particles) flying towards the camera; faster on beats and with loudness; trails."""

    name = "starfield"

    def layout(self) -> None:
        r = self.rng
        n = max(30, int(r.uniform(0.02, 0.05) * self.w * self.h))
        self.x = r.uniform(-1, 1, n).astype(np.float32)
        self.y = r.uniform(-1, 1, n).astype(np.float32)
        self.z = r.uniform(0.05, 1.0, n).astype(np.float32)
        pal = np.concatenate([self.palette.colors, np.ones((2, 3), np.float32)])
        self.col = pal[r.integers(0, len(pal), n)] * r.uniform(0.6, 1.0, (n, 1)).astype(np.float32)
        self.angle = float(r.uniform(0, 2 * np.pi))
        self.spin = float(r.normal(0, 0.25))
        self.focal = self.h * float(r.uniform(0.35, 0.7))
        self.cx = self.w / 2 + float(r.normal(0, 0.08)) * self.w
        self.cy = self.h / 2 + float(r.normal(0, 0.08)) * self.h
        self.decay = float(r.uniform(0.55, 0.85))
        self.burst = float(r.uniform(1.0, 2.5))
        self.trail = np.zeros((self.h, self.w, 3), np.float32)
        self.bg = self._gradient(float(r.uniform(0, 2 * np.pi)), self.palette.background[1], self.palette.background[0])

    def render(self, f: Frame) -> np.ndarray:
        r = self.rng
        dz = f.dt * (0.1 + 0.45 * f.speed + self.burst * f.pulse)
        self.z -= dz
        dead = self.z <= 0.03
        k = int(dead.sum())
        if k:
            self.x[dead] = r.uniform(-1, 1, k)
            self.y[dead] = r.uniform(-1, 1, k)
            self.z[dead] = r.uniform(0.8, 1.0, k)
        self.angle += self.spin * f.dt
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        px = self.cx + (self.x * ca - self.y * sa) / self.z * self.focal
        py = self.cy + (self.x * sa + self.y * ca) / self.z * self.focal
        lum = np.clip(0.25 / self.z, 0.0, 2.0) * (0.4 + 0.9 * f.pulse + 0.2 * f.loud + 0.3 * f.onset)
        xi, yi = px.astype(np.int32), py.astype(np.int32)
        ok = (xi >= 0) & (xi < self.w - 1) & (yi >= 0) & (yi < self.h - 1) & (px >= 0) & (py >= 0)
        idx = (yi * self.w + xi)[ok]
        weight = lum[ok]
        near = self.z[ok] < 0.3
        idx_all = np.concatenate([idx, idx[near] + 1, idx[near] + self.w, idx[near] + self.w + 1])
        w_all = np.concatenate([weight, weight[near], weight[near], weight[near]])
        col = self.col[ok]
        col_all = np.concatenate([col, col[near], col[near], col[near]])
        self.trail *= self.decay
        hw = self.h * self.w
        for c in range(3):
            self.trail[..., c] += np.bincount(idx_all, weights=w_all * col_all[:, c], minlength=hw).reshape(
                self.h, self.w
            )
        np.minimum(self.trail, 1.5, out=self.trail)
        return self.bg * (0.7 + 0.3 * f.bright) + self.trail


class Shapes(World):
    """Geometric shapes (discs, rings, squares, diamonds) that pulse, rotate, drift and hop on beats."""

    name = "shapes"
    KINDS = ("disc", "ring", "square", "diamond")

    def layout(self) -> None:
        r = self.rng
        m = int(r.integers(4, 12))
        self.kind = r.integers(0, len(self.KINDS), m)
        self.pos = np.stack([r.uniform(0.1, 0.9, m) * self.w, r.uniform(0.15, 0.85, m) * self.h], axis=1)
        self.target = self.pos.copy()
        self.vel = r.normal(0, 0.03, (m, 2)) * np.array([self.w, self.h])
        self.radius = r.uniform(0.06, 0.2, m) * self.h
        self.col = self.palette.colors[r.integers(0, len(self.palette.colors), m)]
        self.angle = r.uniform(0, np.pi, m)
        self.spin = r.normal(0, 1.2, m)
        self.gain = r.uniform(0.25, 0.7, m) * (0.6 + 0.6 * self.energy)
        self.every = r.choice([1, 1, 1, 2], m)  # some shapes pulse every other beat
        self.hop = float(r.uniform(0.1, 0.4))  # chance that a shape jumps to a new place on a beat
        self.order = np.argsort(self.radius)[::-1]  # big ones behind
        angle = float(r.uniform(0, 2 * np.pi))
        self.bg = self._gradient(angle, self.palette.background[0], self.palette.background[1])

    def render(self, f: Frame) -> np.ndarray:
        r = self.rng
        m = len(self.kind)
        if f.new_beat:
            jump = r.random(m) < self.hop * (0.5 + f.beat_strength)
            k = int(jump.sum())
            if k:
                self.target[jump] = np.stack([r.uniform(0.1, 0.9, k) * self.w, r.uniform(0.15, 0.85, k) * self.h], 1)
        self.target += self.vel * f.dt * (0.5 + f.speed)
        for axis, size in ((0, self.w), (1, self.h)):
            out = (self.target[:, axis] < 0) | (self.target[:, axis] > size)
            self.vel[out, axis] *= -1
            self.target[:, axis] = np.clip(self.target[:, axis], 0, size)
        self.pos += (self.target - self.pos) * min(1.0, f.dt * 14.0)
        self.angle += self.spin * f.dt * (0.4 + f.speed)
        img = self.bg * (0.75 + 0.25 * f.loud)
        for i in self.order:
            on = (f.beat % self.every[i]) == 0
            rad = self.radius[i] * (1.0 + self.gain[i] * (f.pulse if on else 0.2 * f.pulse))
            half = int(rad * 1.45) + 2
            cx, cy = self.pos[i]
            x0, y0 = int(cx) - half, int(cy) - half
            dx = (np.arange(x0, x0 + 2 * half) + 0.5 - cx)[None, :]
            dy = (np.arange(y0, y0 + 2 * half) + 0.5 - cy)[:, None]
            kind = self.KINDS[self.kind[i]]
            if kind in ("disc", "ring"):
                d = np.sqrt(dx * dx + dy * dy) - rad
                if kind == "ring":
                    d = np.abs(d + 0.2 * rad) - 0.2 * rad
            else:
                ca, sa = math.cos(self.angle[i]), math.sin(self.angle[i])
                rx, ry = dx * ca - dy * sa, dx * sa + dy * ca
                if kind == "square":
                    d = np.maximum(np.abs(rx), np.abs(ry)) - 0.8 * rad
                else:
                    d = (np.abs(rx) + np.abs(ry)) * 0.75 - 0.8 * rad
            color = self.col[i] * (0.7 + 0.5 * (f.pulse if on else 0.0) + 0.2 * f.onset)
            _blend(img, x0, y0, _soft(d), color)
        return img


class Plasma(World):
    """Colour waves: a sum of moving sine gratings and a radial wave through the palette's gradient."""

    name = "plasma"

    def layout(self) -> None:
        r = self.rng
        self.k = r.uniform(3.0, 12.0, 4)
        self.theta = float(r.uniform(0, np.pi))
        self.w_rate = r.uniform(0.3, 1.5, 4) * r.choice([-1, 1], 4)
        self.p = r.uniform(0, 2 * np.pi, 4)
        self.centre = r.uniform(-0.4, 0.4, 2)
        self.centre_v = r.normal(0, 0.05, 2)
        self.lut = self.palette.lut(256)
        self.scale = float(r.uniform(20.0, 45.0))
        self.kick = 0.0
        self.shift = float(r.uniform(0, 256))
        self.shift_rate = float(r.normal(0, 8.0))

    def render(self, f: Frame) -> np.ndarray:
        if f.new_beat:
            self.kick += 0.6 + 0.8 * f.beat_strength
        step = min(1.0, f.dt * 10.0) * self.kick  # the kick advances the phases quickly just after a beat
        self.kick -= step
        self.p += self.w_rate * f.dt * (0.3 + 1.2 * f.speed) + step * np.sign(self.w_rate)
        self.centre += self.centre_v * f.dt
        self.centre_v[np.abs(self.centre) > 0.5] *= -1
        self.shift += f.dt * (self.shift_rate + 40.0 * f.onset + 120.0 * f.flash)
        xs, ys, k, p = self.xs, self.ys, self.k, self.p
        ct, st = math.cos(self.theta), math.sin(self.theta)
        fx = np.sin(k[0] * xs + p[0])[None, :]
        fy = np.sin(k[1] * ys + p[1])[:, None]
        a, b = k[2] * ct * xs + p[2], k[2] * st * ys
        fd = np.sin(a)[None, :] * np.cos(b)[:, None] + np.cos(a)[None, :] * np.sin(b)[:, None]
        rr = np.sqrt((xs[None, :] - self.centre[0]) ** 2 + (ys[:, None] - self.centre[1]) ** 2)
        fr = np.sin(k[3] * 2.0 * rr - p[3])
        v = fx + fy + fd + fr
        idx = (v * self.scale + self.shift).astype(np.int32) & 255
        img = self.lut[idx]
        return img * (0.5 + 0.35 * f.loud + 0.45 * f.pulse)


class Bounce(World):
    """Balls that land on the floor exactly on the beats (some every other beat) and roll sideways."""

    name = "bounce"

    def layout(self) -> None:
        r = self.rng
        n = int(r.integers(2, 8))
        self.floor = self.h * float(r.uniform(0.72, 0.9))
        self.radius = r.uniform(0.05, 0.11, n) * self.h
        self.x = r.uniform(0.1, 0.9, n) * self.w
        self.vx = r.normal(0, 0.12, n) * self.w
        self.every = r.choice([1, 1, 2], n)
        self.offset = r.integers(0, 2, n)
        self.height = r.uniform(0.25, 0.6, n) * self.h
        self.col = self.palette.colors[r.integers(0, len(self.palette.colors), n)]
        sky = self._gradient(
            math.pi / 2 + float(r.normal(0, 0.2)), self.palette.background[0], self.palette.background[1]
        )
        ground = np.arange(self.h)[:, None, None] >= self.floor
        floor_col = self.palette.colors[int(r.integers(0, 5))] * 0.35
        self.bg = np.where(ground, floor_col, sky).astype(np.float32)
        self.ground = np.broadcast_to(ground[..., 0], (self.h, self.w))

    def render(self, f: Frame) -> np.ndarray:
        img = self.bg.copy()
        if f.flash > 0.02:
            img[self.ground] += 0.35 * f.flash * self.palette.accent
        self.x += self.vx * f.dt * (0.4 + f.speed)
        hit = (self.x < self.radius) | (self.x > self.w - self.radius)
        self.vx[hit] *= -1
        self.x = np.clip(self.x, self.radius, self.w - self.radius)
        for i in range(len(self.x)):
            if self.every[i] == 1:
                phi = f.phase
            else:
                phi = (((f.beat + self.offset[i]) % 2) + f.phase) / 2.0
            lift = 4.0 * phi * (1.0 - phi)
            rad = self.radius[i]
            squash = 1.0 - 0.35 * math.exp(-min(phi, 1 - phi) * 14.0)
            ry, rx = rad * squash, rad / math.sqrt(squash)
            cy = self.floor - ry - self.height[i] * (0.4 + 0.6 * f.loud) * lift
            cx = float(self.x[i])
            # Shadow on the floor, smaller and fainter when the ball is high.
            sr = rad * (1.0 - 0.5 * lift)
            sx0, sy0 = int(cx - sr) - 1, int(self.floor - 0.3 * sr) - 1
            sdx = (np.arange(sx0, sx0 + int(2 * sr) + 3) + 0.5 - cx)[None, :] / max(sr, 0.5)
            sdy = (np.arange(sy0, sy0 + int(0.6 * sr) + 3) + 0.5 - self.floor)[:, None] / max(0.3 * sr, 0.5)
            shadow = np.clip(1.0 - (sdx * sdx + sdy * sdy), 0.0, 1.0) * (0.6 - 0.3 * lift)
            _blend(img, sx0, sy0, shadow, np.zeros(3, np.float32))
            half_x, half_y = int(rx) + 2, int(ry) + 2
            x0, y0 = int(cx) - half_x, int(cy) - half_y
            dx = (np.arange(x0, x0 + 2 * half_x) + 0.5 - cx)[None, :]
            dy = (np.arange(y0, y0 + 2 * half_y) + 0.5 - cy)[:, None]
            d = (np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2) - 1.0) * min(rx, ry)
            shade = 0.8 + 0.4 * np.clip(-(dx + dy) / (rx + ry), -1, 1)
            alpha = _soft(d)
            color_patch = self.col[i] * (0.8 + 0.5 * f.pulse)
            patch_h, patch_w = alpha.shape
            ya, xa = max(y0, 0), max(x0, 0)
            yb, xb = min(y0 + patch_h, self.h), min(x0 + patch_w, self.w)
            if ya < yb and xa < xb:
                a = alpha[ya - y0 : yb - y0, xa - x0 : xb - x0, None]
                s = shade[ya - y0 : yb - y0, xa - x0 : xb - x0, None]
                region = img[ya:yb, xa:xb]
                region += a * (color_patch * s - region)
        return img * (0.7 + 0.3 * f.loud)


class City(World):
    """A night skyline in parallax layers, scrolling with the music's speed; windows light up on onsets,
    the sky glows on beats, car lights stream along the street."""

    name = "city"

    def layout(self) -> None:
        r = self.rng
        h, w = self.h, self.w
        horizon = self.palette.colors[int(r.integers(0, 3))]
        self.sky = self._gradient(
            math.pi / 2 + float(r.normal(0, 0.1)), self.palette.background[1] * 0.8, horizon * 0.75
        )
        stars = (r.random((h, w)) < 0.006) & (np.arange(h)[:, None] < 0.5 * h)
        self.sky[stars] += 0.5
        self.layers = []
        n_layers = int(r.integers(2, 4))
        cell = max(2, int(round(h * r.uniform(0.035, 0.06))))
        for li in range(n_layers):
            depth = (li + 1) / n_layers  # 1 = nearest
            tw = int(w * r.uniform(2.0, 3.5))
            tops = np.full(tw, h, np.int32)
            x = int(r.integers(0, max(2, w // 20)))
            while x < tw:
                bw = int(max(3, r.uniform(0.05, 0.16) * w))
                tops[x : x + bw] = int(h * (1.0 - r.uniform(0.15 + 0.2 * (1 - depth), 0.45 + 0.3 * (1 - depth))))
                x += bw + int(r.integers(0, max(2, w // 30)))
            rows = np.arange(h)[:, None]
            cols = np.arange(tw)[None, :]
            mask = rows >= tops[None, :]
            c = max(2, int(round(cell * (0.7 + 0.5 * depth))))
            win = (rows % c < max(1, c // 2)) & (cols % c < max(1, c - c // 3))
            win &= mask & (rows > tops[None, :] + 1)
            groups = r.integers(1, 9, (h, tw))
            groups = np.where(win & (r.random((h, tw)) < 0.7), groups, 0).astype(np.int16)
            haze = 0.55 * (1.0 - depth)  # far layers fade into the sky
            color = (1 - haze) * self.palette.background[1] * 0.6 + haze * horizon * 0.6
            self.layers.append((mask, groups, color.astype(np.float32), 0.2 + 0.8 * depth**1.5))
        self.lit = np.concatenate([[0.0], r.uniform(0.3, 1.0, 8)])
        self.lit_color = (0.7 * self.palette.accent + 0.3 * self.palette.colors[1]).astype(np.float32)
        self.glow_col = self.palette.colors[0]
        self.glow = (np.clip(np.arange(h) / h - 0.2, 0, 1) ** 2).astype(np.float32)[:, None, None]
        self.cars = r.uniform(0, w, int(r.integers(2, 8)))
        self.car_v = r.uniform(0.2, 0.6, len(self.cars)) * w * r.choice([-1, 1], len(self.cars))
        self.car_y = int(h * 0.96)
        self.scroll = float(r.uniform(0.15, 0.4)) * w * r.choice([-1, 1])

    def render(self, f: Frame) -> np.ndarray:
        r = self.rng
        if f.new_onset or (f.new_beat and r.random() < 0.3):
            flip = r.random(9) < 0.35
            flip[0] = False
            self.lit[flip] = np.where(self.lit[flip] > 0.5, r.uniform(0.05, 0.3, int(flip.sum())), 1.0)
        img = self.sky + self.glow * self.glow_col * (0.1 + 0.6 * f.pulse)
        cols = np.arange(self.w)
        lit = self.lit.astype(np.float32) * (0.6 + 0.4 * f.loud + 0.3 * f.onset)
        for mask, groups, color, speed in self.layers:
            tw = mask.shape[1]
            c = (cols + int(f.travel * self.scroll * speed)) % tw
            m = mask[:, c]
            g = groups[:, c]
            img = np.where(m[..., None], color, img)
            light = lit[g]
            img += light[..., None] * self.lit_color * (0.4 + 0.6 * speed)
        self.cars = (self.cars + self.car_v * f.dt * (0.5 + f.speed)) % self.w
        ci = self.cars.astype(np.int32)
        y = min(self.car_y, self.h - 1)
        img[y, ci] += np.array([1.0, 0.85, 0.6], np.float32)
        img[y, np.clip(ci + 1, 0, self.w - 1)] += np.array([0.9, 0.2, 0.1], np.float32)
        return img


_WORLD_CLASSES: dict[str, type[World]] = {c.name: c for c in (Starfield, Shapes, Plasma, Bounce, City)}


# ---------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------


@dataclass
class Cut:
    time: float
    kind: str  # "section" | "phrase" | "random"


def plan_cuts(an: TrackAnalysis, duration: float, rng: np.random.Generator) -> list[Cut]:
    """Cuts at section boundaries, at some phrase starts (every 8 or 16 beats), and rarely at random."""
    cuts = [Cut(float(t), "section") for t in an.sections if 0 < t < duration]
    beats = np.asarray(an.beats)
    phrase = int(rng.choice([8, 16]))
    p_phrase = 0.15 + 0.35 * float(an.character["energy"])
    for i in range(phrase, len(beats), phrase):
        if rng.random() < p_phrase:
            cuts.append(Cut(float(beats[i]), "phrase"))
    t = float(rng.exponential(45.0))
    while t < duration:
        cuts.append(Cut(t, "random"))
        t += float(rng.exponential(45.0))
    cuts.sort(key=lambda c: c.time)
    kept: list[Cut] = []
    for c in cuts:  # at most one cut per 2 s; a section boundary wins over the others
        if kept and c.time - kept[-1].time < 2.0:
            if c.kind == "section" and kept[-1].kind != "section":
                kept[-1] = c
            continue
        if c.time >= 1.0 and c.time <= duration - 0.5:
            kept.append(c)
    return kept


class Renderer:
    """Renders the frames of one video from a :class:`TrackAnalysis` (an iterator of uint8 RGB frames)."""

    def __init__(
        self,
        an: TrackAnalysis,
        size: tuple[int, int],
        fps: float,
        seed: int,
        duration: float | None = None,
        world: str | None = None,
    ) -> None:
        self.an = an
        self.w, self.h = int(size[0]), int(size[1])
        self.fps = float(fps)
        self.duration = an.duration if duration is None else float(duration)
        self.n = max(1, int(round(self.duration * self.fps)))
        self.rng = np.random.default_rng(seed)
        rng = self.rng
        self.controls = Controls(an, self.fps, self.n, rng)
        # Colours and worlds follow the character of the section on screen (the whole track's as a fallback).
        first = an.character_at(0.0)
        self.probs = world_probabilities(first, an.tempo)
        if world is not None and world not in _WORLD_CLASSES:
            raise UserError(f"Unknown visual world {world!r}; choose from {', '.join(WORLDS)}.")
        self.fixed_world = world
        self.palette = character_palette(first, an.tempo, rng)
        self.cuts = plan_cuts(an, self.duration, rng)
        self.cut_frames = [int(round(c.time * self.fps)) for c in self.cuts]
        self.energy = float(an.character["energy"])
        self.world = self._new_world(world or str(rng.choice(WORLDS, p=self.probs)))
        self.scenes = [{"start": 0.0, "world": self.world.name, "cut": "start", "palette": self.palette.to_json()}]
        # Visual noise unrelated to the music.
        gh, gw = max(1, self.h // 2), max(1, self.w // 2)
        grain = rng.normal(0, 1, (6, gh, gw, 1)).astype(np.float32)
        grain = np.repeat(np.repeat(grain, 2, axis=1), 2, axis=2)[:, : self.h, : self.w]
        if grain.shape[1] < self.h or grain.shape[2] < self.w:
            grain = np.pad(grain, ((0, 0), (0, self.h - grain.shape[1]), (0, self.w - grain.shape[2]), (0, 0)))
        self.grain = grain * float(rng.uniform(0.005, 0.02))
        # A slow camera sway (pixels), at its own rate: motion that has nothing to do with the music.
        self.sway = (rng.uniform(0.0, 0.03, 2) * self.h, rng.uniform(0.03, 0.12, 2), rng.uniform(0, 2 * np.pi, 2))
        self.blink = None
        if rng.random() < 0.6:
            bw, bh = max(2, self.w // 16), max(2, self.h // 12)
            bx, by = int(rng.integers(0, self.w - bw + 1)), int(rng.integers(0, self.h - bh + 1))
            self.blink = (
                bx,
                by,
                bw,
                bh,
                float(rng.uniform(0.35, 2.2)),
                float(rng.uniform(0, 1)),
                _hsv(float(rng.random()), 0.6, 1.0) * float(rng.uniform(0.08, 0.2)),
            )
        self.shake = float(rng.uniform(0.0, 0.025) * self.h * (0.5 + self.energy))
        self.shake_dir = np.zeros(2)
        yy = (np.arange(self.h) + 0.5) / self.h - 0.5
        xx = (np.arange(self.w) + 0.5) / self.w - 0.5
        strength = float(rng.uniform(0.2, 0.6))
        self.vignette = (1.0 - strength * (xx[None, :] ** 2 + yy[:, None] ** 2) * 2.0).astype(np.float32)[..., None]
        self.exposure = 0.85 + 0.3 * self.energy
        self.flash_color = self.palette.accent

    def _new_world(self, name: str) -> World:
        child = np.random.default_rng(int(self.rng.integers(0, 2**63 - 1)))
        return _WORLD_CLASSES[name](child, self.w, self.h, self.palette, self.energy)

    def _apply_cut(self, cut: Cut) -> None:
        rng = self.rng
        if cut.kind == "section":
            # a new section: colours (and the odds of each world) from its own character
            character = self.an.character_at(cut.time + 1e-3)
            self.palette = character_palette(character, self.an.tempo, rng)
            self.probs = world_probabilities(character, self.an.tempo)
            if self.fixed_world is None and rng.random() < 0.4:
                self.world = self._new_world(str(rng.choice(WORLDS, p=self.probs)))
            else:
                self.world.set_palette(self.palette)
        else:
            if rng.random() < 0.5:
                self.palette = self.palette.shifted(rng, 0.04)
            self.world.set_palette(self.palette)
        self.flash_color = self.palette.accent
        self.scenes.append(
            {"start": round(cut.time, 3), "world": self.world.name, "cut": cut.kind, "palette": self.palette.to_json()}
        )

    def frames(self) -> Iterator[np.ndarray]:
        rng = self.rng
        next_cut = 0
        for i in range(self.n):
            while next_cut < len(self.cuts) and self.cut_frames[next_cut] <= i:
                self._apply_cut(self.cuts[next_cut])
                next_cut += 1
            f = self.controls.frame(i)
            img = self.world.render(f)
            # Camera: the slow sway plus a small shake in a random direction on each beat (edges repeat).
            if f.new_beat:
                a = rng.uniform(0, 2 * np.pi)
                self.shake_dir = np.array([math.cos(a), math.sin(a)])
            amp, freq, ph = self.sway
            off = amp * np.sin(2 * np.pi * freq * f.t + ph) + self.shake * f.pulse * self.shake_dir
            ox, oy = int(round(off[0])), int(round(off[1]))
            if oy:
                img = img[np.clip(np.arange(self.h) - oy, 0, self.h - 1)]
            if ox:
                img = img[:, np.clip(np.arange(self.w) - ox, 0, self.w - 1)]
            # Exposure follows loudness; strong onsets flash; then lens and sensor: vignette and grain.
            img = img * (self.exposure * (0.8 + 0.3 * f.loud) * (0.92 + 0.16 * f.bright))
            if f.flash > 0.01:
                img += (0.55 * f.flash) * self.flash_color
            if self.blink is not None:
                bx, by, bw, bh, period, phase, col = self.blink
                if ((f.t / period + phase) % 1.0) < 0.5:
                    img[by : by + bh, bx : bx + bw] += col
            img *= self.vignette
            img += self.grain[int(rng.integers(0, len(self.grain)))]
            np.multiply(img, 255.0, out=img)
            np.clip(img, 0.0, 255.0, out=img)
            yield img.astype(np.uint8)


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------


def _write_json_atomic(path: str, data: dict[str, Any]) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        publish(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def sidecar_path(video_path: str | os.PathLike[str]) -> str:
    """The sidecar JSON of a rendered video: same folder and stem, ``.json``."""
    return os.path.splitext(os.fspath(video_path))[0] + ".json"


def _encode(
    path: str,
    frames: Iterator[np.ndarray],
    size: tuple[int, int],
    fps: float,
    wav: np.ndarray,
    audio_rate: int,
    crf: int,
) -> None:
    """Encode ``frames`` (H.264, yuv420p) and ``wav`` (planar ``[C, N]``, AAC), interleaved by time."""
    w, h = size
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        vs = container.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.time_base = 1 / rate
        vs.codec_context.gop_size = max(1, int(round(2 * fps)))
        vs.codec_context.thread_count = 1
        # One thread and no macroblock tree: with mbtree, x264's output varies from run to run when a
        # side is not a multiple of 16 (e.g. 64x36), and the same seed must give the same file.
        vs.codec_context.options = {"preset": "veryfast", "crf": str(crf), "threads": "1", "x264-params": "mbtree=0"}
        layout = "mono" if wav.shape[0] == 1 else "stereo"
        astream = container.add_stream("aac", rate=audio_rate, layout=layout)
        astream.bit_rate = 96000 if layout == "mono" else 128000
        audio = encode_audio_packets(astream, wav, audio_rate)
        pending = next(audio, None)
        reformatter = VideoReformatter()

        def mux_video(packets: list[av.Packet]) -> None:
            nonlocal pending
            for packet in packets:
                t = packet_time(packet)
                while pending is not None and packet_time(pending) <= t:
                    container.mux(pending)
                    pending = next(audio, None)
                container.mux(packet)

        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame = reformatter.reformat(frame, format="yuv420p")
            frame.pts = i
            frame.time_base = 1 / rate
            mux_video(vs.encode(frame))
        mux_video(vs.encode(None))
        while pending is not None:
            container.mux(pending)
            pending = next(audio, None)


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def render_video(
    audio_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    seconds: float | None = None,
    size: tuple[int, int] = (256, 144),
    fps: float = 24,
    seed: int = 0,
    world: str | None = None,
    audio_rate: int = 44100,
    crf: int = 20,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Render one music video for ``audio_path`` into ``out_path`` (MP4) and its sidecar JSON.

    Args:
        audio_path: any file :func:`v2meow.io.audio.load_audio` reads.
        out_path: the ``.mp4`` to write; the sidecar is :func:`sidecar_path` of it. Both appear
            atomically (temporary names, then renamed: sidecar first, video last); on any error neither
            is left behind (nor a temporary file), and existing files are replaced only on success.
        seconds: render only the first ``seconds`` of the track (None: all of it).
        size: ``(width, height)``, even numbers (4:2:0 chroma).
        fps: frame rate.
        seed: seeds every random choice: the same seed and input give the same frames.
        world: force a visual world (one of :data:`WORLDS`) for the whole video; None: chosen at random
            from the music's character, and may change at section boundaries.
        audio_rate: sample rate of the AAC track (mono sources stay mono, others become stereo).
        crf: x264 quality (lower: better, larger).
        source: extra information about the source (path relative to the music folder, licence ...)
            recorded in the sidecar under ``"source"``.

    Returns the sidecar's content, plus ``"video"`` (the output path), ``"sidecar"`` and
    ``"render_seconds"`` (wall time).
    """
    from v2meow.io.audio import load_audio

    audio_path, out_path = os.fspath(audio_path), os.fspath(out_path)
    w, h = int(size[0]), int(size[1])
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise UserError(f"The video size must be even numbers of at least 16 pixels, got {w}x{h}.")
    if not (fps > 0 and math.isfinite(fps)):
        raise UserError(f"The frame rate must be positive, got {fps}.")
    if seconds is not None and not seconds > 0:
        raise UserError(f"The length per track must be positive, got {seconds} seconds.")
    if world is not None and world not in _WORLD_CLASSES:
        raise UserError(f"Unknown visual world {world!r}; choose from {', '.join(WORLDS)}.")
    if int(audio_rate) not in _AAC_RATES:
        raise UserError(f"The audio rate {audio_rate} Hz cannot be written as AAC; use one of {_AAC_RATES}.")
    folder = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(folder):
        raise UserError(f"The output folder {folder} does not exist.")
    start = time.perf_counter()
    wav = load_audio(audio_path, sample_rate=audio_rate, mono=False, duration=seconds)
    if wav.shape[0] > 2:
        wav = wav.mean(axis=0, keepdims=True)
    if wav.shape[1] < int(0.5 * audio_rate):
        raise UserError(f"The audio file {audio_path} is shorter than half a second; nothing to render.")
    peak = float(np.abs(wav).max())
    if not math.isfinite(peak):
        raise UserError(f"The audio file {audio_path} contains NaN or infinite samples.")
    wav = np.clip(wav, -1.0, 1.0).astype(np.float32)
    an = analyse_audio(wav.mean(axis=0), audio_rate)
    duration = wav.shape[1] / audio_rate
    renderer = Renderer(an, (w, h), fps, seed, duration=duration, world=world)

    stem = os.path.basename(out_path)
    fd, tmp_video = tempfile.mkstemp(prefix=".tmp-" + stem + "-", suffix=".mp4", dir=folder)
    os.close(fd)
    json_path = sidecar_path(out_path)
    try:
        _encode(tmp_video, renderer.frames(), (w, h), fps, wav, int(audio_rate), crf)
        elapsed = time.perf_counter() - start
        meta = {
            "format": FORMAT,
            "version": SYNTH_VERSION,
            "video": os.path.basename(out_path),
            "source": {"path": os.path.abspath(audio_path), **(source or {})},
            "seed": int(seed),
            "fps": float(fps),
            "size": [w, h],
            "duration": round(duration, 4),
            "frames": renderer.n,
            "seconds_limit": seconds,
            "world_forced": world,
            "audio_rate": int(audio_rate),
            "audio_channels": int(wav.shape[0]),
            "world": renderer.scenes[0]["world"],
            "world_probabilities": {k: round(float(p), 3) for k, p in zip(WORLDS, renderer.probs)},
            "scenes": renderer.scenes,
            "cuts": [{"time": round(c.time, 3), "kind": c.kind} for c in renderer.cuts],
            "analysis": an.to_json(),
        }
        meta = _json_safe(meta)
        _write_json_atomic(json_path, meta)
        publish(tmp_video, out_path)
    except BaseException as e:
        try:
            os.remove(tmp_video)
        except OSError:
            pass
        if os.path.exists(json_path) and not os.path.exists(out_path):
            try:
                os.remove(json_path)
            except OSError:
                pass
        if isinstance(e, av.error.FFmpegError):
            raise UserError(f"Could not write {out_path}: {e}.") from e
        raise
    return {**meta, "video": out_path, "sidecar": json_path, "render_seconds": round(elapsed, 3)}


# ---------------------------------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------------------------------


def list_audio(music_dir: str | os.PathLike[str]) -> list[str]:
    """Audio files under ``music_dir`` (recursively, sorted, hidden files and folders skipped)."""
    root = os.fspath(music_dir)
    if not os.path.isdir(root):
        raise UserError(f"The music folder {root} does not exist.")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS):
                found.append(os.path.join(dirpath, name))
    return sorted(found, key=lambda p: os.path.relpath(p, root))


def track_seed(seed: int, relpath: str) -> int:
    """Per-track seed from the run's seed and the track's path relative to the music folder."""
    digest = hashlib.sha256(f"{int(seed)}:{Path(relpath).as_posix()}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


_LICENCE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING", "copyright", "LICENCE", "README")


def source_info(audio_path: str, music_dir: str, license: str | None = None) -> dict[str, Any]:
    """What is known about a track's origin: its path relative to the music folder and its licence.

    The licence is, in order: ``license`` (given for the whole run); a per-track sidecar next to the
    audio (``<name>.json`` or ``<audio file>.json``; its ``"license"`` and other fields are recorded);
    an entry of a ``licenses.json`` (relative path or file name → licence) in the track's folder or
    above (up to the music folder); else the nearest licence-like file (``LICENSE``, ``COPYING``,
    Debian ``copyright``) in those folders is named as ``license_file``.
    """
    rel = os.path.relpath(audio_path, music_dir)
    info: dict[str, Any] = {"relpath": Path(rel).as_posix()}
    for cand in (os.path.splitext(audio_path)[0] + ".json", audio_path + ".json"):
        if os.path.isfile(cand):
            try:
                with open(cand, encoding="utf-8") as f:
                    extra = json.load(f)
            except (OSError, ValueError):
                extra = None
            if isinstance(extra, dict):
                info["info"] = extra
                if "license" in extra and license is None:
                    license = str(extra["license"])
            break
    root = os.path.abspath(music_dir)
    folder = os.path.dirname(os.path.abspath(audio_path))
    while license is None:
        table = os.path.join(folder, "licenses.json")
        if os.path.isfile(table):
            try:
                with open(table, encoding="utf-8") as f:
                    entries = json.load(f)
            except (OSError, ValueError):
                entries = {}
            if isinstance(entries, dict):
                key_rel = Path(os.path.relpath(audio_path, folder)).as_posix()
                for key in (key_rel, os.path.basename(audio_path), "*"):
                    if key in entries:
                        license = str(entries[key])
                        break
        if license is None and "license_file" not in info:
            for name in _LICENCE_FILES:
                if os.path.isfile(os.path.join(folder, name)):
                    info["license_file"] = os.path.join(folder, name)
                    break
        if folder == root or os.path.dirname(folder) == folder or not folder.startswith(root):
            break
        folder = os.path.dirname(folder)
    if license is not None:
        info["license"] = license
    return info


def _output_names(files: list[str], music_dir: str) -> list[str]:
    """Output paths relative to the output folder: the track's relative path with ``.mp4``; when two
    tracks share a stem (``a.ogg`` and ``a.wav``), the source extension is kept in the name."""
    stems = [os.path.splitext(os.path.relpath(p, music_dir))[0] for p in files]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s.lower()] = counts.get(s.lower(), 0) + 1
    out = []
    for p, s in zip(files, stems):
        if counts[s.lower()] > 1:
            s = s + "_" + os.path.splitext(p)[1].lstrip(".").lower()
        out.append(s + ".mp4")
    return out


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    out_path = job["out_path"]
    if os.path.exists(out_path) and os.path.exists(sidecar_path(out_path)):
        try:
            with open(sidecar_path(out_path), encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            meta = None  # an unreadable sidecar: render again
        wanted = {
            "format": FORMAT,
            "version": SYNTH_VERSION,
            "size": list(job["size"]),
            "fps": job["fps"],
            "seed": job["seed"],
            "seconds_limit": job["seconds"],
            "world_forced": job.get("world"),
        }
        if isinstance(meta, dict) and all(meta.get(k) == v for k, v in wanted.items()):
            return {**meta, "video": out_path, "sidecar": sidecar_path(out_path), "status": "skipped"}
        # Made with other settings (or by another version): replaced, atomically, by a new render.
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    try:
        meta = render_video(
            job["audio_path"],
            out_path,
            seconds=job["seconds"],
            size=job["size"],
            fps=job["fps"],
            seed=job["seed"],
            world=job.get("world"),
            source=job["source"],
        )
    except Exception as e:  # one bad file must not stop hours of rendering; reported per file
        logger.warning("Could not render %s: %s", job["audio_path"], e)
        return {"video": out_path, "source": {"path": job["audio_path"]}, "status": "failed", "error": str(e)}
    return {**meta, "status": "rendered"}


def synth_data(
    music_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    seconds: float | None = None,
    size: tuple[int, int] = (256, 144),
    fps: float = 24,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
    license: str | None = None,
    world: str | None = None,
) -> list[dict[str, Any]]:
    """Render a paired video for every audio file under ``music_dir`` into ``out_dir`` (same tree).

    Each output is ``<relative path>.mp4`` plus its sidecar ``.json`` (see :func:`render_video`). Outputs
    that exist (both files, made with the same settings) are skipped, so an interrupted run resumes;
    outputs made with other settings (size, fps, seed, ``seconds``, ``world``) are rendered again. Each
    track's seed is derived from ``seed`` and its relative path (:func:`track_seed`). ``workers > 1``
    renders in that many processes. Returns one metadata dict per track, in the sorted order of the tracks, each with
    ``"status"``: ``"rendered"``, ``"skipped"`` or ``"failed"`` (with ``"error"``; other tracks go on).
    """
    music_dir, out_dir = os.fspath(music_dir), os.fspath(out_dir)
    files = list_audio(music_dir)
    if not files:
        raise UserError(f"No audio files ({', '.join(AUDIO_EXTENSIONS)}) were found under {music_dir}.")
    if workers < 1:
        raise UserError(f"The number of workers must be at least 1, got {workers}.")
    if world is not None and world not in WORLDS:
        raise UserError(f"Unknown visual world {world!r}; choose from {', '.join(WORLDS)}.")
    os.makedirs(out_dir, exist_ok=True)
    jobs = []
    for path, name in zip(files, _output_names(files, music_dir)):
        src = source_info(path, music_dir, license)
        jobs.append(
            {
                "audio_path": path,
                "out_path": os.path.join(out_dir, name),
                "seconds": seconds,
                "size": (int(size[0]), int(size[1])),
                "fps": float(fps),
                "seed": track_seed(seed, src["relpath"]),
                "world": world,
                "source": src,
            }
        )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="track", desc="synth-data")
    results: dict[str, dict[str, Any]] = {}
    try:
        if workers == 1 or len(jobs) == 1:
            for job in jobs:
                results[job["out_path"]] = _run_job(job)
                if bar is not None:
                    bar.update(1)
        else:
            # forkserver: workers are forked from a clean server process (no threads or locks inherited
            # from the caller, e.g. torch's) that imported the analysis libraries once, so each worker
            # does not pay their seconds-long import again. spawn where forkserver does not exist.
            if "forkserver" in multiprocessing.get_all_start_methods():
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["v2meow.data.synth", "librosa.beat", "librosa.feature", "librosa.onset"])
            else:
                ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(workers, len(jobs))) as pool:
                for res in pool.imap_unordered(_run_job, jobs):
                    results[res["video"]] = res
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return [results[job["out_path"]] for job in jobs]
