"""Acoustic codecs: waveform ↔ RVQ codes ``[B, N_q, T_a]`` (the project's SoundStream; adapters later)."""

from v2meow.tokenizers.codec.base import AcousticCodec, compare_identities, config_hash, weights_fingerprint
from v2meow.tokenizers.codec.losses import MultiScaleMelLoss, MultiScaleSTFTLoss
from v2meow.tokenizers.codec.rvq import ResidualVQ, RVQConfig
from v2meow.tokenizers.codec.soundstream import SoundStream, SoundStreamConfig

__all__ = [
    "AcousticCodec",
    "MultiScaleMelLoss",
    "MultiScaleSTFTLoss",
    "RVQConfig",
    "ResidualVQ",
    "SoundStream",
    "SoundStreamConfig",
    "compare_identities",
    "config_hash",
    "weights_fingerprint",
]
