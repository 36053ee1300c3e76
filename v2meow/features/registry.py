"""Visual encoders by name, and feature extraction that decodes a video once for several encoders.

Encoders register themselves with :func:`register`; the built-in modules listed in ``_BUILTIN_MODULES``
are imported on first use, so ``build_encoder(EncoderConfig("motion"))`` works without importing
:mod:`v2meow.features.motion` first.

A name joined with ``+`` (``clip+i3d``, as in Table 1 of the paper) stands for several encoders at one rate;
:func:`expand_encoder_configs` splits it. Pretrained encoders take their settings (weights ``path``, a
``model_config`` for tests) from ``EncoderConfig.options``; for a combined name, ``options`` is keyed by
member name (``{clip: {path: ...}, i3d: {path: ...}}``).
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from v2meow.configbase import Config, check
from v2meow.errors import UserError
from v2meow.features.base import VisualEncoder


# PyAV loads when a video is read, not when a config is: training on music alone runs where PyAV is absent.
def probe(path):
    from v2meow.io.video import probe as probe_video

    return probe_video(path)


def iter_frames_shared(*args, **kwargs):
    from v2meow.io.video import iter_frames_shared as shared

    return shared(*args, **kwargs)


# Modules that define encoders; imported lazily (they may be heavy: pretrained ones import torch).
# Add new encoder modules here.
_BUILTIN_MODULES = (
    "v2meow.features.appearance",
    "v2meow.features.motion",
    "v2meow.features.beat",
    "v2meow.features.clip",
    "v2meow.features.i3d",
    "v2meow.features.vitvqgan",
)

_REGISTRY: dict[str, Callable[..., VisualEncoder]] = {}
_loaded = False

E = TypeVar("E", bound=Callable[..., VisualEncoder])


@dataclass
class EncoderConfig(Config):
    """Which visual encoder to use, at how many feature frames per second, with which encoder options."""

    name: str
    rate: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the encoder (pretrained ones)

    def validate(self) -> None:
        check(isinstance(self.name, str) and bool(self.name), "EncoderConfig.name must be a non-empty string.")
        check(isinstance(self.options, dict), f"EncoderConfig.options of {self.name!r} must be a mapping.")
        members = self.name.split("+")
        check(all(members), f"EncoderConfig.name {self.name!r} has an empty part.")
        if len(members) > 1:
            check(set(self.options) <= set(members),
                  f"the options of {self.name!r} must be keyed by its members ({', '.join(members)}).")
        check(
            isinstance(self.rate, (int, float)) and math.isfinite(self.rate) and 0 < self.rate <= 60,
            f"EncoderConfig.rate must be in (0, 60] feature frames per second, got {self.rate}.",
        )


def register(name: str) -> Callable[[E], E]:
    """Class (or factory) decorator: make an encoder buildable by ``name``, which becomes a class's ``name``
    (the one place an encoder's name is written). It is called as ``cls(rate=...)``."""

    def deco(factory: E) -> E:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not factory:
            # Re-importing the same module (e.g. reloading in a notebook) re-registers a class with the
            # same qualified name; anything else is two encoders fighting over one name.
            same = getattr(existing, "__qualname__", None) == getattr(factory, "__qualname__", None) and getattr(
                existing, "__module__", None
            ) == getattr(factory, "__module__", None)
            if not same:
                raise ValueError(f"visual encoder name {name!r} is already registered by {existing!r}")
        _REGISTRY[name] = factory
        if isinstance(factory, type):
            factory.name = name
        return factory

    return deco


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def available() -> list[str]:
    """Names of the registered visual encoders, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def expand_encoder_configs(cfgs: list[EncoderConfig]) -> list[EncoderConfig]:
    """Split combined names (``clip+i3d``) into one config per member, each with its own options."""
    out: list[EncoderConfig] = []
    for cfg in cfgs:
        members = cfg.name.split("+")
        if len(members) == 1:
            out.append(cfg)
            continue
        for m in members:
            opts = cfg.options.get(m) or {}
            if not isinstance(opts, dict):
                raise UserError(f"The options of {m!r} in {cfg.name!r} must be a mapping.")
            out.append(EncoderConfig(name=m, rate=cfg.rate, options=dict(opts)))
    return out


def build_encoder(cfg: EncoderConfig, load_weights: bool = True) -> VisualEncoder:
    """Instantiate the encoder ``cfg.name`` at ``cfg.rate`` feature frames per second.

    Pretrained encoders (factories with ``pretrained = True``) load their weights from ``options["path"]``;
    with ``load_weights`` False they are built from ``options["model_config"]`` and their weights come from
    a model directory. After building, ``cfg.options`` holds what rebuilds the encoder offline (the
    resolved network configuration), so a saved model directory is self-contained.
    """
    _load_builtins()
    if "+" in cfg.name:
        raise UserError(f"{cfg.name!r} names several encoders; expand it with expand_encoder_configs first.")
    factory = _REGISTRY.get(cfg.name)
    if factory is None:
        raise UserError(f"Unknown visual encoder {cfg.name!r}; available: {', '.join(available())}.")
    pretrained = getattr(factory, "pretrained", False)
    kwargs = {"load_weights": load_weights} if pretrained else {}
    try:
        enc = factory(rate=cfg.rate, **kwargs, **cfg.options)
    except TypeError as e:
        if not cfg.options:
            raise
        raise UserError(f"Visual encoder {cfg.name!r} does not take the options {sorted(cfg.options)} ({e}).") from None
    if pretrained:
        cfg.options = enc.resolved_options()
    return enc


def extract_features(
    path: str | os.PathLike[str],
    encoders: list[VisualEncoder],
    start: float = 0.0,
    duration: float | None = None,
) -> dict[str, np.ndarray]:
    """Encode ``[start, start + duration)`` of a video with every encoder; ``{encoder.name: [T, D]}``.

    The video is decoded once (:func:`v2meow.io.video.iter_frames_shared`), sampled and resized once per
    distinct ``(decode_fps, frame_size)``, and each frame goes to every encoder that asked for that sampling
    as it is decoded (frames are never all held in memory). ``duration``
    defaults to the rest of the video and is clipped to it. Times passed to encoders are relative to
    ``start``.
    """
    names = [e.name for e in encoders]
    if len(set(names)) != len(names):
        raise UserError(f"Each visual encoder may be used once per extraction, got {names}.")
    if not encoders:
        return {}
    info = probe(path)
    start = max(0.0, float(start))
    remaining = info.duration - start
    if remaining <= 0:
        raise UserError(f"The start time {start:.3f} s is past the end of {info.path} ({info.duration:.3f} s).")
    seg = remaining if duration is None else min(float(duration), remaining)
    if seg <= 0:
        raise UserError(f"The duration to extract must be positive, got {duration}.")
    groups: dict[tuple[float | None, tuple[int, int]], list[VisualEncoder]] = {}
    for enc in encoders:
        key = (enc.decode_fps, (int(enc.frame_size[0]), int(enc.frame_size[1])))
        groups.setdefault(key, []).append(enc)
    states = [[enc.begin(seg) for enc in group] for group in groups.values()]
    for i, t, frame in iter_frames_shared(path, list(groups), start=start, end=start + seg):
        rel = t - start
        for state in states[i]:
            state.add(rel, frame)
    out: dict[str, np.ndarray] = {}
    for group, group_states in zip(groups.values(), states):
        for enc, state in zip(group, group_states):
            feats = state.finish()
            assert feats.shape == (enc.num_frames(seg), enc.dim), (enc.name, feats.shape)
            out[enc.name] = feats
    return out
