"""The five visual worlds (:data:`WORLDS`): each draws a random layout and renders frames from controls."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from v2meow.data.synth.controls import Frame
from v2meow.data.synth.palette import Palette, _tempo_level

WORLDS = ("starfield", "shapes", "plasma", "bounce", "city")


def world_probabilities(character: dict[str, Any], tempo: float) -> np.ndarray:
    """Probability of each world in :data:`WORLDS` given the music's character (never 0 for any)."""
    e, b, tl = character["energy"], character["brightness"], _tempo_level(tempo)
    major = 1.0 if character["mode"] == "major" else 0.0
    scores = np.array(
        [
            1.5 * e + 1.0 * tl - 0.5 * b,  # starfield: energetic, fast, dark-ish
            1.0 * major + 0.5 * b + 0.3 * e,  # shapes: bright, major
            -1.5 * e - 1.0 * tl + 0.5 * (1 - major) + 1.0,  # plasma: calm, slow
            1.5 * tl + 1.0 * major + 0.5 * b - 0.3,  # bounce: fast, happy
            -0.5 * b + 0.8 * (1 - major) + 0.5 - abs(tl - 0.5),  # city: dark, minor, mid tempo
        ]
    )
    p = np.exp(scores - scores.max())
    p = p / p.sum()
    return 0.8 * p + 0.2 / len(p)  # every world stays possible for any music


def _soft(d: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage from a signed distance in pixels (inside < 0)."""
    return np.clip(0.5 - d, 0.0, 1.0)


def _blend(img: np.ndarray, x0: int, y0: int, alpha: np.ndarray, color: np.ndarray) -> None:
    """``img[y0:, x0:] = mix(img, color, alpha)`` for an ``alpha`` patch (clipped to the image)."""
    h, w = img.shape[:2]
    ph, pw = alpha.shape
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + pw, w), min(y0 + ph, h)
    if xa >= xb or ya >= yb:
        return
    a = alpha[ya - y0 : yb - y0, xa - x0 : xb - x0, None]
    region = img[ya:yb, xa:xb]
    region += a * (color - region)


class World:
    """A visual world: :meth:`layout` draws a random arrangement, :meth:`render` one frame from controls.

    Worlds hold their own random generator (seeded from the video's), so a video is reproducible.
    """

    name = ""

    def __init__(self, rng: np.random.Generator, width: int, height: int, palette: Palette, energy: float) -> None:
        self.rng = rng
        self.w, self.h = width, height
        self.palette = palette
        self.energy = energy
        self.xs = (np.arange(width, dtype=np.float32) + 0.5 - width / 2) / height
        self.ys = (np.arange(height, dtype=np.float32) + 0.5 - height / 2) / height
        self.layout()

    def layout(self) -> None:
        raise NotImplementedError

    def set_palette(self, palette: Palette) -> None:
        self.palette = palette
        self.layout()

    def render(self, f: Frame) -> np.ndarray:
        raise NotImplementedError

    def _gradient(self, angle: float, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
        g = np.cos(angle) * self.xs[None, :] + np.sin(angle) * self.ys[:, None]
        g = (g - g.min()) / max(float(np.ptp(g)), 1e-6)
        return (c0 * (1 - g[..., None]) + c1 * g[..., None]).astype(np.float32)


class Starfield(World):
    """Stars (particles) flying towards the camera; faster on beats and with loudness; trails."""

    name = "starfield"

    def layout(self) -> None:
        r = self.rng
        n = max(30, int(r.uniform(0.02, 0.05) * self.w * self.h))
        self.x = r.uniform(-1, 1, n).astype(np.float32)
        self.y = r.uniform(-1, 1, n).astype(np.float32)
        self.z = r.uniform(0.05, 1.0, n).astype(np.float32)
        pal = np.concatenate([self.palette.colors, np.ones((2, 3), np.float32)])
        self.col = pal[r.integers(0, len(pal), n)] * r.uniform(0.6, 1.0, (n, 1)).astype(np.float32)
        self.angle = float(r.uniform(0, 2 * np.pi))
        self.spin = float(r.normal(0, 0.25))
        self.focal = self.h * float(r.uniform(0.35, 0.7))
        self.cx = self.w / 2 + float(r.normal(0, 0.08)) * self.w
        self.cy = self.h / 2 + float(r.normal(0, 0.08)) * self.h
        self.decay = float(r.uniform(0.55, 0.85))
        self.burst = float(r.uniform(1.0, 2.5))
        self.trail = np.zeros((self.h, self.w, 3), np.float32)
        self.bg = self._gradient(float(r.uniform(0, 2 * np.pi)), self.palette.background[1], self.palette.background[0])

    def render(self, f: Frame) -> np.ndarray:
        r = self.rng
        dz = f.dt * (0.1 + 0.45 * f.speed + self.burst * f.pulse)
        self.z -= dz
        dead = self.z <= 0.03
        k = int(dead.sum())
        if k:
            self.x[dead] = r.uniform(-1, 1, k)
            self.y[dead] = r.uniform(-1, 1, k)
            self.z[dead] = r.uniform(0.8, 1.0, k)
        self.angle += self.spin * f.dt
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        px = self.cx + (self.x * ca - self.y * sa) / self.z * self.focal
        py = self.cy + (self.x * sa + self.y * ca) / self.z * self.focal
        lum = np.clip(0.25 / self.z, 0.0, 2.0) * (0.4 + 0.9 * f.pulse + 0.2 * f.loud + 0.3 * f.onset)
        xi, yi = px.astype(np.int32), py.astype(np.int32)
        ok = (xi >= 0) & (xi < self.w - 1) & (yi >= 0) & (yi < self.h - 1) & (px >= 0) & (py >= 0)
        idx = (yi * self.w + xi)[ok]
        weight = lum[ok]
        near = self.z[ok] < 0.3
        idx_all = np.concatenate([idx, idx[near] + 1, idx[near] + self.w, idx[near] + self.w + 1])
        w_all = np.concatenate([weight, weight[near], weight[near], weight[near]])
        col = self.col[ok]
        col_all = np.concatenate([col, col[near], col[near], col[near]])
        self.trail *= self.decay
        hw = self.h * self.w
        for c in range(3):
            self.trail[..., c] += np.bincount(idx_all, weights=w_all * col_all[:, c], minlength=hw).reshape(
                self.h, self.w
            )
        np.minimum(self.trail, 1.5, out=self.trail)
        return self.bg * (0.7 + 0.3 * f.bright) + self.trail


class Shapes(World):
    """Geometric shapes (discs, rings, squares, diamonds) that pulse, rotate, drift and hop on beats."""

    name = "shapes"
    KINDS = ("disc", "ring", "square", "diamond")

    def layout(self) -> None:
        r = self.rng
        m = int(r.integers(4, 12))
        self.kind = r.integers(0, len(self.KINDS), m)
        self.pos = np.stack([r.uniform(0.1, 0.9, m) * self.w, r.uniform(0.15, 0.85, m) * self.h], axis=1)
        self.target = self.pos.copy()
        self.vel = r.normal(0, 0.03, (m, 2)) * np.array([self.w, self.h])
        self.radius = r.uniform(0.06, 0.2, m) * self.h
        self.col = self.palette.colors[r.integers(0, len(self.palette.colors), m)]
        self.angle = r.uniform(0, np.pi, m)
        self.spin = r.normal(0, 1.2, m)
        self.gain = r.uniform(0.25, 0.7, m) * (0.6 + 0.6 * self.energy)
        self.every = r.choice([1, 1, 1, 2], m)  # some shapes pulse every other beat
        self.hop = float(r.uniform(0.1, 0.4))  # chance that a shape jumps to a new place on a beat
        self.order = np.argsort(self.radius)[::-1]  # big ones behind
        angle = float(r.uniform(0, 2 * np.pi))
        self.bg = self._gradient(angle, self.palette.background[0], self.palette.background[1])

    def render(self, f: Frame) -> np.ndarray:
        r = self.rng
        m = len(self.kind)
        if f.new_beat:
            jump = r.random(m) < self.hop * (0.5 + f.beat_strength)
            k = int(jump.sum())
            if k:
                self.target[jump] = np.stack([r.uniform(0.1, 0.9, k) * self.w, r.uniform(0.15, 0.85, k) * self.h], 1)
        self.target += self.vel * f.dt * (0.5 + f.speed)
        for axis, size in ((0, self.w), (1, self.h)):
            out = (self.target[:, axis] < 0) | (self.target[:, axis] > size)
            self.vel[out, axis] *= -1
            self.target[:, axis] = np.clip(self.target[:, axis], 0, size)
        self.pos += (self.target - self.pos) * min(1.0, f.dt * 14.0)
        self.angle += self.spin * f.dt * (0.4 + f.speed)
        img = self.bg * (0.75 + 0.25 * f.loud)
        for i in self.order:
            on = (f.beat % self.every[i]) == 0
            rad = self.radius[i] * (1.0 + self.gain[i] * (f.pulse if on else 0.2 * f.pulse))
            half = int(rad * 1.45) + 2
            cx, cy = self.pos[i]
            x0, y0 = int(cx) - half, int(cy) - half
            dx = (np.arange(x0, x0 + 2 * half) + 0.5 - cx)[None, :]
            dy = (np.arange(y0, y0 + 2 * half) + 0.5 - cy)[:, None]
            kind = self.KINDS[self.kind[i]]
            if kind in ("disc", "ring"):
                d = np.sqrt(dx * dx + dy * dy) - rad
                if kind == "ring":
                    d = np.abs(d + 0.2 * rad) - 0.2 * rad
            else:
                ca, sa = math.cos(self.angle[i]), math.sin(self.angle[i])
                rx, ry = dx * ca - dy * sa, dx * sa + dy * ca
                if kind == "square":
                    d = np.maximum(np.abs(rx), np.abs(ry)) - 0.8 * rad
                else:
                    d = (np.abs(rx) + np.abs(ry)) * 0.75 - 0.8 * rad
            color = self.col[i] * (0.7 + 0.5 * (f.pulse if on else 0.0) + 0.2 * f.onset)
            _blend(img, x0, y0, _soft(d), color)
        return img


class Plasma(World):
    """Colour waves: a sum of moving sine gratings and a radial wave through the palette's gradient."""

    name = "plasma"

    def layout(self) -> None:
        r = self.rng
        self.k = r.uniform(3.0, 12.0, 4)
        self.theta = float(r.uniform(0, np.pi))
        self.w_rate = r.uniform(0.3, 1.5, 4) * r.choice([-1, 1], 4)
        self.p = r.uniform(0, 2 * np.pi, 4)
        self.centre = r.uniform(-0.4, 0.4, 2)
        self.centre_v = r.normal(0, 0.05, 2)
        self.lut = self.palette.lut(256)
        self.scale = float(r.uniform(20.0, 45.0))
        self.kick = 0.0
        self.shift = float(r.uniform(0, 256))
        self.shift_rate = float(r.normal(0, 8.0))

    def render(self, f: Frame) -> np.ndarray:
        if f.new_beat:
            self.kick += 0.6 + 0.8 * f.beat_strength
        step = min(1.0, f.dt * 10.0) * self.kick  # the kick advances the phases quickly just after a beat
        self.kick -= step
        self.p += self.w_rate * f.dt * (0.3 + 1.2 * f.speed) + step * np.sign(self.w_rate)
        self.centre += self.centre_v * f.dt
        self.centre_v[np.abs(self.centre) > 0.5] *= -1
        self.shift += f.dt * (self.shift_rate + 40.0 * f.onset + 120.0 * f.flash)
        xs, ys, k, p = self.xs, self.ys, self.k, self.p
        ct, st = math.cos(self.theta), math.sin(self.theta)
        fx = np.sin(k[0] * xs + p[0])[None, :]
        fy = np.sin(k[1] * ys + p[1])[:, None]
        a, b = k[2] * ct * xs + p[2], k[2] * st * ys
        fd = np.sin(a)[None, :] * np.cos(b)[:, None] + np.cos(a)[None, :] * np.sin(b)[:, None]
        rr = np.sqrt((xs[None, :] - self.centre[0]) ** 2 + (ys[:, None] - self.centre[1]) ** 2)
        fr = np.sin(k[3] * 2.0 * rr - p[3])
        v = fx + fy + fd + fr
        idx = (v * self.scale + self.shift).astype(np.int32) & 255
        img = self.lut[idx]
        return img * (0.5 + 0.35 * f.loud + 0.45 * f.pulse)


class Bounce(World):
    """Balls that land on the floor exactly on the beats (some every other beat) and roll sideways."""

    name = "bounce"

    def layout(self) -> None:
        r = self.rng
        n = int(r.integers(2, 8))
        self.floor = self.h * float(r.uniform(0.72, 0.9))
        self.radius = r.uniform(0.05, 0.11, n) * self.h
        self.x = r.uniform(0.1, 0.9, n) * self.w
        self.vx = r.normal(0, 0.12, n) * self.w
        self.every = r.choice([1, 1, 2], n)
        self.offset = r.integers(0, 2, n)
        self.height = r.uniform(0.25, 0.6, n) * self.h
        self.col = self.palette.colors[r.integers(0, len(self.palette.colors), n)]
        sky = self._gradient(
            math.pi / 2 + float(r.normal(0, 0.2)), self.palette.background[0], self.palette.background[1]
        )
        ground = np.arange(self.h)[:, None, None] >= self.floor
        floor_col = self.palette.colors[int(r.integers(0, 5))] * 0.35
        self.bg = np.where(ground, floor_col, sky).astype(np.float32)
        self.ground = np.broadcast_to(ground[..., 0], (self.h, self.w))

    def render(self, f: Frame) -> np.ndarray:
        img = self.bg.copy()
        if f.flash > 0.02:
            img[self.ground] += 0.35 * f.flash * self.palette.accent
        self.x += self.vx * f.dt * (0.4 + f.speed)
        hit = (self.x < self.radius) | (self.x > self.w - self.radius)
        self.vx[hit] *= -1
        self.x = np.clip(self.x, self.radius, self.w - self.radius)
        for i in range(len(self.x)):
            if self.every[i] == 1:
                phi = f.phase
            else:
                phi = (((f.beat + self.offset[i]) % 2) + f.phase) / 2.0
            lift = 4.0 * phi * (1.0 - phi)
            rad = self.radius[i]
            squash = 1.0 - 0.35 * math.exp(-min(phi, 1 - phi) * 14.0)
            ry, rx = rad * squash, rad / math.sqrt(squash)
            cy = self.floor - ry - self.height[i] * (0.4 + 0.6 * f.loud) * lift
            cx = float(self.x[i])
            # Shadow on the floor, smaller and fainter when the ball is high.
            sr = rad * (1.0 - 0.5 * lift)
            sx0, sy0 = int(cx - sr) - 1, int(self.floor - 0.3 * sr) - 1
            sdx = (np.arange(sx0, sx0 + int(2 * sr) + 3) + 0.5 - cx)[None, :] / max(sr, 0.5)
            sdy = (np.arange(sy0, sy0 + int(0.6 * sr) + 3) + 0.5 - self.floor)[:, None] / max(0.3 * sr, 0.5)
            shadow = np.clip(1.0 - (sdx * sdx + sdy * sdy), 0.0, 1.0) * (0.6 - 0.3 * lift)
            _blend(img, sx0, sy0, shadow, np.zeros(3, np.float32))
            half_x, half_y = int(rx) + 2, int(ry) + 2
            x0, y0 = int(cx) - half_x, int(cy) - half_y
            dx = (np.arange(x0, x0 + 2 * half_x) + 0.5 - cx)[None, :]
            dy = (np.arange(y0, y0 + 2 * half_y) + 0.5 - cy)[:, None]
            d = (np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2) - 1.0) * min(rx, ry)
            shade = 0.8 + 0.4 * np.clip(-(dx + dy) / (rx + ry), -1, 1)
            alpha = _soft(d)
            color_patch = self.col[i] * (0.8 + 0.5 * f.pulse)
            patch_h, patch_w = alpha.shape
            ya, xa = max(y0, 0), max(x0, 0)
            yb, xb = min(y0 + patch_h, self.h), min(x0 + patch_w, self.w)
            if ya < yb and xa < xb:
                a = alpha[ya - y0 : yb - y0, xa - x0 : xb - x0, None]
                s = shade[ya - y0 : yb - y0, xa - x0 : xb - x0, None]
                region = img[ya:yb, xa:xb]
                region += a * (color_patch * s - region)
        return img * (0.7 + 0.3 * f.loud)


class City(World):
    """A night skyline in parallax layers, scrolling with the music's speed; windows light up on onsets,
    the sky glows on beats, car lights stream along the street."""

    name = "city"

    def layout(self) -> None:
        r = self.rng
        h, w = self.h, self.w
        horizon = self.palette.colors[int(r.integers(0, 3))]
        self.sky = self._gradient(
            math.pi / 2 + float(r.normal(0, 0.1)), self.palette.background[1] * 0.8, horizon * 0.75
        )
        stars = (r.random((h, w)) < 0.006) & (np.arange(h)[:, None] < 0.5 * h)
        self.sky[stars] += 0.5
        self.layers = []
        n_layers = int(r.integers(2, 4))
        cell = max(2, int(round(h * r.uniform(0.035, 0.06))))
        for li in range(n_layers):
            depth = (li + 1) / n_layers  # 1 = nearest
            tw = int(w * r.uniform(2.0, 3.5))
            tops = np.full(tw, h, np.int32)
            x = int(r.integers(0, max(2, w // 20)))
            while x < tw:
                bw = int(max(3, r.uniform(0.05, 0.16) * w))
                tops[x : x + bw] = int(h * (1.0 - r.uniform(0.15 + 0.2 * (1 - depth), 0.45 + 0.3 * (1 - depth))))
                x += bw + int(r.integers(0, max(2, w // 30)))
            rows = np.arange(h)[:, None]
            cols = np.arange(tw)[None, :]
            mask = rows >= tops[None, :]
            c = max(2, int(round(cell * (0.7 + 0.5 * depth))))
            win = (rows % c < max(1, c // 2)) & (cols % c < max(1, c - c // 3))
            win &= mask & (rows > tops[None, :] + 1)
            groups = r.integers(1, 9, (h, tw))
            groups = np.where(win & (r.random((h, tw)) < 0.7), groups, 0).astype(np.int16)
            haze = 0.55 * (1.0 - depth)  # far layers fade into the sky
            color = (1 - haze) * self.palette.background[1] * 0.6 + haze * horizon * 0.6
            self.layers.append((mask, groups, color.astype(np.float32), 0.2 + 0.8 * depth**1.5))
        self.lit = np.concatenate([[0.0], r.uniform(0.3, 1.0, 8)])
        self.lit_color = (0.7 * self.palette.accent + 0.3 * self.palette.colors[1]).astype(np.float32)
        self.glow_col = self.palette.colors[0]
        self.glow = (np.clip(np.arange(h) / h - 0.2, 0, 1) ** 2).astype(np.float32)[:, None, None]
        self.cars = r.uniform(0, w, int(r.integers(2, 8)))
        self.car_v = r.uniform(0.2, 0.6, len(self.cars)) * w * r.choice([-1, 1], len(self.cars))
        self.car_y = int(h * 0.96)
        self.scroll = float(r.uniform(0.15, 0.4)) * w * r.choice([-1, 1])

    def render(self, f: Frame) -> np.ndarray:
        r = self.rng
        if f.new_onset or (f.new_beat and r.random() < 0.3):
            flip = r.random(9) < 0.35
            flip[0] = False
            self.lit[flip] = np.where(self.lit[flip] > 0.5, r.uniform(0.05, 0.3, int(flip.sum())), 1.0)
        img = self.sky + self.glow * self.glow_col * (0.1 + 0.6 * f.pulse)
        cols = np.arange(self.w)
        lit = self.lit.astype(np.float32) * (0.6 + 0.4 * f.loud + 0.3 * f.onset)
        for mask, groups, color, speed in self.layers:
            tw = mask.shape[1]
            c = (cols + int(f.travel * self.scroll * speed)) % tw
            m = mask[:, c]
            g = groups[:, c]
            img = np.where(m[..., None], color, img)
            light = lit[g]
            img += light[..., None] * self.lit_color * (0.4 + 0.6 * speed)
        self.cars = (self.cars + self.car_v * f.dt * (0.5 + f.speed)) % self.w
        ci = self.cars.astype(np.int32)
        y = min(self.car_y, self.h - 1)
        img[y, ci] += np.array([1.0, 0.85, 0.6], np.float32)
        img[y, np.clip(ci + 1, 0, self.w - 1)] += np.array([0.9, 0.2, 0.1], np.float32)
        return img


_WORLD_CLASSES: dict[str, type[World]] = {c.name: c for c in (Starfield, Shapes, Plasma, Bounce, City)}
