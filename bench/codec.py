"""What the codec does to music, beside reference points: distance by number of levels, a hum at the frame rate,
band energies, levels and clipping, on held-out works and on a held-out source.

    python -m bench.codec                                   # shipped tokenizers, default data folders
    python -m bench.codec --model runs/codec --data data_cache/corpus --source data_cache/music

``--model``: a tokenizer directory (``tokenizers.json``; default: the shipped one) or a codec training run (its
latest checkpoint). ``--data``: a music folder whose ``sources.json`` marks held-out tracks (the corpus of
``scripts/build_corpus.py`` holds out whole works); ``--source``: music from a source the codec never heard (the
Debian game music of ``scripts/get_music.py``), every file of it. Each set is cut into ``--crops`` evenly spaced
crops of ``--seconds`` per track, at the level the music has, and every row is computed on the same crops:

- the codec decoding its first 1, 2, 4, ... and all levels; the same codes decoded with the decoder's magnitudes
  and a non-learned phase (frame body): Griffin-Lim from the decoder's phase, and phase-gradient integration;
- references: the input low-passed at 4 kHz (8th-order Butterworth, zero phase); the input's exact STFT
  magnitudes (n_fft 1024, hop 256) with uniformly random phase; the input's exact magnitudes in the codec's own
  frames with phase-gradient phase (frame body: the best a magnitude-only decoder with that phase could do); an
  80-band log-mel spectrogram inverted by least squares and 64 Griffin-Lim iterations.

Columns (v2meow.metrics.sound): MS-STFT, the mean L1 distance of linear plus of log magnitudes summed over FFT
sizes 256-2048 (hop a quarter, floor 1e-5); mel, the training loss's multi-scale log-mel L1; band error, the mean
absolute difference of octave-band energies (31 Hz-8 kHz) in dB; hum, the share of power at 45-55 Hz over the
input's (the codec's frame rate is 50 Hz); gain, output minus input RMS in dB; clipped, the share of output samples
at full scale (|y| >= 0.999) before any clamp (the checks line adds the file stage `v2meow detokenize` writes
through: peaks over -0.1 dBFS limited, :func:`v2meow.io.limiter.under_full_scale`). Then a level sweep: the same
crops scaled to several RMS levels (and clipped at full scale, as a file would be), the codec's gain, added
clipping and hum at each level. Last, the band check: the same crops as music sampled at 44.1 kHz reaches the
codec (up to 44.1 kHz and back with soxr, whose anti-alias filter empties the band above about 7.3 kHz) and
low-passed at 6 kHz (a lossy codec's cutoff), each scored against that input: a codec whose level reading depends
on the empty top band loses gain here.

Pitch: a column ``fine dB``, the distance of level-normalised 1 Hz-resolution spectra at 30 Hz-1 kHz
(v2meow.metrics.sound.fine_spectrum_db), and a table of steady harmonic tones (E1 to A5, 3 s each, -18 dBFS): the
share of the output's power within 1.5 Hz of the tone's partials. A decoder that puts partials on a grid (its STFT
bins, multiples of its frame rate) scores well on MS-STFT, whose bins are 8-60 Hz wide, and fails here.

Rhythm: a column ``beat F``, per crop the F-measure (±70 ms) of the beats the evaluation's tracker
(v2meow.metrics.beats.track_beats, librosa) finds in the output against those it finds in the input. The gate's
beat measures go through that tracker, and a decoder that changes what it hears changes them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from v2meow.io.limiter import under_full_scale
from v2meow.metrics.sound import (
    band_power_share,
    clipped_fraction,
    fine_spectrum_db,
    harmonic_tone,
    msstft_l1,
    octave_band_db,
    octave_bands,
    partial_share,
    rms_dbfs,
    scale_to_dbfs,
)
from v2meow.tokenizers.codec.losses import MultiScaleMelLoss
from v2meow.tokenizers.mel import mel_filterbank

ROOT = Path(__file__).resolve().parents[1]


# ---- references -----------------------------------------------------------------------------------------


def lowpass(wav: Tensor, sample_rate: int, cutoff: float = 4000.0) -> Tensor:
    """``wav [B, T]`` low-passed at ``cutoff`` Hz (zero-phase 8th-order Butterworth)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(8, cutoff, btype="low", fs=sample_rate, output="sos")
    return torch.from_numpy(sosfiltfilt(sos, wav.double().numpy(), axis=-1).copy()).float()


def random_phase(wav: Tensor, n_fft: int = 1024, hop: int = 256, seed: int = 0) -> Tensor:
    """``wav [B, T]`` rebuilt from its exact STFT magnitudes with uniformly random phase."""
    window = torch.hann_window(n_fft)
    spec = torch.stft(wav, n_fft, hop, window=window, return_complex=True)
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(spec.shape, generator=g) * 2 * math.pi
    return torch.istft(torch.polar(spec.abs(), phase), n_fft, hop, window=window, length=wav.shape[-1])


def gradient_phase(wav: Tensor, config) -> Tensor:
    """``wav [B, T]`` rebuilt from its exact STFT magnitudes (the codec's frames) with the phase that
    phase-gradient integration finds for them: what a perfect magnitude decoder with that non-learned phase
    would give."""
    from v2meow.tokenizers.codec.soundstream import istft_same, phase_from_gradient, stft_same

    window = torch.hann_window(config.n_fft)
    hop = config.frame_hop
    pad = (-wav.shape[-1]) % hop
    mag = stft_same(torch.nn.functional.pad(wav, (0, pad)), config.n_fft, hop, window).abs()
    out = istft_same(mag * phase_from_gradient(mag, config.n_fft, hop), config.n_fft, hop, window)
    return out[:, : wav.shape[-1]]


def griffin_lim(mag: Tensor, n_fft: int, hop: int, length: int, iters: int = 64, seed: int = 0) -> Tensor:
    """Magnitudes ``[B, F, frames]`` → ``wav [B, length]`` by Griffin-Lim with momentum 0.99 (fast GL)."""
    window = torch.hann_window(n_fft)
    g = torch.Generator().manual_seed(seed)
    angles = torch.polar(torch.ones_like(mag), torch.rand(mag.shape, generator=g) * 2 * math.pi)
    prev = torch.zeros_like(angles)
    for _ in range(iters):
        wav = torch.istft(mag * angles, n_fft, hop, window=window, length=length)
        rebuilt = torch.stft(wav, n_fft, hop, window=window, return_complex=True)
        accel = rebuilt - 0.99 * prev
        prev = rebuilt
        angles = accel / accel.abs().clamp_min(1e-8)
    return torch.istft(mag * angles, n_fft, hop, window=window, length=length)


def mel_griffin_lim(wav: Tensor, sample_rate: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 80,
                    iters: int = 64) -> Tensor:
    """``wav [B, T]`` → log-mel (80 bands) → magnitudes by non-negative least squares → Griffin-Lim."""
    window = torch.hann_window(n_fft)
    mag = torch.stft(wav, n_fft, hop, window=window, return_complex=True).abs()  # [B, F, frames]
    fb = torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels))  # [M, F]
    mel = torch.einsum("mf,bft->bmt", fb, mag)
    mel = mel.clamp_min(1e-5).log().exp()  # the log-mel a vocoder would be given, floor included
    # Least-squares inverse of the filterbank, then projected to non-negative magnitudes.
    inv = torch.linalg.pinv(fb)  # [F, M]
    est = torch.einsum("fm,bmt->bft", inv, mel).clamp_min(0.0)
    return griffin_lim(est, n_fft, hop, wav.shape[-1], iters)


# ---- data -----------------------------------------------------------------------------------------------


def heldout_crops(data: Path, sample_rate: int, crops: int, seconds: float, max_tracks: int = 0,
                  split: str = "heldout") -> tuple[Tensor, list[str], bool]:
    """Evenly spaced crops ``[N, T]`` of the ``split`` tracks of ``data`` (silent crops dropped), names, and
    whether a ``sources.json`` said which tracks are held out (without one every file is taken)."""
    from v2meow.io.audio import load_audio
    from v2meow.train.tokenizers import SOURCES_FILE, list_audio

    has_sources = (data / SOURCES_FILE).is_file()
    files = list_audio(data, split) if has_sources else list_audio(data, "all")
    if max_tracks and len(files) > max_tracks:  # evenly over the list (it is sorted by source, then name)
        files = [files[round(i * (len(files) - 1) / (max_tracks - 1))] for i in range(max_tracks)] \
            if max_tracks > 1 else files[:1]
    n = round(seconds * sample_rate)
    out, names = [], []
    for f in files:
        wav = load_audio(f, sample_rate)
        if wav.shape[0] < n:
            continue
        for i in range(crops):
            start = round((i + 1) / (crops + 1) * (wav.shape[0] - n))
            x = wav[start : start + n]
            if float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) < 1e-3:
                continue
            out.append(torch.from_numpy(x.copy()))
            names.append(f"{f.relative_to(data)}@{start / sample_rate:.1f}s")
    if not out:
        raise SystemExit(f"No {split} audio of at least {seconds} s found in {data}.")
    return torch.stack(out), names, has_sources


def load_codec(model: str | None):
    """A codec from a tokenizer directory (default: the shipped one) or a codec training run."""
    from v2meow.train.checkpoint import latest_checkpoint
    from v2meow.train.tokenizers import load_codec_run

    if model and latest_checkpoint(model) is not None:
        codec, state = load_codec_run(model)
        return codec, {"source": f"run {model}", "step": state.get("step"), "coarse_levels": None}
    from v2meow.tokenizers.default import load_tokenizers

    tok = load_tokenizers(model)
    return tok.codec, {"source": model or "shipped tokenizers", "coarse_levels": tok.coarse_levels,
                       "step": tok.info.get("training", {}).get("codec", {}).get("step")}


# ---- the benchmark --------------------------------------------------------------------------------------

HUM_BAND = (45.0, 55.0)
SWEEP_DBFS = (-36.0, -24.0, -12.0)
# E1, A1, E2, A2, A3, A4, A5: none on the 12.5 Hz grid of the shipped codec's bins or on multiples of its 50 Hz
TONES = (41.2, 55.0, 82.4, 110.0, 220.0, 440.0, 880.0)
TONE_SECONDS = 3.0


def _levels_name(n: int) -> str:
    return f"codec, {n} level{'s' if n > 1 else ''}"


def _random_fine_name(coarse: int, levels: int) -> str:
    return f"codec, {coarse} + {levels - coarse} random levels (no stage 3)"


class Scores:
    """Per-crop measures of each reconstruction against its input, batch by batch."""

    def __init__(self, sample_rate: int, beats: bool = False) -> None:
        self.sr = sample_rate
        self.mel = MultiScaleMelLoss(sample_rate)
        self.rows: dict[str, dict[str, list[Tensor]]] = {}
        self.beats = beats  # also the beat tracker's agreement with itself on the input (column "beat F")
        self._ref: Tensor | None = None
        self._ref_beats: list[np.ndarray] = []

    def beat_f(self, est: Tensor, ref: Tensor) -> Tensor:
        """Per crop, the F-measure (±70 ms) of the beats ``librosa`` tracks in ``est`` against those it tracks in
        ``ref``: how much of the music's pulse, as the evaluation's beat tracker hears it, a reconstruction keeps."""
        from v2meow.metrics.beats import beat_f_measure, track_beats

        if ref is not self._ref:  # the input's beats once per batch, for every row scored against it
            self._ref, self._ref_beats = ref, [track_beats(r.numpy(), self.sr) for r in ref]
        return torch.tensor([beat_f_measure(b, track_beats(e.numpy(), self.sr)) for e, b in zip(est, self._ref_beats)])

    def update(self, name: str, est: Tensor, ref: Tensor) -> None:
        est = est[:, : ref.shape[-1]].float()
        hum = HUM_BAND
        m = {
            "stft": msstft_l1(est, ref),
            "fine_db": fine_spectrum_db(est, ref, self.sr),
            "mel": torch.stack([self.mel(est[i : i + 1], ref[i : i + 1]) for i in range(ref.shape[0])]),
            "band_db": octave_band_db(est, self.sr) - octave_band_db(ref, self.sr),
            "hum_out": band_power_share(est, self.sr, *hum),
            "hum_in": band_power_share(ref, self.sr, *hum),
            "gain": rms_dbfs(est) - rms_dbfs(ref),
            "clip_out": clipped_fraction(est),
            "clip_in": clipped_fraction(ref),
        }
        # as `v2meow detokenize` writes it: peaks over -0.1 dBFS limited instead of clipped by the file
        written = torch.stack([torch.from_numpy(under_full_scale(e.numpy(), self.sr)) for e in est])
        m["peak_dbfs"] = 20.0 * torch.log10(est.abs().amax(-1).double().clamp_min(1e-12)).float()
        m["clip_written"] = clipped_fraction(written)
        m["limited"] = (written != est).double().mean(-1).float()
        if self.beats:
            m["beat_f"] = self.beat_f(est, ref)
        row = self.rows.setdefault(name, {})
        for k, v in m.items():
            row.setdefault(k, []).append(v.float())

    def cat(self, name: str, key: str) -> Tensor:
        return torch.cat(self.rows[name][key])

    def summary(self, name: str) -> dict[str, float]:
        c = {k: self.cat(name, k) for k in self.rows[name]}
        n = len(c["stft"])
        return {
            "stft": float(c["stft"].mean()),
            "stft_sem": float(c["stft"].std() / math.sqrt(n)) if n > 1 else 0.0,
            "mel": float(c["mel"].mean()),
            "fine_db": float(c["fine_db"].mean()),
            "band_err_db": float(c["band_db"].abs().mean()),
            "band_bias_db": [float(x) for x in c["band_db"].mean(0)],
            "hum_ratio": float(c["hum_out"].mean() / c["hum_in"].mean().clamp_min(1e-12)),
            "hum_out": float(c["hum_out"].mean()),
            "hum_in": float(c["hum_in"].mean()),
            "gain_db": float(c["gain"].mean()),
            "clipped_out": float(c["clip_out"].mean()),
            "clipped_in": float(c["clip_in"].mean()),
            "clipped_written": float(c["clip_written"].mean()),
            "over_full_scale": float((c["peak_dbfs"] > 0).float().mean()),  # share of crops peaking past it
            "peak_max_dbfs": float(c["peak_dbfs"].max()),
            "limited": float(c["limited"].mean()),
            **({"beat_f": float(c["beat_f"].mean())} if "beat_f" in c else {}),
        }

    def paired(self, a: str, b: str) -> dict[str, float]:
        """Mean and standard error over crops of the per-crop MS-STFT and fine-spectrum differences ``a - b`` (same
        crops), and the share of crops where ``a`` is closer in MS-STFT."""
        out: dict[str, float] = {}
        for key in ("stft", "fine_db", "beat_f"):
            if key not in self.rows[a]:
                continue
            d = (self.cat(a, key) - self.cat(b, key)).double()
            out.update({key: float(d.mean()), f"{key}_se": float(d.std() / math.sqrt(len(d))) if len(d) > 1 else 0.0})
            if key == "stft":
                out["wins"] = float((d < 0).double().mean())
        return out


def band_limited(ref: Tensor, sr: int) -> dict[str, Tensor]:
    """``ref [B, T]`` as band-limited music reaches the codec: through 44.1 kHz and back (soxr), low-passed at 6 kHz."""
    from v2meow.io.audio import resample

    x = ref.numpy()
    via = np.stack([resample(resample(r, sr, 44100), 44100, sr)[: x.shape[-1]] for r in x])
    return {"resampled from 44.1 kHz": torch.from_numpy(via), "low-passed at 6 kHz": lowpass(ref, sr, 6000.0)}


@torch.no_grad()
def measure(codec, info: dict, wav: Tensor, batch: int, gl_iters: int = 32, against=None) -> dict:
    """Every row and the level sweep on crops ``wav [N, T]``; ``against``: ``(label, codec)``, another codec
    (all its levels) as one more reference row, so the paired table compares the two crop by crop."""
    sr = codec.sample_rate
    levels = sorted({n for n in (1, 2, 4, info.get("coarse_levels") or 1, codec.num_levels) if n <= codec.num_levels})
    scores = Scores(sr, beats=True)
    sweep = Scores(sr)
    band = Scores(sr)
    speed: dict[int, float] = {}
    gl_name = f"codec, {codec.num_levels} levels, Griffin-Lim phase ({gl_iters} it.)"
    pg_name = f"codec, {codec.num_levels} levels, phase-gradient phase"
    for start in range(0, wav.shape[0], batch):
        ref = wav[start : start + batch]
        t = time.perf_counter()
        codes = codec.encode(ref)
        t_enc = time.perf_counter() - t
        for n in levels:
            t = time.perf_counter()
            recon = codec.decode(codes[:, :n])
            speed[n] = speed.get(n, 0.0) + t_enc + time.perf_counter() - t
            scores.update(_levels_name(n), recon, ref)
        coarse = info.get("coarse_levels") or codec.num_levels
        if coarse < codec.num_levels:  # what a stage 3 that learnt nothing adds to the coarse levels
            noise = torch.randint(0, codec.codebook_size, codes[:, coarse:].shape,
                                  generator=torch.Generator().manual_seed(start))
            scores.update(_random_fine_name(coarse, codec.num_levels), codec.decode(torch.cat(
                [codes[:, :coarse], noise.to(codes)], 1)), ref)
        if getattr(codec.config, "body", None) == "frame":
            scores.update(gl_name, codec.decode_magnitudes(codes, gl_iters), ref)
            scores.update(pg_name, codec.decode_magnitudes(codes, 0, start="gradient"), ref)
            scores.update("exact STFT magnitude, phase-gradient phase", gradient_phase(ref, codec.config), ref)
        scores.update("input low-passed at 4 kHz", lowpass(ref, sr), ref)
        scores.update("exact STFT magnitude, random phase", random_phase(ref, seed=start), ref)
        scores.update("log-mel (80) + Griffin-Lim (64 it.)", mel_griffin_lim(ref, sr), ref)
        if against is not None:
            scores.update(against[0], against[1].decode(against[1].encode(ref)), ref)
        for level in SWEEP_DBFS:
            x = scale_to_dbfs(ref, level).clamp(-1.0, 1.0)
            sweep.update(f"{level:g} dBFS", codec.decode(codec.encode(x)), x)
        for name, x in band_limited(ref, sr).items():
            band.update(name, codec.decode(codec.encode(x)), x)
    rows = {name: scores.summary(name) for name in scores.rows}
    band_rows = {name: band.summary(name) for name in band.rows}
    audio_seconds = wav.shape[0] * wav.shape[-1] / sr
    bits = math.log2(codec.codebook_size) * codec.frame_rate
    for n in levels:
        rows[_levels_name(n)]["kbps"] = n * bits / 1000
        rows[_levels_name(n)]["x_realtime"] = audio_seconds / speed[n]
    full = _levels_name(codec.num_levels)
    refs = [r for r in rows if not r.startswith("codec")]
    sweep_rows = {name: sweep.summary(name) for name in sweep.rows}
    gains = [r["gain_db"] for r in sweep_rows.values()]
    dist = [rows[_levels_name(n)]["stft"] for n in levels]
    rp = rows["exact STFT magnitude, random phase"]["stft"]
    f = rows[full]
    checks = {
        "hum_ratio": f["hum_ratio"],
        "hum_within_1.25x_input": f["hum_ratio"] <= 1.25,
        "added_clipping": max(0.0, f["clipped_out"] - f["clipped_in"]),
        "sweep_added_clipping": max(max(0.0, r["clipped_out"] - r["clipped_in"]) for r in sweep_rows.values()),
        "added_clipping_written": max(0.0, f["clipped_written"] - f["clipped_in"]),
        "limited": f["limited"],
        "over_full_scale": f["over_full_scale"],
        "peak_max_dbfs": f["peak_max_dbfs"],
        "gain_spread_db": max(gains) - min(gains),
        "gain_spread_at_most_1db": max(gains) - min(gains) <= 1.0,
        "every_level_lowers_distance": all(b < a for a, b in zip(dist, dist[1:])),
        "distance_over_random_phase": f["stft"] / rp,
        "below_random_phase": f["stft"] < rp,
        "band_limited_gain_change_db": max(abs(r["gain_db"] - f["gain_db"]) for r in band_rows.values()),
        "fine_db": f["fine_db"],
        "fine_db_random_phase": rows["exact STFT magnitude, random phase"]["fine_db"],
    }
    return {"rows": rows, "sweep": sweep_rows, "band": band_rows, "levels": levels, "full": full,
            "paired": {r: scores.paired(full, r) for r in refs}, "checks": checks}


@torch.no_grad()
def tones(codec, pitches=TONES, seconds: float = TONE_SECONDS) -> dict[str, dict[str, float]]:
    """Share of output power on the partials of steady harmonic tones (:data:`TONES`), per reconstruction row and
    pitch, with the rows' means: does the decoder keep partials at their own frequencies?"""
    sr = codec.sample_rate
    x = torch.stack([harmonic_tone(f, seconds, sr) for f in pitches])  # [P, T]
    codes = codec.encode(x)
    rows = {f"codec, {codec.num_levels} levels": codec.decode(codes)}
    if getattr(codec.config, "body", None) == "frame":
        rows[f"codec, {codec.num_levels} levels, phase-gradient phase"] = codec.decode_magnitudes(
            codes, 0, start="gradient")
        rows["exact STFT magnitude, phase-gradient phase"] = gradient_phase(x, codec.config)
    rows["exact STFT magnitude, random phase"] = random_phase(x)
    rows["input low-passed at 4 kHz"] = lowpass(x, sr)
    out = {}
    for name, y in rows.items():
        y = y[:, : x.shape[-1]]
        share = [float(partial_share(y[i : i + 1], sr, [f * k for k in range(1, 5) if f * k < sr / 2])[0])
                 for i, f in enumerate(pitches)]
        out[name] = {**{f"{f:g} Hz": v for f, v in zip(pitches, share)}, "mean": float(np.mean(share))}
    return out


def run(model: str | None, sets: dict[str, tuple[Path, str]], crops: int, seconds: float, batch: int,
        max_tracks: int = 0, against: str | None = None) -> dict:
    codec, info = load_codec(model)
    codec.eval()
    other = None
    if against is not None:  # "shipped": the shipped tokenizers' codec
        other = (f"other codec: {against}", load_codec(None if against == "shipped" else against)[0].eval())
    out = {"codec": codec.identity(), "model": info, "params": sum(p.numel() for p in codec.parameters()),
           "seconds": seconds, "bands": octave_bands(codec.sample_rate), "sets": {}, "tones": tones(codec)}
    for label, (folder, split) in sets.items():
        wav, names, has_sources = heldout_crops(folder, codec.sample_rate, crops, seconds, max_tracks, split)
        res = measure(codec, info, wav, batch, against=other)
        res.update(crops=wav.shape[0], tracks=len({n.split("@")[0] for n in names}), folder=str(folder),
                   split=split if has_sources else "all (no sources.json)")
        out["sets"][label] = res
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def print_tones(res: dict) -> None:
    t = res["tones"]
    pitches = [k for k in next(iter(t.values())) if k != "mean"]
    print(f"\n### Steady harmonic tones ({TONE_SECONDS:g} s, 4 partials, -18 dBFS): share of the output's power within "
          "1.5 Hz of the partials ↑\n")
    header = f"| {'reconstruction':<44} | " + " | ".join(f"{p:>8}" for p in pitches) + f" | {'mean':>5} |"
    print(header)
    print("|" + "|".join("-" * len(col) for col in header.split("|")[1:-1]) + "|")
    for name, r in t.items():
        print(f"| {name:<44} | " + " | ".join(f"{r[p]:>8.2f}" for p in pitches) + f" | {r['mean']:>5.2f} |")


def print_table(res: dict) -> None:
    m, c = res["model"], res["codec"]
    print(f"codec: {m['source']} (step {m.get('step')}), {res['params'] / 1e6:.2f}M parameters, "
          f"{c['num_levels']} x {c['codebook_size']} codes at {c['frame_rate']:g} Hz")
    if "tones" in res:
        print_tones(res)
    for label, s in res["sets"].items():
        print(f"\n### {label}: {s['crops']} crops of {res['seconds']:g} s from {s['tracks']} tracks "
              f"({s['folder']}, {s['split']}); same crops in every row\n")
        header = (f"| {'reconstruction':<44} | {'kbit/s':>6} | {'MS-STFT ↓':>9} | {'mel ↓':>6} | {'fine dB ↓':>9} "
                  f"| {'beat F ↑':>8} | {'band err dB':>11} | {'hum ×in':>7} | {'gain dB':>7} | {'clipped':>7} "
                  f"| {'× real time':>11} |")
        print(header)
        print("|" + "|".join("-" * len(col) for col in header.split("|")[1:-1]) + "|")
        for name, r in s["rows"].items():
            kbps = f"{r['kbps']:.1f}" if "kbps" in r else "—"
            rt = f"{r['x_realtime']:.0f}" if "x_realtime" in r else "—"
            print(f"| {name:<44} | {kbps:>6} | {r['stft']:>9.2f} | {r['mel']:>6.3f} | {r['fine_db']:>9.2f} "
                  f"| {r.get('beat_f', float('nan')):>8.3f} | {r['band_err_db']:>11.2f} | {r['hum_ratio']:>7.2f} "
                  f"| {r['gain_db']:>+7.2f} "
                  f"| {_pct(r['clipped_out']):>7} | {rt:>11} |")
        full = s["rows"][s["full"]]
        print(f"\ninput: {_pct(full['hum_in'])} of its power at 45-55 Hz, {_pct(full['clipped_in'])} of samples at "
              f"full scale. Octave-band error of {s['full']} (output minus input, dB, mean over crops):")
        print("  " + "  ".join(f"{lo:g}-{hi:g} Hz {b:+.1f}" for (lo, hi), b in zip(res["bands"], full["band_bias_db"])))
        print(f"\nLevel sweep ({s['full']}; crops scaled to each RMS level, clipped at full scale as a file would be):")
        print(f"| {'input RMS':>9} | {'gain dB':>7} | {'clipped in':>10} | {'clipped out':>11} | {'hum ×in':>7} "
              f"| {'MS-STFT':>7} |")
        print("|-----------|---------|------------|-------------|---------|---------|")
        for name, r in s["sweep"].items():
            print(f"| {name:>9} | {r['gain_db']:>+7.2f} | {_pct(r['clipped_in']):>10} | {_pct(r['clipped_out']):>11} "
                  f"| {r['hum_ratio']:>7.2f} | {r['stft']:>7.2f} |")
        print(f"\nBand check ({s['full']}; each row scored against its own band-limited input):")
        print(f"| {'input':<24} | {'gain dB':>7} | {'MS-STFT':>7} | {'hum ×in':>7} |")
        print("|--------------------------|---------|---------|---------|")
        for name, r in s["band"].items():
            print(f"| {name:<24} | {r['gain_db']:>+7.2f} | {r['stft']:>7.2f} | {r['hum_ratio']:>7.2f} |")
        print(f"\nPaired, crop by crop: {s['full']} minus each reference (negative = the codec is closer):")
        for ref, d in s["paired"].items():
            print(f"  vs {ref:<44} MS-STFT {d['stft']:+.2f} ± {d['stft_se']:.2f} (closer on {d['wins']:.0%} of crops), "
                  f"fine dB {d['fine_db']:+.2f} ± {d['fine_db_se']:.2f}"
                  + (f", beat F {d['beat_f']:+.3f} ± {d['beat_f_se']:.3f}" if "beat_f" in d else ""))
        k = s["checks"]
        print(f"\nchecks: hum {k['hum_ratio']:.2f}x input ({'ok' if k['hum_within_1.25x_input'] else 'over'} 1.25); "
              f"added clipping {_pct(k['added_clipping'])} at the music's level, {_pct(k['sweep_added_clipping'])} "
              f"at most in the sweep; {_pct(k['over_full_scale'])} of the crops' decodes peak past full scale, at "
              f"most {k['peak_max_dbfs']:+.2f} dBFS (as detokenize writes them: {_pct(k['added_clipping_written'])} "
              f"added clipping, its limiter acting on {_pct(k['limited'])} of the samples); "
              f"gain spread {k['gain_spread_db']:.2f} dB "
              f"({'ok' if k['gain_spread_at_most_1db'] else 'over'} 1 dB); every level lowers the distance: "
              f"{'yes' if k['every_level_lowers_distance'] else 'no'}; distance {k['distance_over_random_phase']:.2f}x "
              f"random phase's; band-limited input moves the gain by up to "
              f"{k['band_limited_gain_change_db']:.2f} dB; fine spectrum {k['fine_db']:.2f} dB "
              f"(random phase {k['fine_db_random_phase']:.2f})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="tokenizer directory or codec run (default: the shipped tokenizers)")
    p.add_argument("--data", default=str(ROOT / "data_cache" / "corpus"),
                   help="music with a sources.json: its held-out tracks are used")
    p.add_argument("--source", default=str(ROOT / "data_cache" / "music"),
                   help="music from a source the codec never heard: every file is used")
    p.add_argument("--crops", type=int, default=2, help="crops per track")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--max-tracks", type=int, default=24, help="at most N tracks per set, evenly chosen (0: all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--against", default=None, help="another codec (a run, a tokenizer directory, or 'shipped') as a "
                   "reference row: the paired table then says crop by crop which of the two is closer")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sets = {}
    if Path(args.data).is_dir():
        sets["held-out works"] = (Path(args.data), "heldout")
    if Path(args.source).is_dir():
        sets["held-out source"] = (Path(args.source), "all")
    if not sets:
        print(f"bench.codec: no music at {args.data} or {args.source}; run scripts/build_corpus.py --eval-music "
              "first (skipped).")
        return 0
    res = run(args.model, sets, args.crops, args.seconds, args.batch, args.max_tracks, args.against)
    print_table(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
