"""MCC and KLD backends from the project's joint music-text model (offline; the MuLan/CLAP role).

- :class:`JointModelEmbedder`: audio and text into the joint space, for MCC (``metrics/mcc.py``).
- :class:`ZeroShotTagger`: class probabilities over a fixed music tag vocabulary, the softmax of the joint
  model's scaled cosine between the audio and each tag's text, for KLD (``metrics/kld.py``). It stands where
  the paper's LEAF AudioSet classifier stood; reports name it, and its numbers are not comparable with KLDs
  from an AudioSet classifier.
"""

from __future__ import annotations

import numpy as np
import torch

from v2meow.metrics.kld import AudioClassifier
from v2meow.metrics.mcc import JointEmbedder
from v2meow.text.base import AudioTextTower

# moods, styles, instruments and tempo words the embedded joint model was trained to relate to music
TAGS: tuple[str, ...] = (
    "happy", "sad", "calm", "energetic", "dark", "bright", "epic", "romantic", "mysterious", "nostalgic",
    "tense", "playful", "electronic", "orchestral", "acoustic", "ambient", "rock", "jazz", "piano", "guitar",
    "strings", "drums", "synthesizer", "choir", "fast tempo", "slow tempo", "loud", "quiet", "major key",
    "minor key",
)


class JointModelEmbedder(JointEmbedder):
    """A :class:`v2meow.text.joint.JointModel` behind the MCC interface."""

    def __init__(self, joint, name: str = "v2meow-joint"):
        self.joint = joint.eval()
        self.name = name
        self.sample_rate = int(joint.cfg.sample_rate)
        self.crop_seconds = float(joint.cfg.segment_seconds)

    @torch.no_grad()
    def embed_audio(self, wav: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None]
        return self.joint.embed_audio(x)[0].double().numpy()

    @torch.no_grad()
    def embed_text(self, text: str) -> np.ndarray:
        return self.joint.embed_text([text])[0].double().numpy()


class ZeroShotTagger(AudioClassifier):
    """Zero-shot tag logits: ``exp(logit_scale) * cos(audio, text("<tag> music"))`` over :data:`TAGS`."""

    def __init__(self, joint, tags: tuple[str, ...] = TAGS, name: str = "v2meow-joint-zero-shot-tags"):
        self.joint = joint.eval()
        self.name = name
        self.tags = tags
        self.sample_rate = int(joint.cfg.sample_rate)
        self.num_classes = len(tags)
        self.chunk_seconds = float(joint.cfg.segment_seconds)
        with torch.no_grad():
            self._text = joint.embed_text([f"{t} music" for t in tags]).double()  # [C, D]
            self._scale = float(joint.logit_scale.exp().clamp(max=joint.cfg.max_logit_scale))

    @torch.no_grad()
    def logits(self, chunk: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))[None]
        a = self.joint.embed_audio(x)[0].double()
        return (self._scale * (self._text @ a)).numpy()


def load_joint_backend(model, path: str | None = None) -> tuple[object | None, str]:
    """The joint model to score with: the one at ``path`` when given (a joint export or run, or ``embedded``: pinned,
    so that models shipping different joint models are scored in one space), else the model's own, else the shipped
    one; ``(None, reason)`` without."""
    text = getattr(model, "text", None)
    if path is not None:
        from v2meow.train.joint import load_joint

        joint, source = load_joint(path)[0].eval(), f"the joint model {path} (pinned)"
    elif isinstance(text, AudioTextTower):
        joint, source = text, "the model's own joint model"
    else:
        from v2meow.errors import UserError

        try:
            from v2meow.text.joint import JointModel

            joint, source = JointModel.load("embedded"), "the shipped joint model (v2meow/assets/joint)"
        except (UserError, ImportError) as e:
            return None, f"no joint music-text model available ({e})"
    try:
        joint.embed_text(["music"])  # the text tower (MiniLM) must load too
    except Exception as e:  # a missing optional package: report why instead of failing the whole evaluation
        return None, f"the joint model's text tower could not load ({e.__class__.__name__}: {e})"
    return joint, source
