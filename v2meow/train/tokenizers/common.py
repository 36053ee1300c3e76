"""The tokenizer trainers' shared parts: the training audio (file lists, random crops), config loading, and the
fit loop both trainers run (:class:`_StepTrainer`, on :mod:`v2meow.train.core`'s schedule, step randomness,
log and resume check)."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from v2meow.configbase import Config
from v2meow.errors import UserError
from v2meow.io.audio import AUDIO_EXTENSIONS
from v2meow.train.checkpoint import latest_checkpoint, save_checkpoint
from v2meow.train.core import STREAM_STEP, JsonlLog, latest_of_kind, reseed, step_rng, warmup_cosine

SOURCES_FILE = "sources.json"
PRECISIONS = ("auto", "fp32", "bf16")


# ---- data ---------------------------------------------------------------------------------------------------


def list_audio(data_dir: str | os.PathLike, split: str = "train") -> list[Path]:
    """Audio files of ``data_dir`` for ``split`` ("train", "heldout" or "all"), sorted.

    With a ``sources.json`` (written by ``scripts/get_music.py``) its ``files`` and ``heldout`` flags decide;
    without one every audio file below ``data_dir`` is a training file and none is held out.
    """
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be train, heldout or all, got {split!r}.")
    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"The audio folder {root} does not exist.")
    manifest = root / SOURCES_FILE
    if manifest.is_file():
        try:
            entries = json.loads(manifest.read_text())["files"]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{manifest} is not a v2meow sources list.") from None
        files = [root / e["path"] for e in entries
                 if split == "all" or bool(e.get("heldout", False)) == (split == "heldout")]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise UserError(f"{manifest} lists {len(missing)} missing file(s), e.g. {missing[0]}; rerun get_music.py.")
    else:
        files = [] if split == "heldout" else [p for p in root.rglob("*")
                                                if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()]
    return sorted(files)


class AudioCrops:
    """Random fixed-length crops ``[B, T]`` from audio files, drawn by a caller-supplied numpy generator.

    Files already at the sample rate and readable by libsndfile are read crop by crop (seeking); any other file
    is decoded and resampled once and kept in memory. When all of it fits ``memory_bytes`` (as float32) it is all
    read into memory once, so a fast accelerator is not kept waiting by a file opened and seeked per crop; the
    crops are the same either way. A file is drawn with probability proportional to its length; a near-silent
    crop is redrawn (a few times) because it teaches a codec nothing.
    """

    def __init__(self, files: list[Path], sample_rate: int, silence_rms: float = 1e-3,
                 memory_bytes: int = 2 << 30) -> None:
        import soundfile as sf

        from v2meow.io.audio import load_audio

        if not files:
            raise UserError("No training audio was found (check the folder and its sources.json).")
        self.sample_rate, self.silence_rms = sample_rate, silence_rms
        self.paths: list[Path] = []
        self.frames: list[int] = []
        self.memory: dict[int, np.ndarray] = {}
        for path in files:
            data = None
            try:
                info = sf.info(str(path))
                frames = info.frames if info.samplerate == sample_rate else -1
            except Exception:  # not readable by libsndfile (opus, mp3, m4a): decode it once
                frames = -1
            if frames < 0:
                data = load_audio(path, sample_rate)
                frames = data.shape[-1]
            if frames <= 0:
                continue
            if data is not None:
                self.memory[len(self.paths)] = data
            self.paths.append(path)
            self.frames.append(frames)
        if not self.paths:
            raise UserError("The training audio files are all empty.")
        lengths = np.asarray(self.frames, dtype=np.float64)
        self.weights = lengths / lengths.sum()
        if 4 * lengths.sum() <= memory_bytes:
            for i, path in enumerate(self.paths):
                if i not in self.memory:
                    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
                    self.memory[i] = np.ascontiguousarray(data.mean(axis=1, dtype=np.float32))

    @property
    def seconds(self) -> float:
        return float(sum(self.frames)) / self.sample_rate

    def read(self, index: int, start: int, num: int) -> np.ndarray:
        """Samples ``[start, start + num)`` of file ``index`` as float32 mono, zero-padded past the end."""
        if index in self.memory:
            out = self.memory[index][start : start + num]
        else:
            import soundfile as sf

            with sf.SoundFile(str(self.paths[index])) as f:
                f.seek(start)
                out = f.read(frames=num, dtype="float32", always_2d=True).mean(axis=1)
        if out.shape[0] < num:
            out = np.pad(out, (0, num - out.shape[0]))
        return out.astype(np.float32, copy=False)

    def crop(self, rng: np.random.Generator, num: int, tries: int = 8) -> np.ndarray:
        wav = np.zeros(num, dtype=np.float32)
        for _ in range(tries):
            i = int(rng.choice(len(self.paths), p=self.weights))
            start = int(rng.integers(0, max(1, self.frames[i] - num + 1)))
            wav = self.read(i, start, num)
            if float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) >= self.silence_rms:
                break
        return wav

    def batch(self, rng: np.random.Generator, batch_size: int, num: int) -> Tensor:
        """``[batch_size, num]`` float32 crops."""
        return torch.from_numpy(np.stack([self.crop(rng, num) for _ in range(batch_size)]))


def random_levels(wav: Tensor, rng: np.random.Generator, low_dbfs: float, high_dbfs: float,
                  peak: float = 0.99) -> Tensor:
    """Gain augmentation: each row of ``wav [B, T]`` scaled to an RMS level drawn uniformly in dB from
    ``[low_dbfs, high_dbfs]``, but never so loud that its peak passes ``peak`` (a crop is not clipped to reach a
    level; loud mastered music simply lands near its natural peak). Silent rows stay as they are."""
    x = wav.double()
    rms = x.square().mean(-1).sqrt()
    target = torch.from_numpy(10 ** (rng.uniform(low_dbfs, high_dbfs, size=x.shape[0]) / 20))
    gain = target / rms.clamp_min(1e-12)
    gain = torch.minimum(gain, peak / x.abs().amax(-1).clamp_min(1e-12))
    gain = torch.where(rms > 1e-6, gain, torch.ones_like(gain))
    return (x * gain[:, None]).to(wav.dtype)


def random_band_limits(wav: Tensor, rng: np.random.Generator, sample_rate: int, low_hz: float, high_hz: float,
                       share: float = 0.5, transition_hz: float = 400.0) -> Tensor:
    """Band augmentation: a ``share`` of the rows of ``wav [B, T]`` low-passed at a cutoff drawn uniformly in
    ``[low_hz, high_hz]`` (a raised-cosine roll-off ``transition_hz`` wide ending at the cutoff, zero phase), the
    rest left as they are."""
    chosen = rng.random(wav.shape[0]) < share
    cutoffs = rng.uniform(low_hz, high_hz, size=wav.shape[0])
    if not chosen.any():
        return wav
    freqs = torch.fft.rfftfreq(wav.shape[-1], 1.0 / sample_rate, dtype=torch.float64)
    out = wav.clone()
    for i in np.flatnonzero(chosen):
        edge = ((freqs - (cutoffs[i] - transition_hz)) / transition_hz).clamp(0.0, 1.0)
        gain = 0.5 * (1.0 + torch.cos(math.pi * edge))  # 1 in the passband, 0 above the cutoff
        spec = torch.fft.rfft(wav[i].double()) * gain
        out[i] = torch.fft.irfft(spec, wav.shape[-1]).to(wav.dtype)
    return out


def _resolve_config(spec: str | os.PathLike, file: str) -> Path:
    """A YAML path, or the name of a config folder shipped in ``v2meow/configs/`` holding ``file``."""
    path = Path(spec)
    if path.is_file():
        return path
    shipped = Path(__file__).resolve().parents[2] / "configs" / str(spec) / file
    if shipped.is_file():
        return shipped
    raise UserError(f"Training config {spec} is neither a file nor a shipped config folder with {file}.")


def _device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _set_threads(threads: int, device: torch.device) -> None:
    if threads > 0 and device.type == "cpu":
        torch.set_num_threads(threads)


class _StepTrainer:
    """The fit loop both tokenizer trainers share: setup, steps, logging, evaluation, checkpoints by step count
    and by wall clock (saved and resumed here), a progress bar. Subclasses provide ``train_step``, ``evaluate``
    and the hooks below (:meth:`_build`, :meth:`_prepare`, :meth:`_checkpoint`, :meth:`_restore`, ...)."""

    DESC = "train"
    KIND = ""
    WHAT = ""  # what a run of this kind trains, for refusing another run's checkpoints
    # The parts of the training config that a run keeps over its checkpoints; the first is the trained network's
    # (the training audio is read at its sample rate).
    PARTS: tuple[str, ...] = ()

    def __init__(self, cfg: Any, data_dir: str | os.PathLike, run_dir: str | os.PathLike,
                 device: str | None = None) -> None:
        # What every trainer sets up first: config, run folder, device and threads, the seed, the log.
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.device = _device(device)
        _set_threads(cfg.threads, self.device)
        torch.manual_seed(cfg.seed)
        self.log = JsonlLog(self.run_dir)
        self._build()
        # The training audio (crops of data_dir's training files), the precision, and a run at step 0.
        self.data = AudioCrops(list_audio(data_dir, "train"), getattr(cfg, self.PARTS[0]).sample_rate)
        self.data_dir = str(data_dir)
        self.autocast = self.cfg.precision == "bf16" or (self.cfg.precision == "auto" and self.device.type == "cuda")
        self.step = 0
        self.elapsed = 0.0  # training wall time over all sessions of this run
        self._prepare()

    def _build(self) -> None:
        """The networks (on :attr:`device`) and their optimisers."""

    def _prepare(self) -> None:
        """What needs the training audio (validation crops, targets)."""

    def _rng(self, step: int, stream: int = 0) -> np.random.Generator:
        """The numpy generator of ``step`` (stream 0: the training batches; others: fixed crops)."""
        return step_rng(self.cfg.seed, step, stream, order=STREAM_STEP)

    def _lr(self, lr: float) -> float:
        """The learning rate of this step, peaking at ``lr``."""
        cfg = self.cfg
        return warmup_cosine(self.step, lr, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)

    def _reseed(self) -> None:
        """Every random draw of a step (quantiser dropout, k-means init, restarts, masks, dropout) from
        (seed, step)."""
        reseed(self.cfg.seed, self.step, scheme="affine")

    def _latest(self, *configs: str) -> dict[str, Any] | None:
        """The run's latest checkpoint (None: a new run), refused when it trains something else or was started
        with other ``configs`` (names of parts of the training config)."""
        current = self.cfg.to_dict()
        return latest_of_kind(self.run_dir, self.KIND, refusal=f"Run {{run}} does not train {self.WHAT}.",
                              same={k: (("train_config", k), current[k]) for k in configs})

    def save(self) -> Path:
        model, optim = self._checkpoint()
        return save_checkpoint(self.run_dir, self.step, model, optim, self.state(), keep=self.cfg.keep_checkpoints)

    def resume(self) -> bool:
        """Continue from the run's latest checkpoint; False for a new run."""
        ck = self._latest(*self.PARTS)
        if ck is None:
            return False
        self._restore(ck)
        st = ck["state"]
        self.step = int(st["step"])
        self.elapsed = float(st.get("elapsed_s", 0.0))
        return True

    def _checkpoint(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The state dicts a checkpoint saves: the model's and the optimiser's."""
        raise NotImplementedError

    def _restore(self, ck: dict[str, Any]) -> None:
        """Load a checkpoint's model and optimiser (and the subclass's own state)."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return self._state()

    def _state(self) -> dict[str, Any]:
        """What every checkpoint's state holds."""
        return {"kind": self.KIND, "step": self.step, "elapsed_s": round(self.elapsed, 1),
                "train_config": self.cfg.to_dict(), "data": self.data_dir, "train_files": len(self.data.paths),
                "train_seconds": round(self.data.seconds, 1)}

    def _check_step(self) -> None:
        """Raise when training must stop (e.g. divergence); called after every step."""

    def _log_extra(self) -> dict[str, Any]:
        return {}

    def _postfix(self, stats: dict[str, Any]) -> dict[str, str]:
        return {}

    def _result(self, last: dict[str, Any]) -> dict[str, Any]:
        return last

    def fit(self, progress: bool = True, until: int | None = None, seconds: float | None = None) -> dict[str, Any]:
        """Train (resuming from the run's last checkpoint) up to ``max_steps``, or only up to step ``until`` (a
        bounded chunk of a longer run: the learning-rate schedule stays the one of ``max_steps``), or for about
        ``seconds`` of wall time, whichever comes first; it stops with a checkpoint."""
        cfg = self.cfg
        end = cfg.max_steps if until is None else min(int(until), cfg.max_steps)
        deadline = None if seconds is None else time.time() + float(seconds)
        resumed = self.resume()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=end, initial=self.step, desc=self.DESC, unit="step")
        last: dict[str, Any] = {"resumed": resumed}
        t_ckpt = t_log = time.time()
        since = 0
        while self.step < end:
            t0 = time.time()
            stats = self.train_step()
            self.elapsed += time.time() - t0
            since += 1
            self._check_step()
            last = {"step": self.step, **stats}
            out_of_time = deadline is not None and time.time() >= deadline
            closing = self.step in (cfg.max_steps, end) or out_of_time  # the chunk's last step: evaluate and save
            if self.step % cfg.log_every == 0:
                last["s_per_step"] = (time.time() - t_log) / max(since, 1)
                t_log, since = time.time(), 0
                self.log({**last, "elapsed_s": round(self.elapsed, 1), **self._log_extra()})
            if self.step % cfg.eval_every == 0 or closing:
                ev = self.evaluate()
                last.update(ev)
                self.log({"step": self.step, **ev})
            if (self.step % cfg.checkpoint_every == 0 or closing
                    or time.time() - t_ckpt >= 60 * cfg.checkpoint_minutes):
                self.save()
                t_ckpt = time.time()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(**self._postfix(stats))
            if out_of_time:
                break
        if bar is not None:
            bar.close()
        if latest_checkpoint(self.run_dir) is None:
            self.save()
        return self._result(last)


def _load_train_config(cls: type[Config], config_path: str | os.PathLike, file: str,
                       max_steps: int | None) -> Any:
    from v2meow.config import load_yaml

    path = _resolve_config(config_path, file)
    cfg = cls.from_dict(load_yaml(path), where=str(path))
    if max_steps is not None:
        cfg = cfg.replace(max_steps=int(max_steps))
    return cfg
