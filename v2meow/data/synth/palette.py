"""Colours from the music's character: :class:`Palette` and :func:`character_palette`."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from typing import Any

import numpy as np


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
