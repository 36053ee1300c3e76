"""Captions for music with no human description: what is known about a track, in several phrasings.

Three sources of facts, per training crop:

- labels shipped with the music (``sources.json`` ``labels``): mood, style, BPM and key of the immich tracks; for
  music rendered from scores, the exact instruments, tempo and key used (``instruments``, ``bpm``/``tempo``,
  ``key``; also ``genre``, ``composer`` when given);
- properties measured here (:func:`analyse_track`): the tempo (librosa's onset autocorrelation), major/minor from
  the chroma (Krumhansl-Schmuckler key profiles), and per 5 s block the loudness (RMS dB), the brightness
  (spectral centroid) and the note density (onsets per second). Block values are turned into words with the
  training set's terciles (:class:`Thresholds`), so "bright" means brighter than two thirds of the music here;
- a hint from the source (``SOURCE_HINTS``): "orchestral fantasy game soundtrack" for Wesnoth's music, and so on.

:func:`sample_caption` draws one phrasing (sentence, tag list, short or descriptive; each attribute kept with a
probability, so the model also learns from partial prompts, as users write them) from a seeded generator;
:func:`caption_variants` gives a fixed set of phrasings for evaluation.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

BLOCK_SECONDS = 5.0
ANALYSIS_VERSION = "1"

SOURCE_HINTS: dict[str, tuple[str, ...]] = {
    "wesnoth-1.16-music": ("orchestral fantasy game soundtrack", "cinematic orchestral music",
                           "epic orchestral score"),
    "supertux-data": ("platformer video game music", "synthesized video game music", "retro game soundtrack"),
    "supertuxkart-data": ("kart racing game music", "racing video game soundtrack", "arcade racing music"),
    "extremetuxracer-data": ("winter racing game music", "racing video game soundtrack"),
    "frozen-bubble-data": ("arcade puzzle game music", "retro arcade game tune"),
    "immich-memories-music": ("background music", "instrumental background music", "music for a photo slideshow"),
}
DEFAULT_HINTS = ("instrumental music", "music")
STYLE_WORDS = {"acoustic": ("acoustic", "acoustic instruments"), "electronic": ("electronic", "synthesizers")}
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Krumhansl-Kessler key profiles
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass
class TrackAnalysis:
    """Measured properties of one track: global tempo and key, and per 5 s block loudness, brightness, density."""

    tempo: float
    key: str  # e.g. "D minor"
    mode_confidence: float  # correlation margin of the best key of the chosen mode over the other mode
    rms_db: list[float] = field(default_factory=list)
    centroid: list[float] = field(default_factory=list)  # Hz
    onset_rate: list[float] = field(default_factory=list)  # onsets per second

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrackAnalysis:
        return cls(**d)

    def block_mean(self, name: str, t0: float, t1: float) -> float:
        """Mean of block series ``name`` over the blocks overlapping ``[t0, t1)`` seconds."""
        vals = getattr(self, name)
        a = min(len(vals) - 1, max(0, int(t0 // BLOCK_SECONDS)))
        b = min(len(vals), max(a + 1, int(np.ceil(t1 / BLOCK_SECONDS))))
        return float(np.mean(vals[a:b]))


def key_scores(chroma_mean: np.ndarray) -> np.ndarray:
    """The correlation of a mean chroma vector ``[12]`` (row 0 = C) with each key's profile: ``[24]``, C to B major
    then C to B minor (NaN when the chroma is constant)."""
    c = np.asarray(chroma_mean, dtype=np.float64)
    return np.array([np.corrcoef(c, np.roll(prof, k))[0, 1] for prof in (MAJOR_PROFILE, MINOR_PROFILE)
                     for k in range(12)])


def estimate_key(chroma_mean: np.ndarray) -> tuple[str, float]:
    """Key (e.g. ``"A minor"``) from a mean chroma vector ``[12]`` (row 0 = C), and the mode's confidence."""
    c = np.asarray(chroma_mean, dtype=np.float64)
    if not np.isfinite(c).all() or c.std() < 1e-9:
        return "C major", 0.0
    scores = key_scores(c)
    best = int(np.argmax(scores))  # the first of equal scores, majors first
    minor = best >= 12
    other = scores[:12].max() if minor else scores[12:].max()
    return f"{KEY_NAMES[best % 12]} {'minor' if minor else 'major'}", float(scores[best] - other)


def analyse_track(wav: np.ndarray, sample_rate: int) -> TrackAnalysis:
    """Measure ``wav [N]`` (mono float): tempo, key and mode, and loudness/brightness/onset rate per 5 s block."""
    import librosa

    y = np.asarray(wav, dtype=np.float32)
    hop, n_fft = 512, 2048
    spec = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)) ** 2  # [F, T]
    mel = librosa.feature.melspectrogram(S=spec, sr=sample_rate, n_mels=64)
    env = librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=sample_rate, hop_length=hop)
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=env, sr=sample_rate, hop_length=hop))[0])
    chroma = librosa.feature.chroma_stft(S=spec, sr=sample_rate, hop_length=hop)
    key, conf = estimate_key(chroma.mean(1))
    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    mag = np.sqrt(spec)
    power = spec.sum(0)
    centroid = (freqs[:, None] * mag).sum(0) / np.maximum(mag.sum(0), 1e-12)  # per frame, as librosa's
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sample_rate, hop_length=hop, units="frames")
    frame_rate = sample_rate / hop
    per_block = max(1, int(round(BLOCK_SECONDS * frame_rate)))
    n_blocks = max(1, int(np.ceil(spec.shape[1] / per_block)))
    rms_db, cen, rate = [], [], []
    for b in range(n_blocks):
        sl = slice(b * per_block, (b + 1) * per_block)
        x = y[b * per_block * hop: (b + 1) * per_block * hop]
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if x.size else 0.0
        rms_db.append(round(20 * np.log10(max(rms, 1e-5)), 2))
        audible = power[sl] > 1e-8 * max(float(power.max()), 1e-12)  # silent frames have no brightness
        cen.append(round(float(centroid[sl][audible].mean()) if audible.any() else 0.0, 1))
        n_frames = max(1, min(per_block, spec.shape[1] - b * per_block))
        rate.append(round(float(((onsets >= b * per_block) & (onsets < (b + 1) * per_block)).sum())
                          / (n_frames / frame_rate), 3))
    return TrackAnalysis(tempo=round(tempo, 2), key=key, mode_confidence=round(conf, 4), rms_db=rms_db,
                         centroid=cen, onset_rate=rate)


@dataclass
class Thresholds:
    """Tercile boundaries of the training blocks: (low, high) per measured property."""

    rms_db: tuple[float, float] = (-30.0, -20.0)
    centroid: tuple[float, float] = (1200.0, 2200.0)
    onset_rate: tuple[float, float] = (2.0, 4.0)

    @classmethod
    def fit(cls, analyses: list[TrackAnalysis]) -> Thresholds:
        def terciles(name: str) -> tuple[float, float]:
            v = np.concatenate([np.asarray(getattr(a, name), dtype=np.float64) for a in analyses])
            lo, hi = np.quantile(v, [1 / 3, 2 / 3])
            return round(float(lo), 3), round(float(hi), 3)

        return cls(rms_db=terciles("rms_db"), centroid=terciles("centroid"), onset_rate=terciles("onset_rate"))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Thresholds:
        return cls(**{k: tuple(v) for k, v in d.items()})


def _level(x: float, bounds: tuple[float, float], words: tuple[str | None, str | None, str | None]) -> str | None:
    return words[0] if x < bounds[0] else (words[2] if x >= bounds[1] else words[1])


def tempo_word(bpm: float) -> str:
    if bpm < 80:
        return "slow"
    if bpm < 110:
        return "mid-tempo"
    if bpm < 140:
        return "upbeat"
    return "fast"


def track_facts(entry: dict[str, Any], analysis: TrackAnalysis | None, thresholds: Thresholds,
                t0: float = 0.0, t1: float | None = None) -> dict[str, Any]:
    """What is known about ``[t0, t1)`` of a track: ``entry`` is its ``sources.json`` record."""
    labels = dict(entry.get("labels") or {})
    facts: dict[str, Any] = {
        "mood": labels.get("mood"),
        "style": labels.get("style"),
        "genre": labels.get("genre"),
        "composer": labels.get("composer"),
        "instruments": list(labels.get("instruments") or []),
        "hints": SOURCE_HINTS.get(str(entry.get("package", "")), DEFAULT_HINTS),
        "labelled_tempo": False,
    }
    bpm = labels.get("bpm", labels.get("tempo"))
    if bpm is not None:
        facts["bpm"], facts["labelled_tempo"] = float(bpm), True
    elif analysis is not None:
        facts["bpm"] = float(analysis.tempo)
    key = labels.get("key")
    if key:
        facts["key"], facts["mode"] = str(key), ("minor" if "minor" in str(key).lower() else "major")
    elif analysis is not None and analysis.mode_confidence >= 0.05:
        facts["mode"] = analysis.key.split()[-1]
    if analysis is not None:
        t1 = t1 if t1 is not None else len(analysis.rms_db) * BLOCK_SECONDS
        facts["loudness"] = _level(analysis.block_mean("rms_db", t0, t1), thresholds.rms_db, ("quiet", None, "loud"))
        facts["brightness"] = _level(analysis.block_mean("centroid", t0, t1), thresholds.centroid,
                                     ("dark", "warm", "bright"))
        facts["density"] = _level(analysis.block_mean("onset_rate", t0, t1), thresholds.onset_rate,
                                  ("sparse", None, "busy"))
    return facts


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def phrase(facts: dict[str, Any], rng: np.random.Generator, form: str, keep: float = 1.0) -> str:
    """One caption of ``facts`` in ``form`` (``sentence`` | ``tags`` | ``short`` | ``descriptive``); each optional
    attribute is kept with probability ``keep``."""

    def k() -> bool:
        return keep >= 1.0 or rng.random() < keep

    hint = str(rng.choice(facts["hints"]))
    style = facts.get("style")
    style_word = str(rng.choice(STYLE_WORDS.get(style, (style,)))) if style else None
    bpm = facts.get("bpm")
    tempo = tempo_word(bpm) if bpm else None
    bpm_text = None
    if bpm:
        b = int(round(bpm)) if facts.get("labelled_tempo") else int(5 * round(bpm / 5))
        bpm_text = f"{b} BPM" if facts.get("labelled_tempo") else f"around {b} BPM"
    key = facts.get("key")
    mode = facts.get("mode")
    instruments = facts.get("instruments") or []
    adjs = [w for w in (facts.get("mood"), tempo, facts.get("loudness"), facts.get("brightness"),
                        facts.get("density")) if w and k()]
    if form == "tags":
        tags = adjs + [x for x in (style_word, hint, bpm_text if k() else None,
                                   (key or (f"{mode} key" if mode else None)) if k() else None,
                                   facts.get("genre"), facts.get("composer")) if x]
        tags += [str(i) for i in instruments if k()]
        rng.shuffle(tags)
        return ", ".join(tags)
    if form == "short":
        first = facts.get("mood") or tempo or facts.get("brightness") or ""
        return " ".join(w for w in (first, style if style and k() else None, hint) if w)
    if form == "descriptive":
        parts = [hint[0].upper() + hint[1:]]
        feel = [w for w in (facts.get("mood"), facts.get("loudness"), facts.get("brightness")) if w and k()]
        if feel:
            parts.append(f"that sounds {_join(feel)}")
        tail = []
        if tempo and k():
            tail.append(f"{tempo} tempo" + (f" ({bpm_text})" if bpm_text and k() else ""))
        if (key or mode) and k():
            tail.append(f"in {key}" if key else f"in a {mode} key")
        if instruments and k():
            tail.append(f"played by {_join([str(i) for i in instruments])}")
        if style_word and k():
            tail.append(f"with {style_word}" if style_word.endswith("s") else f"{style_word} sound")
        return " ".join(parts) + (", " + ", ".join(tail) if tail else "")
    # sentence
    noun = hint if not style_word or style_word.endswith("s") else f"{style_word} {hint}"
    head = " ".join([", ".join(adjs), noun]) if adjs else noun
    text = f"{_article(head)} {head}"
    if bpm_text and k():
        text += f" at {bpm_text}"
    if (key or mode) and k():
        text += f" in {key}" if key else f" in a {mode} key"
    if instruments and k():
        text += f", played by {_join([str(i) for i in instruments])}"
    if style_word and style_word.endswith("s") and k():
        text += f", with {style_word}"
    return text[0].upper() + text[1:]


FORMS = ("sentence", "tags", "short", "descriptive")


def sample_caption(facts: dict[str, Any], rng: np.random.Generator, keep: float = 0.7) -> str:
    """One random phrasing (form and kept attributes drawn from ``rng``)."""
    return phrase(facts, rng, str(rng.choice(FORMS)), keep=keep)


def caption_variants(facts: dict[str, Any], name: str = "") -> list[str]:
    """Fixed phrasings for evaluation: every form with all attributes, seeded by the track's ``name``."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
    return [phrase(facts, np.random.default_rng(seed + i), form, keep=1.0) for i, form in enumerate(FORMS)]


__all__ = ["BLOCK_SECONDS", "FORMS", "SOURCE_HINTS", "Thresholds", "TrackAnalysis", "analyse_track",
           "caption_variants", "estimate_key", "phrase", "sample_caption", "tempo_word", "track_facts"]
