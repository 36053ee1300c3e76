"""The renderer (cuts, worlds and palettes over a whole video) and :func:`render_video`: one track in, one
MP4 and its sidecar JSON out."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from v2meow.data.synth.analysis import TrackAnalysis, analyse_audio
from v2meow.data.synth.controls import Controls
from v2meow.data.synth.palette import _hsv, character_palette
from v2meow.data.synth.worlds import _WORLD_CLASSES, WORLDS, World, world_probabilities
from v2meow.errors import UserError
from v2meow.io.atomic import staged_file
from v2meow.io.jsonable import jsonable
from v2meow.io.mux import check_aac_rate, write_video

SYNTH_VERSION = 1
FORMAT = "v2meow-synth-video"




@dataclass
class Cut:
    time: float
    kind: str  # "section" | "phrase" | "random"


def plan_cuts(an: TrackAnalysis, duration: float, rng: np.random.Generator) -> list[Cut]:
    """Cuts at section boundaries, at some phrase starts (every 8 or 16 beats), and rarely at random."""
    cuts = [Cut(float(t), "section") for t in an.sections if 0 < t < duration]
    beats = np.asarray(an.beats)
    phrase = int(rng.choice([8, 16]))
    p_phrase = 0.15 + 0.35 * float(an.character["energy"])
    for i in range(phrase, len(beats), phrase):
        if rng.random() < p_phrase:
            cuts.append(Cut(float(beats[i]), "phrase"))
    t = float(rng.exponential(45.0))
    while t < duration:
        cuts.append(Cut(t, "random"))
        t += float(rng.exponential(45.0))
    cuts.sort(key=lambda c: c.time)
    kept: list[Cut] = []
    for c in cuts:  # at most one cut per 2 s; a section boundary wins over the others
        if kept and c.time - kept[-1].time < 2.0:
            if c.kind == "section" and kept[-1].kind != "section":
                kept[-1] = c
            continue
        if c.time >= 1.0 and c.time <= duration - 0.5:
            kept.append(c)
    return kept


class Renderer:
    """Renders the frames of one video from a :class:`TrackAnalysis` (an iterator of uint8 RGB frames)."""

    def __init__(
        self,
        an: TrackAnalysis,
        size: tuple[int, int],
        fps: float,
        seed: int,
        duration: float | None = None,
        world: str | None = None,
    ) -> None:
        self.an = an
        self.w, self.h = int(size[0]), int(size[1])
        self.fps = float(fps)
        self.duration = an.duration if duration is None else float(duration)
        self.n = max(1, int(round(self.duration * self.fps)))
        self.rng = np.random.default_rng(seed)
        rng = self.rng
        self.controls = Controls(an, self.fps, self.n, rng)
        # Colours and worlds follow the character of the section on screen (the whole track's as a fallback).
        first = an.character_at(0.0)
        self.probs = world_probabilities(first, an.tempo)
        if world is not None and world not in _WORLD_CLASSES:
            raise UserError(f"Unknown visual world {world!r}; choose from {', '.join(WORLDS)}.")
        self.fixed_world = world
        self.palette = character_palette(first, an.tempo, rng)
        self.cuts = plan_cuts(an, self.duration, rng)
        self.cut_frames = [int(round(c.time * self.fps)) for c in self.cuts]
        self.energy = float(an.character["energy"])
        self.world = self._new_world(world or str(rng.choice(WORLDS, p=self.probs)))
        self.scenes = [{"start": 0.0, "world": self.world.name, "cut": "start", "palette": self.palette.to_json()}]
        # Visual noise unrelated to the music.
        gh, gw = max(1, self.h // 2), max(1, self.w // 2)
        grain = rng.normal(0, 1, (6, gh, gw, 1)).astype(np.float32)
        grain = np.repeat(np.repeat(grain, 2, axis=1), 2, axis=2)[:, : self.h, : self.w]
        if grain.shape[1] < self.h or grain.shape[2] < self.w:
            grain = np.pad(grain, ((0, 0), (0, self.h - grain.shape[1]), (0, self.w - grain.shape[2]), (0, 0)))
        self.grain = grain * float(rng.uniform(0.005, 0.02))
        # A slow camera sway (pixels), at its own rate: motion that has nothing to do with the music.
        self.sway = (rng.uniform(0.0, 0.03, 2) * self.h, rng.uniform(0.03, 0.12, 2), rng.uniform(0, 2 * np.pi, 2))
        self.blink = None
        if rng.random() < 0.6:
            bw, bh = max(2, self.w // 16), max(2, self.h // 12)
            bx, by = int(rng.integers(0, self.w - bw + 1)), int(rng.integers(0, self.h - bh + 1))
            self.blink = (
                bx,
                by,
                bw,
                bh,
                float(rng.uniform(0.35, 2.2)),
                float(rng.uniform(0, 1)),
                _hsv(float(rng.random()), 0.6, 1.0) * float(rng.uniform(0.08, 0.2)),
            )
        self.shake = float(rng.uniform(0.0, 0.025) * self.h * (0.5 + self.energy))
        self.shake_dir = np.zeros(2)
        yy = (np.arange(self.h) + 0.5) / self.h - 0.5
        xx = (np.arange(self.w) + 0.5) / self.w - 0.5
        strength = float(rng.uniform(0.2, 0.6))
        self.vignette = (1.0 - strength * (xx[None, :] ** 2 + yy[:, None] ** 2) * 2.0).astype(np.float32)[..., None]
        self.exposure = 0.85 + 0.3 * self.energy
        self.flash_color = self.palette.accent

    def _new_world(self, name: str) -> World:
        child = np.random.default_rng(int(self.rng.integers(0, 2**63 - 1)))
        return _WORLD_CLASSES[name](child, self.w, self.h, self.palette, self.energy)

    def _apply_cut(self, cut: Cut) -> None:
        rng = self.rng
        if cut.kind == "section":
            # a new section: colours (and the odds of each world) from its own character
            character = self.an.character_at(cut.time + 1e-3)
            self.palette = character_palette(character, self.an.tempo, rng)
            self.probs = world_probabilities(character, self.an.tempo)
            if self.fixed_world is None and rng.random() < 0.4:
                self.world = self._new_world(str(rng.choice(WORLDS, p=self.probs)))
            else:
                self.world.set_palette(self.palette)
        else:
            if rng.random() < 0.5:
                self.palette = self.palette.shifted(rng, 0.04)
            self.world.set_palette(self.palette)
        self.flash_color = self.palette.accent
        self.scenes.append(
            {"start": round(cut.time, 3), "world": self.world.name, "cut": cut.kind, "palette": self.palette.to_json()}
        )

    def frames(self) -> Iterator[np.ndarray]:
        rng = self.rng
        next_cut = 0
        for i in range(self.n):
            while next_cut < len(self.cuts) and self.cut_frames[next_cut] <= i:
                self._apply_cut(self.cuts[next_cut])
                next_cut += 1
            f = self.controls.frame(i)
            img = self.world.render(f)
            # Camera: the slow sway plus a small shake in a random direction on each beat (edges repeat).
            if f.new_beat:
                a = rng.uniform(0, 2 * np.pi)
                self.shake_dir = np.array([math.cos(a), math.sin(a)])
            amp, freq, ph = self.sway
            off = amp * np.sin(2 * np.pi * freq * f.t + ph) + self.shake * f.pulse * self.shake_dir
            ox, oy = int(round(off[0])), int(round(off[1]))
            if oy:
                img = img[np.clip(np.arange(self.h) - oy, 0, self.h - 1)]
            if ox:
                img = img[:, np.clip(np.arange(self.w) - ox, 0, self.w - 1)]
            # Exposure follows loudness; strong onsets flash; then lens and sensor: vignette and grain.
            img = img * (self.exposure * (0.8 + 0.3 * f.loud) * (0.92 + 0.16 * f.bright))
            if f.flash > 0.01:
                img += (0.55 * f.flash) * self.flash_color
            if self.blink is not None:
                bx, by, bw, bh, period, phase, col = self.blink
                if ((f.t / period + phase) % 1.0) < 0.5:
                    img[by : by + bh, bx : bx + bw] += col
            img *= self.vignette
            img += self.grain[int(rng.integers(0, len(self.grain)))]
            np.multiply(img, 255.0, out=img)
            np.clip(img, 0.0, 255.0, out=img)
            yield img.astype(np.uint8)


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------


def _write_json_atomic(path: str, data: dict[str, Any]) -> None:
    with staged_file(path, ".json") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")


def sidecar_path(video_path: str | os.PathLike[str]) -> str:
    """The sidecar JSON of a rendered video: same folder and stem, ``.json``."""
    return os.path.splitext(os.fspath(video_path))[0] + ".json"


def render_video(
    audio_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    seconds: float | None = None,
    size: tuple[int, int] = (256, 144),
    fps: float = 24,
    seed: int = 0,
    world: str | None = None,
    audio_rate: int = 44100,
    crf: int = 20,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Render one music video for ``audio_path`` into ``out_path`` (MP4) and its sidecar JSON.

    Args:
        audio_path: any file :func:`v2meow.io.audio.load_audio` reads.
        out_path: the ``.mp4`` to write; the sidecar is :func:`sidecar_path` of it. Both appear
            atomically (temporary names, then renamed: sidecar first, video last); on any error neither
            is left behind (nor a temporary file), and existing files are replaced only on success.
        seconds: render only the first ``seconds`` of the track (None: all of it).
        size: ``(width, height)``, even numbers (4:2:0 chroma).
        fps: frame rate.
        seed: seeds every random choice: the same seed and input give the same frames.
        world: force a visual world (one of :data:`WORLDS`) for the whole video; None: chosen at random
            from the music's character, and may change at section boundaries.
        audio_rate: sample rate of the AAC track (mono sources stay mono, others become stereo).
        crf: x264 quality (lower: better, larger).
        source: extra information about the source (path relative to the music folder, licence ...)
            recorded in the sidecar under ``"source"``.

    Returns the sidecar's content, plus ``"video"`` (the output path), ``"sidecar"`` and
    ``"render_seconds"`` (wall time).
    """
    from v2meow.io.audio import load_audio

    audio_path, out_path = os.fspath(audio_path), os.fspath(out_path)
    w, h = int(size[0]), int(size[1])
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise UserError(f"The video size must be even numbers of at least 16 pixels, got {w}x{h}.")
    if not (fps > 0 and math.isfinite(fps)):
        raise UserError(f"The frame rate must be positive, got {fps}.")
    if seconds is not None and not seconds > 0:
        raise UserError(f"The length per track must be positive, got {seconds} seconds.")
    if world is not None and world not in _WORLD_CLASSES:
        raise UserError(f"Unknown visual world {world!r}; choose from {', '.join(WORLDS)}.")
    check_aac_rate(audio_rate, "The audio rate")
    folder = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(folder):
        raise UserError(f"The output folder {folder} does not exist.")
    start = time.perf_counter()
    wav = load_audio(audio_path, sample_rate=audio_rate, mono=False, duration=seconds)
    if wav.shape[0] > 2:
        wav = wav.mean(axis=0, keepdims=True)
    if wav.shape[1] < int(0.5 * audio_rate):
        raise UserError(f"The audio file {audio_path} is shorter than half a second; nothing to render.")
    peak = float(np.abs(wav).max())
    if not math.isfinite(peak):
        raise UserError(f"The audio file {audio_path} contains NaN or infinite samples.")
    wav = np.clip(wav, -1.0, 1.0).astype(np.float32)
    an = analyse_audio(wav.mean(axis=0), audio_rate)
    duration = wav.shape[1] / audio_rate
    renderer = Renderer(an, (w, h), fps, seed, duration=duration, world=world)

    json_path = sidecar_path(out_path)
    try:
        with staged_file(out_path, ".mp4") as tmp_video:
            write_video(tmp_video, renderer.frames(), (w, h), fps, wav, int(audio_rate), crf)
            elapsed = time.perf_counter() - start
            meta = {
                "format": FORMAT,
                "version": SYNTH_VERSION,
                "video": os.path.basename(out_path),
                "source": {"path": os.path.abspath(audio_path), **(source or {})},
                "seed": int(seed),
                "fps": float(fps),
                "size": [w, h],
                "duration": round(duration, 4),
                "frames": renderer.n,
                "seconds_limit": seconds,
                "world_forced": world,
                "audio_rate": int(audio_rate),
                "audio_channels": int(wav.shape[0]),
                "world": renderer.scenes[0]["world"],
                "world_probabilities": {k: round(float(p), 3) for k, p in zip(WORLDS, renderer.probs)},
                "scenes": renderer.scenes,
                "cuts": [{"time": round(c.time, 3), "kind": c.kind} for c in renderer.cuts],
                "analysis": an.to_json(),
            }
            meta = jsonable(meta)
            _write_json_atomic(json_path, meta)
    except BaseException as e:
        if os.path.exists(json_path) and not os.path.exists(out_path):
            try:
                os.remove(json_path)
            except OSError:
                pass
        if isinstance(e, av.error.FFmpegError):
            raise UserError(f"Could not write {out_path}: {e}.") from e
        raise
    return {**meta, "video": out_path, "sidecar": json_path, "render_seconds": round(elapsed, 3)}
