"""The music a joint model trains on: the tracks of a folder, their cached log-mels and measured properties
(:class:`MusicSet`), the validation split and the per-step random numbers."""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor

from v2meow.errors import UserError
from v2meow.io.audio import AUDIO_EXTENSIONS
from v2meow.text.captions import (
    ANALYSIS_VERSION,
    Thresholds,
    TrackAnalysis,
    analyse_track,
    track_facts,
)
from v2meow.text.joint import JointModel


def list_tracks(music_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every track of a music folder as a ``sources.json`` record (``name``, ``path``, ``package``, ``labels``,
    ``heldout``); a folder without ``sources.json`` gives plain records, none held out."""
    root = Path(music_dir)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder of music.")
    meta = root / "sources.json"
    if meta.is_file():
        try:
            files = json.loads(meta.read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{meta} is not a readable sources.json.") from None
        out = [dict(f) for f in files if (root / f["path"]).is_file()]
    else:
        out = [{"name": str(p.relative_to(root).with_suffix("")), "path": str(p.relative_to(root)),
                "package": p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else "",
                "heldout": False} for p in sorted(root.rglob("*")) if p.suffix.lower() in AUDIO_EXTENSIONS]
    if not out:
        raise UserError(f"{root} holds no music ({', '.join(AUDIO_EXTENSIONS)}).")
    return out


def read_track(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Mono float32 ``[N]`` at ``sample_rate``."""
    from v2meow.io.audio import load_audio

    return np.asarray(load_audio(str(path), sample_rate=sample_rate, mono=True), dtype=np.float32).reshape(-1)


@torch.no_grad()
def track_mel(model: JointModel, wav: np.ndarray, chunk_seconds: float = 60.0) -> Tensor:
    """Raw natural-log mel ``[n_mels, frames]`` float16 of a whole track, as ``model.audio.mel`` of the whole
    waveform would give, computed in chunks: each chunk starts on a hop boundary with a context of whole hops
    covering half a window on both sides, so every frame sees exactly the samples it would see at once."""
    mel = model.audio.mel
    hop = mel.hop_length
    pad = -(-(mel.n_fft // 2) // hop) * hop  # half a window, rounded up to whole hops
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    step = max(1, int(chunk_seconds * model.sample_rate) // hop) * hop
    total = x.shape[0] // hop + 1
    out = []
    for a in range(0, total * hop, step):
        lo, hi = max(0, a - pad), min(x.shape[0], a + step + pad)
        m = mel(x[lo:hi][None])[0]  # frame j is centred on sample lo + j * hop
        first = (a - lo) // hop
        out.append(m[:, first: first + min(step // hop, total - a // hop)])
    return torch.cat(out, 1).to(torch.float16)


class MusicSet:
    """Log-mel and measured properties of a set of tracks, cached per track in ``cache_dir`` (one safetensors file
    each, keyed by the file's path and size and the mel settings), so any split of a folder reuses them."""

    def __init__(self, music_dir: str | os.PathLike, entries: list[dict[str, Any]], model: JointModel,
                 cache_dir: str | os.PathLike, progress: bool = True) -> None:
        self.root = Path(music_dir)
        self.entries = entries
        self.frame_rate = model.sample_rate / model.cfg.hop_length
        c = model.cfg
        cache = Path(cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        self.mels, self.analyses = [], []
        t0 = time.time()
        for i, e in enumerate(entries):
            key = json.dumps([ANALYSIS_VERSION, "mel-2", c.sample_rate, c.n_fft, c.hop_length, c.n_mels, e["path"],
                              (self.root / e["path"]).stat().st_size])
            file = cache / f"track-{hashlib.sha256(key.encode()).hexdigest()[:16]}.safetensors"
            if file.is_file():
                from safetensors import safe_open

                with safe_open(str(file), framework="pt") as f:
                    mel, analysis = f.get_tensor("mel"), TrackAnalysis.from_dict(json.loads(f.metadata()["analysis"]))
            else:
                wav = read_track(self.root / e["path"], model.sample_rate)
                mel, analysis = track_mel(model, wav), analyse_track(wav, model.sample_rate)
                save_file({"mel": mel.contiguous()}, str(file) + ".tmp",
                          metadata={"analysis": json.dumps(analysis.to_dict()), "path": e["path"]})
                os.replace(str(file) + ".tmp", file)
                if progress:
                    print(f"\rreading music {i + 1}/{len(entries)} ({time.time() - t0:.0f} s)", end="",
                          file=sys.stderr, flush=True)
            self.mels.append(mel)
            self.analyses.append(analysis)
        if progress and time.time() - t0 > 1:
            print(file=sys.stderr)

    def __len__(self) -> int:
        return len(self.entries)

    def frames(self, i: int) -> int:
        return int(self.mels[i].shape[1])

    def seconds(self) -> float:
        return sum(self.frames(i) for i in range(len(self))) / self.frame_rate

    def mel_stats(self) -> tuple[Tensor, Tensor]:
        """Per-band mean and std ``[n_mels]`` over every frame louder than the floor (silence left out)."""
        total = torch.zeros(self.mels[0].shape[0], dtype=torch.float64)
        sq, n = torch.zeros_like(total), 0
        for m in self.mels:
            m = m.double()
            keep = m.mean(0) > math.log(1e-5) + 1.0
            m = m[:, keep]
            total += m.sum(1)
            sq += (m * m).sum(1)
            n += m.shape[1]
        mean = total / max(n, 1)
        std = (sq / max(n, 1) - mean * mean).clamp_min(1e-6).sqrt()
        return mean.float(), std.float()

    def facts(self, i: int, thresholds: Thresholds, t0: float = 0.0, t1: float | None = None) -> dict[str, Any]:
        return track_facts(self.entries[i], self.analyses[i], thresholds, t0, t1)


def data_summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """What a model was trained on, for its card: tracks, seconds and licences per source package."""
    out: dict[str, Any] = {}
    for e in entries:
        d = out.setdefault(str(e.get("package") or e.get("source") or "unknown"),
                           {"tracks": 0, "seconds": 0.0, "licences": []})
        d["tracks"] += 1
        d["seconds"] = round(d["seconds"] + float(e.get("duration") or 0.0), 1)
        if e.get("licence") and e["licence"] not in d["licences"]:
            d["licences"].append(e["licence"])
    return out


def is_validation(entry: dict[str, Any], seed: int, fraction: float) -> bool:
    """Whether a training track is set aside for validation: a seeded hash of its group (all variants of a piece
    go together), below ``fraction``."""
    group = str(entry.get("group") or entry.get("name"))
    h = int.from_bytes(hashlib.sha256(f"val:{seed}:{group}".encode()).digest()[:8], "little") / 2**64
    return h < fraction
