"""The visual encoder interface: decoded frames in, one feature vector per time window out.

An encoder says how it wants the video decoded (``decode_fps``, ``frame_size``) and at what rate it
returns features (``rate``). Feature ``i`` summarises the window ``[i / rate, (i + 1) / rate)`` seconds,
with times relative to the start of the segment being encoded.

Encoders consume frames as a stream through a small accumulator (:meth:`VisualEncoder.begin` returns
an :class:`EncoderState`; ``add`` takes one frame at a time, ``finish`` returns the features), so
:func:`v2meow.features.registry.extract_features` can feed several encoders from a single decode
without holding the video in memory. Pretrained encoders (CLIP, I3D, ...) subclass this and hold torch
modules; their states batch frames internally.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from v2meow.errors import UserError
from v2meow.timebase import units_in


class EncoderState:
    """Accumulates the frames of one segment for one encoder.

    Frames arrive in time order; ``t`` is seconds from the segment start. The frame arrays may be shared
    with other encoders fed by the same decode: never modify them in place.
    """

    def add(self, t: float, frame: np.ndarray) -> None:
        """Take one uint8 RGB frame ``[H, W, 3]`` shown at time ``t``."""
        raise NotImplementedError

    def finish(self) -> np.ndarray:
        """Return the features, float32 ``[T, D]`` with ``T = num_frames(duration)``."""
        raise NotImplementedError


class VisualEncoder:
    """Base class of visual encoders (see the module docstring).

    Attributes:
        name: registry name, e.g. ``"motion"``; :func:`v2meow.features.registry.register` sets it.
        version: ``"1"`` until a subclass bumps it, which it must whenever the output for the same input changes;
            part of :meth:`identity`.
        dim: feature size D.
        rate: feature frames per second returned.
        decode_fps: frames per second it wants decoded (``None``: every frame of the video).
        frame_size: ``(width, height)`` to decode at.
    """

    name: str = "base"
    version: str = "1"
    dim: int = 0
    rate: float = 1.0
    decode_fps: float | None = 1.0
    frame_size: tuple[int, int] = (224, 224)

    def params(self) -> dict[str, Any]:
        """Other settings that change the output (subclasses extend); included in :meth:`identity`."""
        return {}

    def identity(self) -> dict[str, Any]:
        """Everything a consumer must compare to know two feature arrays are interchangeable."""
        return {
            "name": self.name,
            "version": self.version,
            "dim": int(self.dim),
            "rate": float(self.rate),
            "decode_fps": None if self.decode_fps is None else float(self.decode_fps),
            "frame_size": [int(self.frame_size[0]), int(self.frame_size[1])],
            **self.params(),
        }

    def num_frames(self, duration: float) -> int:
        """Number of feature frames for ``duration`` seconds: one per started window, at least one."""
        return max(1, units_in(duration, self.rate))

    def begin(self, duration: float) -> EncoderState:
        """Start encoding a segment of ``duration`` seconds (subclasses return their own state)."""
        raise NotImplementedError

    def encode_stream(self, frames: Iterable[tuple[float, np.ndarray]], duration: float) -> np.ndarray:
        """Encode ``(t, frame)`` pairs (frames uint8 ``[H, W, 3]``, t from the segment start) of a segment
        of ``duration`` seconds into float32 ``[T, D]``, ``T = num_frames(duration)``."""
        if not (duration > 0 and math.isfinite(duration)):
            raise UserError(f"The segment to encode must have a positive duration, got {duration}.")
        state = self.begin(duration)
        for t, frame in frames:
            state.add(float(t), frame)
        out = state.finish()
        assert out.shape == (self.num_frames(duration), self.dim), (out.shape, self.num_frames(duration), self.dim)
        return out

    def encode(self, frames: np.ndarray, times: np.ndarray, duration: float) -> np.ndarray:
        """Encode frames ``[N, H, W, 3]`` uint8 shown at ``times`` ``[N]`` (seconds) → float32 ``[T, D]``."""
        frames = np.asarray(frames)
        times = np.asarray(times, dtype=np.float64)
        if frames.ndim != 4 or frames.shape[-1] != 3 or len(times) != len(frames):
            raise UserError(f"Expected frames [N, H, W, 3] with N times, got {frames.shape} and {times.shape}.")
        return self.encode_stream(zip(times.tolist(), frames), duration)


def window_index(times: np.ndarray, rate: float, count: int) -> np.ndarray:
    """Window of each time: ``floor(t * rate)`` clipped to ``[0, count - 1]`` (``[N]`` int64)."""
    idx = np.floor(np.asarray(times, dtype=np.float64) * rate + 1e-9).astype(np.int64)
    return np.clip(idx, 0, count - 1)


def fill_empty_windows(values: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Give windows without data (``filled`` False) the values of the nearest filled window before them
    (after them for leading gaps); all zeros if nothing is filled. ``values`` ``[T, D]``, ``filled`` ``[T]``."""
    if filled.all():
        return values
    if not filled.any():
        return np.zeros_like(values)
    idx = np.where(filled, np.arange(len(filled)), -1)
    idx = np.maximum.accumulate(idx)
    first = int(np.argmax(filled))
    idx[:first] = first
    return values[idx]


class BatchedFrameMeanState(EncoderState):
    """Per-window mean of a frame-embedding network's outputs, run on batches of frames.

    For encoders that embed single frames (CLIP, ViT-VQGAN): they provide ``embed_frames(frames [N, H, W, 3])
    -> [N, D]``, ``batch_size``, ``rate`` and ``dim``. Frames wait until a batch is full, so the network runs
    on batches; a window without any frame takes its neighbour's value.
    """

    def __init__(self, encoder: Any, duration: float) -> None:
        self.enc = encoder
        self.count = encoder.num_frames(duration)
        self.sums = np.zeros((self.count, encoder.dim), dtype=np.float64)
        self.counts = np.zeros(self.count, dtype=np.int64)
        self.pending: list[tuple[int, np.ndarray]] = []  # (window, frame) waiting for a full batch

    def add(self, t: float, frame: np.ndarray) -> None:
        win = int(window_index(np.asarray([t]), self.enc.rate, self.count)[0])
        self.pending.append((win, frame))
        if len(self.pending) >= self.enc.batch_size:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        wins = np.asarray([w for w, _ in self.pending])
        emb = self.enc.embed_frames(np.stack([f for _, f in self.pending]))  # [N, D]
        np.add.at(self.sums, wins, emb.astype(np.float64))
        np.add.at(self.counts, wins, 1)
        self.pending.clear()

    def finish(self) -> np.ndarray:
        self._flush()
        filled = self.counts > 0
        out = np.zeros_like(self.sums)
        out[filled] = self.sums[filled] / self.counts[filled, None]
        return fill_empty_windows(out, filled).astype(np.float32)


def finite_float32(out: np.ndarray) -> np.ndarray:
    """An encoder's output as float32 with NaN and ±inf set to 0."""
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
