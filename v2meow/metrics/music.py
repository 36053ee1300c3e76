"""Simple descriptors of what a soundtrack sounds like, to set beside real music and beside another model's.

A beat or tempo measure says nothing of the sound: music that thumps on every beat with noise between scores
well on both. These say whether it is tonal, pulsed, noisy, how loud, and how much of it is boom:

- ``tonal_clarity``: the best correlation of the mean chroma with a key profile (real music about 0.76);
- ``pulse_clarity``: the highest autocorrelation of the onset envelope at lags of 0.25–2 s;
- ``flatness``: mean spectral flatness (broadband noise; real music about 0.005);
- ``lufs``: integrated loudness (ITU-R BS.1770);
- ``boom_db``: the 31–62 Hz octave's energy minus the 250–500 Hz octave's, in dB.

:func:`harmonic_shares` says, stretch by stretch, how much of the sound is pitched: drums playing alone are under
:data:`DRUMS_ALONE` (a few percent), music with drums over 20 %.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DRUMS_ALONE", "descriptors", "drums_alone", "harmonic_shares", "sound_descriptors"]

DRUMS_ALONE = 0.10  # a stretch whose harmonic share is under this is drums (or noise) alone


def descriptors(wav: np.ndarray, sr: int) -> dict[str, float]:
    """``tonal_clarity``, ``pulse_clarity`` and ``flatness`` of mono ``wav [N]``."""
    import librosa

    from v2meow.text.captions import key_scores

    y = np.asarray(wav, dtype=np.float32)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, n_fft=2048, hop_length=512).mean(axis=1)
    best = float(np.max(key_scores(chroma)))
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=256)
    env = env - env.mean()
    ac = np.correlate(env, env, "full")[len(env) - 1:]
    ac = ac / max(ac[0], 1e-9)
    fps = sr / 256
    lags = slice(int(0.25 * fps), int(2.0 * fps))
    flat = float(np.mean(librosa.feature.spectral_flatness(y=y, n_fft=2048, hop_length=512)))
    return {"tonal_clarity": best, "pulse_clarity": float(ac[lags].max()), "flatness": flat}


def _band_db(power: np.ndarray, freqs: np.ndarray, low: float, high: float) -> float:
    return float(10.0 * np.log10(power[(freqs >= low) & (freqs < high)].sum() + 1e-20))


def sound_descriptors(wav: np.ndarray, sr: int) -> dict[str, float]:
    """:func:`descriptors` plus ``lufs`` and ``boom_db`` of mono ``wav [N]``."""
    from v2meow.io.loudness import integrated_loudness

    y = np.asarray(wav, dtype=np.float64)
    power = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1.0 / sr)
    out = descriptors(wav, sr)
    out["lufs"] = float(integrated_loudness(y, sr))
    out["boom_db"] = _band_db(power, freqs, 31.25, 62.5) - _band_db(power, freqs, 250.0, 500.0)
    return out


def harmonic_shares(wav: np.ndarray, sr: int, seconds: float = 2.5) -> np.ndarray:
    """The harmonic part's share of the power of each whole ``seconds`` of mono ``wav [N]`` (median-filter
    harmonic/percussive separation of the power spectrogram: Fitzgerald's, librosa's ``hpss``) -> ``[n]``.

    On the corpus's renders, 2.5 s of drums playing alone score 0.01-0.06 and music over drums 0.2-0.97."""
    import librosa

    hop = 256
    power = np.abs(librosa.stft(np.asarray(wav, dtype=np.float32), n_fft=1024, hop_length=hop)) ** 2
    harmonic, percussive = librosa.decompose.hpss(power, kernel_size=31)
    k = max(1, int(round(seconds * sr / hop)))
    n = power.shape[1] // k
    h = harmonic[:, : n * k].reshape(len(harmonic), n, k).sum(axis=(0, 2))
    p = percussive[:, : n * k].reshape(len(percussive), n, k).sum(axis=(0, 2))
    return h / np.maximum(h + p, 1e-12)


def drums_alone(wav: np.ndarray, sr: int, seconds: float = 2.5) -> np.ndarray:
    """Which whole ``seconds`` of ``wav`` are drums alone (:func:`harmonic_shares` under :data:`DRUMS_ALONE`)."""
    return harmonic_shares(wav, sr, seconds) < DRUMS_ALONE


def longest_run(flags) -> int:
    """The length of the longest run of true values in ``flags`` (e.g. :func:`drums_alone`'s stretches)."""
    run = longest = 0
    for f in flags:
        run = run + 1 if f else 0
        longest = max(longest, run)
    return longest
