"""The ``appearance`` encoder: hand-made colour, brightness, texture, layout and scene-cut features.

The embedded (no weights) counterpart of CLIP in the paper: what a frame looks like, cheaply. Frames are
decoded at ``max(4, rate)`` fps and 128×72 pixels; per-frame features are averaged over each output
window, and a few temporal features describe change inside the window.

Feature layout (``dim = 56``), all finite and roughly in [0, 3]:

====== ===== ===============================================================================
index  count  feature
====== ===== ===============================================================================
0      12    hue histogram weighted by saturation (sum = mean saturation), × 3
12     2     saturation mean, std (HSV S in [0, 1])
14     2     value mean, std (HSV V in [0, 1])
16     2     luma mean, std (Rec. 601 Y in [0, 1])
18     8     luma histogram (fractions of pixels), × 2
26     1     colourfulness (Hasler & Süsstrunk 2003), × 2
27     3     mean R, G, B in [0, 1]
30     3     gradient magnitude mean × 4, std × 4, edge density (fraction of pixels with gradient > 0.1)
33     2     mean |horizontal gradient| × 4, mean |vertical gradient| × 4 (edge orientation balance)
35     9     3×3 grid of mean luma (row-major, top-left first)
44     9     3×3 grid of edge density
53     1     std over the window's frames of the mean luma, × 4 (flicker / fades)
54     1     scene cut: largest RGB-histogram change between consecutive decoded frames (L1 / 2, in [0, 1])
55     1     mean RGB-histogram change between consecutive decoded frames
====== ===== ===============================================================================

Scene-cut pairs belong to the window of their second frame; the first frame of a segment has no pair.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from v2meow.features.base import EncoderState, VisualEncoder, fill_empty_windows, finite_float32, window_index
from v2meow.features.registry import register

_HUE_BINS = 12
_LUMA_BINS = 8
_GRID = 3
_EDGE_THRESHOLD = 0.1
_PER_FRAME = _HUE_BINS + 2 + 2 + 2 + _LUMA_BINS + 1 + 3 + 3 + 2 + 2 * _GRID * _GRID  # 53
_DIM = _PER_FRAME + 3


def _grid_means(x: np.ndarray, n: int) -> np.ndarray:
    """Means of ``x`` ``[H, W]`` over an ``n × n`` grid of cells (edges split as evenly as possible) → ``[n*n]``."""
    h, w = x.shape
    ys = np.linspace(0, h, n + 1).round().astype(int)
    xs = np.linspace(0, w, n + 1).round().astype(int)
    # Sum over rows within each row band, then columns within each column band (reduceat on band starts).
    rows = np.add.reduceat(x, ys[:-1], axis=0)
    cells = np.add.reduceat(rows, xs[:-1], axis=1)
    area = np.outer(np.diff(ys), np.diff(xs))
    return (cells / np.maximum(area, 1)).reshape(-1)


def frame_features(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame features ``[53]`` (indices 0–52 of the layout) and the RGB 4×4×4 histogram ``[64]``.

    ``frame``: uint8 RGB ``[H, W, 3]``.
    """
    rgb = frame.astype(np.float32) * (1.0 / 255.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    npix = float(r.size)
    # HSV (value = max, saturation = chroma / value; hue in [0, 1) turns).
    cmax = rgb.max(axis=-1)
    cmin = rgb.min(axis=-1)
    chroma = cmax - cmin
    sat = np.where(cmax > 1e-6, chroma / np.maximum(cmax, 1e-6), 0.0)
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(
        cmax == r, ((g - b) / safe) % 6.0, np.where(cmax == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
    ) / 6.0
    hue_bin = np.minimum((hue * _HUE_BINS).astype(np.int64), _HUE_BINS - 1)
    # Grey pixels have no meaningful hue: weighting by saturation makes them count for nothing.
    hue_hist = np.bincount(hue_bin.ravel(), weights=sat.ravel(), minlength=_HUE_BINS)[:_HUE_BINS] / npix
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    luma_bin = np.minimum((luma * _LUMA_BINS).astype(np.int64), _LUMA_BINS - 1)
    luma_hist = np.bincount(luma_bin.ravel(), minlength=_LUMA_BINS)[:_LUMA_BINS] / npix
    rg = r - g
    yb = 0.5 * (r + g) - b
    colourful = float(np.sqrt(rg.var() + yb.var()) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))
    # Central differences (one-pixel borders replicated) are enough for texture statistics.
    gx = np.zeros_like(luma)
    gy = np.zeros_like(luma)
    gx[:, 1:-1] = 0.5 * (luma[:, 2:] - luma[:, :-2])
    gy[1:-1, :] = 0.5 * (luma[2:, :] - luma[:-2, :])
    mag = np.sqrt(gx * gx + gy * gy)
    edges = (mag > _EDGE_THRESHOLD).astype(np.float32)
    feats = np.concatenate(
        [
            3.0 * hue_hist,
            [sat.mean(), sat.std(), cmax.mean(), cmax.std(), luma.mean(), luma.std()],
            2.0 * luma_hist,
            [2.0 * colourful, r.mean(), g.mean(), b.mean()],
            [4.0 * mag.mean(), 4.0 * mag.std(), edges.mean(), 4.0 * np.abs(gx).mean(), 4.0 * np.abs(gy).mean()],
            _grid_means(luma, _GRID),
            _grid_means(edges, _GRID),
        ]
    ).astype(np.float32)
    q = (frame >> 6).astype(np.int64)  # 4 levels per channel
    hist = np.bincount((q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).ravel(), minlength=64) / npix
    return feats, hist


class _AppearanceState(EncoderState):
    def __init__(self, encoder: AppearanceEncoder, duration: float) -> None:
        self.enc = encoder
        self.count = encoder.num_frames(duration)
        self.times: list[float] = []
        self.feats: list[np.ndarray] = []
        self.changes: list[float] = []  # histogram change from the previous frame (nan for the first)
        self.prev_hist: np.ndarray | None = None

    def add(self, t: float, frame: np.ndarray) -> None:
        feats, hist = frame_features(frame)
        change = float("nan") if self.prev_hist is None else 0.5 * float(np.abs(hist - self.prev_hist).sum())
        self.prev_hist = hist
        self.times.append(t)
        self.feats.append(feats)
        self.changes.append(change)

    def finish(self) -> np.ndarray:
        T = self.count
        if not self.feats:
            return np.zeros((T, _DIM), dtype=np.float32)
        win = window_index(np.asarray(self.times), self.enc.rate, T)
        per_frame = np.stack(self.feats).astype(np.float64)
        counts = np.bincount(win, minlength=T).astype(np.float64)
        out = np.zeros((T, _DIM), dtype=np.float64)
        # Window means of per-frame features: sums by window divided by counts.
        np.add.at(out[:, :_PER_FRAME], win, per_frame)
        filled = counts > 0
        out[filled, :_PER_FRAME] /= counts[filled, None]
        luma_mean = per_frame[:, 16]
        sq = np.zeros(T)
        np.add.at(sq, win, luma_mean**2)
        var = np.where(filled, sq / np.maximum(counts, 1) - out[:, 16] ** 2, 0.0)
        out[:, _PER_FRAME] = 4.0 * np.sqrt(np.maximum(var, 0.0))
        changes = np.asarray(self.changes)
        has_pair = ~np.isnan(changes)
        cut = np.zeros(T)
        np.maximum.at(cut, win[has_pair], changes[has_pair])
        pair_counts = np.bincount(win[has_pair], minlength=T)
        mean_change = np.bincount(win[has_pair], weights=changes[has_pair], minlength=T) / np.maximum(pair_counts, 1)
        out[:, _PER_FRAME + 1] = cut
        out[:, _PER_FRAME + 2] = mean_change
        out = fill_empty_windows(out, filled)
        return finite_float32(out)


@register("appearance")
class AppearanceEncoder(VisualEncoder):
    """Colour, brightness, texture, coarse layout and scene cuts per window (see the module docstring)."""

    dim = _DIM

    def __init__(self, rate: float = 1.0, frame_size: tuple[int, int] = (128, 72)) -> None:
        self.rate = float(rate)
        # A few frames per window at least, so scene cuts inside a window are seen.
        self.decode_fps = max(4.0, self.rate)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))

    def params(self) -> dict[str, Any]:
        return {"hue_bins": _HUE_BINS, "luma_bins": _LUMA_BINS, "grid": _GRID, "edge_threshold": _EDGE_THRESHOLD}

    def begin(self, duration: float) -> EncoderState:
        return _AppearanceState(self, duration)
