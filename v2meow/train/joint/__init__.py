"""Training the embedded joint music-text model (MuLan's role) on a folder of music with no human captions.

Each step draws ``batch_size`` different tracks, a random crop of each (its length drawn per step between
``min_crop_seconds`` and the model's ``crop_seconds``, so the tower sees every length up to the 10 s segments it
embeds later, at a lower average cost on a CPU), and one caption per crop from what is known about it
(:mod:`v2meow.text.captions`: labels, measured properties of that stretch, a source hint; a seeded phrasing).
The loss is the symmetric InfoNCE of :func:`v2meow.text.joint.contrastive_loss` with a learned temperature;
crops whose captions are identical count as positives of each other.

The music is read once: a log-mel of every track (float16) and the measured properties are cached in the run
directory, so a resumed run starts in seconds. Random numbers come from ``(seed, step)``, so a run resumed from a
checkpoint continues exactly as an uninterrupted one. Steps whose loss or gradient is not finite are skipped;
too many in a row stop the run. Held-out files (``sources.json``) are never trained on; their text→audio
retrieval is logged at ``eval_every`` for monitoring only (the exported model is the last step's).

    train_joint("data_cache/music", "embedded", "runs/joint")   # v2meow/configs/embedded/joint.yaml

The package: :mod:`.config` (settings), :mod:`.data` (tracks, cached mels and facts, the split),
:mod:`.evaluation` (text -> audio retrieval) and :mod:`.trainer` (the trainer, ``train_joint``, ``load_joint``).
Every public name is importable from ``v2meow.train.joint``.
"""

from v2meow.io.audio import AUDIO_EXTENSIONS
from v2meow.train.joint.config import EXPORT_DIR, JointTrainConfig, load_train_config
from v2meow.train.joint.data import MusicSet, data_summary, is_validation, list_tracks, read_track, track_mel
from v2meow.train.joint.evaluation import evaluate_retrieval, mel_segments_embedding, retrieval, text_features
from v2meow.train.joint.trainer import JointTrainer, load_joint, lr_at, train_joint

__all__ = ["JointTrainConfig", "JointTrainer", "MusicSet", "evaluate_retrieval", "list_tracks", "load_joint",
           "mel_segments_embedding", "retrieval", "train_joint",
           "AUDIO_EXTENSIONS", "EXPORT_DIR", "load_train_config", "data_summary", "is_validation", "read_track",
           "track_mel", "text_features", "lr_at"]
