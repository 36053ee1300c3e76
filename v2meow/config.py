"""The whole model's configuration: which parts, and how big. Presets live in ``v2meow/configs/<name>/``.

A preset YAML maps 1:1 onto :class:`V2MeowConfig`. Stage ``streams`` may be left out of a preset: they
are filled in from the visual encoders when the model is built, and saved resolved in ``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from v2meow.configbase import Config, check
from v2meow.errors import ConfigError, UserError
from v2meow.features.registry import EncoderConfig
from v2meow.stages.coarse import CoarseStageConfig
from v2meow.stages.fine import FineStageConfig
from v2meow.stages.semantic import SemanticStageConfig
from v2meow.text.towers import TextConfig
from v2meow.tokenizers.codec.soundstream import SoundStreamConfig
from v2meow.tokenizers.semantic import SemanticEncoderConfig

PRESET_FILE = "model.yaml"


@dataclass
class SemanticTokenizerConfig(Config):
    encoder: SemanticEncoderConfig = field(default_factory=SemanticEncoderConfig)
    vocab_size: int = 1024  # k-means clusters K_s

    def validate(self) -> None:
        check(2 <= self.vocab_size <= 65536, f"semantic vocab_size must be in 2..65536, got {self.vocab_size}.")


@dataclass
class GenerationConfig(Config):
    """Whole-length generation: windows of the stages' length, each continuing from the previous one."""

    prompt_seconds: float = 5.0  # how much of the previous window each new window is prompted with
    max_seconds: float = 4 * 3600.0  # longest soundtrack one call writes
    decode_chunk_seconds: float = 10.0  # the codec decodes in chunks of this length ...
    decode_margin_seconds: float = 0.5  # ... each seeing this much context on both sides

    def validate(self) -> None:
        check(self.prompt_seconds >= 0, f"prompt_seconds must be >= 0, got {self.prompt_seconds}.")
        check(0 < self.max_seconds <= 24 * 3600, f"max_seconds must be in (0, 86400], got {self.max_seconds}.")
        check(self.decode_chunk_seconds > 0 and self.decode_margin_seconds >= 0, "decode chunk sizes must be > 0.")


@dataclass
class V2MeowConfig(Config):
    name: str = "custom"
    encoders: list[EncoderConfig] = field(default_factory=list)
    text: TextConfig | None = None
    semantic: SemanticStageConfig = field(default_factory=SemanticStageConfig)
    coarse: CoarseStageConfig = field(default_factory=CoarseStageConfig)
    fine: FineStageConfig = field(default_factory=FineStageConfig)
    codec: SoundStreamConfig = field(default_factory=SoundStreamConfig)
    semantic_tokenizer: SemanticTokenizerConfig = field(default_factory=SemanticTokenizerConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)

    def validate(self) -> None:
        check(len(self.encoders) > 0, "a model needs at least one visual encoder.")
        window = min(self.semantic.window_seconds, self.coarse.window_seconds)
        check(self.generation.prompt_seconds < window,
              f"generation.prompt_seconds ({self.generation.prompt_seconds}) must be shorter than the "
              f"{window} s window.")
        names = [e.name for e in self.encoders]
        check(len(set(names)) == len(names), f"visual encoders repeat: {names}.")


def preset_names() -> list[str]:
    root = resources.files("v2meow") / "configs"
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / PRESET_FILE).is_file())


def load_yaml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise UserError(f"Cannot read config {path}: {e.strerror}.") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"Config {path} is not valid YAML ({e.__class__.__name__}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config {path} must be a mapping at the top level.")
    return data


def preset_file(name: str, file: str) -> Path | None:
    """A file of a shipped preset (e.g. ``train.yaml``), or None."""
    if name not in preset_names():
        return None
    path = resources.files("v2meow") / "configs" / name / file
    return Path(str(path)) if path.is_file() else None


def load_preset(name: str) -> V2MeowConfig:
    """The model config of preset ``name`` (``debug``, ``embedded``, ``paper``)."""
    if name not in preset_names():
        raise UserError(f"Unknown preset {name!r}; available: {', '.join(preset_names())}.")
    path = resources.files("v2meow") / "configs" / name / PRESET_FILE
    with resources.as_file(path) as p:
        data = load_yaml(p)
    return V2MeowConfig.from_dict(data, where=f"preset {name}")
