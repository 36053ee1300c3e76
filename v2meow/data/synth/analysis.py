"""Music analysis for the synthetic videos: beats and tempo, onsets, loudness, brightness, sections, key and
mode, and the character of the track and of each section (:class:`TrackAnalysis`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

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
_KEYS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")




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
    """Best key (Krumhansl-Kessler correlation, :func:`v2meow.text.captions.key_scores`), major/minor, and a
    confidence in [0, 1]."""
    from v2meow.text.captions import key_scores

    c = np.asarray(chroma_mean, dtype=np.float64)
    if not np.any(c > 0) or c.std() < 1e-9:
        return "C", "major", 0.0
    scores = key_scores(c)
    best = int(np.argmax(scores))  # majors first, so the first of equal scores is a major key, as before
    minor = best >= 12
    other = scores[:12].max() if minor else scores[12:].max()
    return _KEYS[best % 12], "minor" if minor else "major", float(np.clip((scores[best] - other) * 5.0, 0.0, 1.0))


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
