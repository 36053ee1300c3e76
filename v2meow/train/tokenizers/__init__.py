"""Training the project's own tokenizers on a folder of music: the SoundStream codec and the semantic tokenizer.

Both loops read random crops straight from audio files (no shards: the tokenizers are what makes shards), with
a sampler seeded by ``(seed, step)``; every step also reseeds torch from ``(seed, step)``, so a run resumed from
a checkpoint continues exactly as an uninterrupted one. Checkpoints go through :mod:`v2meow.train.checkpoint`.

- :func:`train_codec`: SoundStream (either body) with multi-scale STFT + mel reconstruction, commitment, and a
  multi-scale STFT discriminator (hinge + feature matching) switched on after ``disc_start_step``. A step whose
  loss or gradient is not finite is skipped *and* the quantiser's EMA codebooks are restored to what they were
  before it, so a NaN batch leaves no trace; too many in a row stop the run.
- :func:`train_semantic_tokenizer`: HuBERT iteration 1 (k-means ids of log-mel + chroma frames as masked-
  prediction targets), then a seeded k-means of the encoder's token layer. The encoder is rounded to float16
  before that k-means is fitted, because the shipped weights are float16: the k-means' record of the encoder
  weights it was fitted on then still matches after loading (see :mod:`v2meow.tokenizers.default`).
- :func:`export_tokenizers`: both runs → a tokenizer directory (float16 safetensors + ``tokenizers.json``).

Files listed as held out in a data folder's ``sources.json`` (``scripts/get_music.py``) are never read here.

Layout: :mod:`.common` (the audio crops and the fit loop both trainers share), :mod:`.codec`, :mod:`.semantic`,
:mod:`.export`; every public name is re-exported here.
"""

from v2meow.train.tokenizers.codec import CodecTrainConfig, CodecTrainer, load_codec_run, train_codec
from v2meow.train.tokenizers.common import AUDIO_EXTENSIONS, AudioCrops, list_audio
from v2meow.train.tokenizers.common import SOURCES_FILE as SOURCES_FILE  # bench/ imports it from here
from v2meow.train.tokenizers.export import export_tokenizers
from v2meow.train.tokenizers.semantic import (
    SemanticTrainConfig,
    SemanticTrainer,
    load_semantic_run,
    train_semantic_tokenizer,
    truncated_encoder,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "list_audio",
    "AudioCrops",
    "CodecTrainConfig",
    "SemanticTrainConfig",
    "CodecTrainer",
    "SemanticTrainer",
    "train_codec",
    "train_semantic_tokenizer",
    "export_tokenizers",
    "load_codec_run",
    "load_semantic_run",
    "truncated_encoder",
]
