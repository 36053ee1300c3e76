"""Codec reconstruction quality per number of RVQ levels, on held-out music, beside reference points.

    python -m bench.codec --model v2meow/assets/tokenizers --data data_cache/music

``--model``: a tokenizer directory (``tokenizers.json``; default: the shipped one) or a codec training run
(``runs/.../codec``, its latest checkpoint). ``--data``: a music folder; with a ``sources.json`` only its held-out
tracks are used, without one every file is taken to be held out. Every row is computed in this run on the same
crops (``--crops`` evenly spaced crops of ``--seconds`` per track):

- the codec decoding its first 1, 2, 4, ... and all levels (bitrate = levels x log2(codebook) x frame rate);
- the input low-passed at 4 kHz (8th-order Butterworth, forwards and backwards);
- the input's exact STFT magnitudes (n_fft 1024, hop 256) with uniformly random phase;
- a log-mel spectrogram (80 bands, n_fft 1024, hop 256) inverted by least squares and 64 Griffin-Lim iterations.

Columns: multi-scale STFT distance and multi-scale mel distance (the training losses' definitions,
:mod:`v2meow.tokenizers.codec.losses`, lower is better), SI-SDR in dB (higher is better; says little when the
decoder picks its own phase, DESIGN.md), and the encode + decode speed in multiples of real time.
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

from v2meow.tokenizers.codec.losses import MultiScaleMelLoss, MultiScaleSTFTLoss
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


def si_sdr(est: Tensor, ref: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant SDR in dB per row of ``[B, T]`` (both made zero-mean)."""
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.square().sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return 10 * torch.log10((target.square().sum(-1) + eps) / (noise.square().sum(-1) + eps))


# ---- data -----------------------------------------------------------------------------------------------


def heldout_crops(data: Path, sample_rate: int, crops: int, seconds: float,
                  max_tracks: int = 0) -> tuple[Tensor, list[str], bool]:
    """Evenly spaced crops ``[N, T]`` of the held-out tracks of ``data`` (silent crops dropped), names, and whether
    a ``sources.json`` said which tracks are held out."""
    from v2meow.io.audio import load_audio
    from v2meow.train.tokenizers import SOURCES_FILE, list_audio

    has_sources = (data / SOURCES_FILE).is_file()
    files = list_audio(data, "heldout") if has_sources else list_audio(data, "all")
    if max_tracks:
        files = files[:max_tracks]
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
        raise SystemExit(f"No held-out audio of at least {seconds} s found in {data}.")
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


class Scores:
    """Per-crop metrics, batch by batch."""

    def __init__(self, sample_rate: int) -> None:
        self.stft, self.mel = MultiScaleSTFTLoss(), MultiScaleMelLoss(sample_rate)
        self.rows: dict[str, list[tuple[float, float, float]]] = {}

    def update(self, name: str, est: Tensor, ref: Tensor) -> None:
        est = est[:, : ref.shape[-1]].float()
        sdr = si_sdr(est, ref)
        for i in range(ref.shape[0]):
            e, r = est[i : i + 1], ref[i : i + 1]
            self.rows.setdefault(name, []).append((float(self.stft(e, r)), float(self.mel(e, r)), float(sdr[i])))

    def paired(self, a: str, b: str) -> dict[str, float]:
        """Mean and standard error over crops of the per-crop differences ``a - b`` (same crops)."""
        x, y = np.asarray(self.rows[a]), np.asarray(self.rows[b])
        d = x - y
        se = d.std(axis=0, ddof=1) / math.sqrt(len(d)) if len(d) > 1 else np.zeros(3)
        return {"stft": float(d[:, 0].mean()), "stft_se": float(se[0]), "mel": float(d[:, 1].mean()),
                "mel_se": float(se[1]), "wins_stft": float((d[:, 0] < 0).mean())}

    def compute(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, vals in self.rows.items():
            a = np.asarray(vals)
            out[name] = {"stft": float(a[:, 0].mean()), "mel": float(a[:, 1].mean()), "si_sdr": float(a[:, 2].mean()),
                         "stft_sem": float(a[:, 0].std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0}
        return out


@torch.no_grad()
def run(model: str | None, data: Path, crops: int, seconds: float, batch: int, max_tracks: int = 0) -> dict:
    codec, info = load_codec(model)
    codec.eval()
    sr = codec.sample_rate
    wav, names, has_sources = heldout_crops(data, sr, crops, seconds, max_tracks)
    levels = sorted({n for n in (1, 2, 4, info.get("coarse_levels") or 1, codec.num_levels) if n <= codec.num_levels})
    bits = math.log2(codec.codebook_size) * codec.frame_rate
    scores = Scores(sr)
    speed: dict[int, float] = {}
    for start in range(0, wav.shape[0], batch):
        ref = wav[start : start + batch]
        t = time.perf_counter()
        codes = codec.encode(ref)
        t_enc = time.perf_counter() - t
        for n in levels:
            t = time.perf_counter()
            recon = codec.decode(codes[:, :n])
            speed[n] = speed.get(n, 0.0) + t_enc + time.perf_counter() - t
            scores.update(f"codec, {n} level{'s' if n > 1 else ''}", recon, ref)
        scores.update("input low-passed at 4 kHz", lowpass(ref, sr), ref)
        scores.update("exact STFT magnitude, random phase", random_phase(ref, seed=start), ref)
        scores.update("log-mel (80) + Griffin-Lim (64 it.)", mel_griffin_lim(ref, sr), ref)
    result = scores.compute()
    full = f"codec, {codec.num_levels} level{'s' if codec.num_levels > 1 else ''}"
    paired = {ref: scores.paired(full, ref) for ref in list(result)[len(levels):]}
    audio_seconds = wav.shape[0] * seconds
    for n in levels:
        row = result[f"codec, {n} level{'s' if n > 1 else ''}"]
        row["kbps"] = n * bits / 1000
        row["x_realtime"] = audio_seconds / speed[n]
    return {"rows": result, "crops": wav.shape[0], "seconds": seconds, "tracks": len({n.split("@")[0] for n in names}),
            "heldout_from_sources": has_sources, "codec": codec.identity(), "model": info,
            "params": sum(p.numel() for p in codec.parameters()), "levels": levels, "paired": paired, "full": full}


def print_table(res: dict) -> None:
    m = res["model"]
    print(f"codec: {m['source']} (step {m.get('step')}), {res['params'] / 1e6:.2f}M parameters, "
          f"{res['codec']['num_levels']} x {res['codec']['codebook_size']} codes at {res['codec']['frame_rate']:g} Hz")
    held = "held-out tracks of sources.json" if res["heldout_from_sources"] else "all files (no sources.json)"
    print(f"data: {res['crops']} crops of {res['seconds']:g} s from {res['tracks']} {held}; same crops in every row")
    print()
    header = f"| {'reconstruction':<38} | {'kbit/s':>6} | {'MS-STFT ↓':>9} | {'mel ↓':>6} | {'SI-SDR dB ↑':>11} | " \
             f"{'× real time':>11} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, r in res["rows"].items():
        kbps = f"{r['kbps']:.1f}" if "kbps" in r else "—"
        rt = f"{r['x_realtime']:.0f}" if "x_realtime" in r else "—"
        print(f"| {name:<38} | {kbps:>6} | {r['stft']:>9.3f} | {r['mel']:>6.3f} | {r['si_sdr']:>11.1f} | {rt:>11} |")
    print(f"\nPaired, crop by crop: {res['full']} minus each reference (negative = the codec is closer), "
          "mean ± standard error:")
    for ref, d in res["paired"].items():
        print(f"  vs {ref:<38} MS-STFT {d['stft']:+.3f} ± {d['stft_se']:.3f} (closer on {d['wins_stft']:.0%} of "
              f"crops), mel {d['mel']:+.3f} ± {d['mel_se']:.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="tokenizer directory or codec run (default: the shipped tokenizers)")
    p.add_argument("--data", default=str(ROOT / "data_cache" / "music"), help="music folder (held-out tracks used)")
    p.add_argument("--crops", type=int, default=3, help="crops per track")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--max-tracks", type=int, default=0, help="use only the first N held-out tracks (0: all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    if not data.is_dir():
        print(f"bench.codec: no music at {data}; run scripts/get_music.py first (skipped).")
        return 0
    res = run(args.model, data, args.crops, args.seconds, args.batch, args.max_tracks)
    print_table(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
