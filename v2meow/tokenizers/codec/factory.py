"""The acoustic codec by name: ``soundstream`` (the project's own, trained here), ``encodec`` or ``dac`` (pretrained).

:class:`CodecConfig` names the backend and holds its settings; it also answers the numbers every consumer
reads (``sample_rate``, ``frame_rate``, ``hop_length``, ``num_levels``, ``codebook_size``) so code that only
needs those never has to know which codec it is.

YAML::

    codec: {backend: soundstream, soundstream: {sample_rate: 16000, num_levels: 12, ...}}
    codec: {backend: dac, dac: {path: descript/dac_16khz, num_levels: 12}}

A codec mapping without ``backend`` (the shape of format-1 model directories and older presets: the
SoundStream fields directly) is read as ``backend: soundstream``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from v2meow.configbase import Config, check, forwarded
from v2meow.errors import ConfigError
from v2meow.tokenizers.codec.base import AcousticCodec
from v2meow.tokenizers.codec.dac import DacCodecConfig
from v2meow.tokenizers.codec.encodec import EncodecCodecConfig
from v2meow.tokenizers.codec.soundstream import SoundStream, SoundStreamConfig

CODEC_BACKENDS = ("soundstream", "encodec", "dac")


@dataclass
class CodecConfig(Config):
    """Which acoustic codec, and its settings (only the chosen backend's section is set)."""

    backend: str = "soundstream"
    soundstream: SoundStreamConfig | None = None
    encodec: EncodecCodecConfig | None = None
    dac: DacCodecConfig | None = None

    def __post_init__(self) -> None:
        if self.backend == "soundstream" and self.soundstream is None:
            self.soundstream = SoundStreamConfig()
        super().__post_init__()

    def validate(self) -> None:
        check(self.backend in CODEC_BACKENDS,
              f"codec backend must be one of {', '.join(CODEC_BACKENDS)}, got {self.backend!r}.")
        check(getattr(self, self.backend) is not None,
              f"codec backend {self.backend!r} needs a {self.backend} section.")
        others = [b for b in CODEC_BACKENDS if b != self.backend and getattr(self, b) is not None]
        check(not others, f"the codec is {self.backend!r} but the config also has a section for {', '.join(others)}.")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | None = None) -> CodecConfig:
        legacy = {f.name for f in dataclasses.fields(SoundStreamConfig)}
        if isinstance(data, dict) and data and "backend" not in data and set(data) <= legacy:
            data = {"backend": "soundstream", "soundstream": data}
        return super().from_dict(data, where)

    @property
    def active(self) -> SoundStreamConfig | EncodecCodecConfig | DacCodecConfig:
        """The chosen backend's section."""
        return getattr(self, self.backend)

    # the numbers every backend's section declares, read from the chosen one
    sample_rate = forwarded("active", "sample_rate")
    frame_rate = forwarded("active", "frame_rate")
    hop_length = forwarded("active", "hop_length")
    num_levels = forwarded("active", "num_levels")
    codebook_size = forwarded("active", "codebook_size")


def build_codec(cfg: CodecConfig | SoundStreamConfig, load_weights: bool = True) -> AcousticCodec:
    """The codec ``cfg`` names. ``load_weights`` False: a pretrained codec is built from its stored
    ``model_config`` and gets its weights from a model directory (SoundStream always starts random)."""
    if isinstance(cfg, SoundStreamConfig):
        return SoundStream(cfg)
    if cfg.backend == "soundstream":
        return SoundStream(cfg.soundstream)
    if cfg.backend == "encodec":
        from v2meow.tokenizers.codec.encodec import EncodecCodec

        return EncodecCodec(cfg.encodec, load_weights=load_weights)
    if cfg.backend == "dac":
        from v2meow.tokenizers.codec.dac import DacCodec

        return DacCodec(cfg.dac, load_weights=load_weights)
    raise ConfigError(f"Unknown codec backend {cfg.backend!r}.")
