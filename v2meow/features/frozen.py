"""The base classes of the pretrained visual encoders: a frozen torch backbone behind :class:`VisualEncoder`.

:class:`PretrainedEncoder` (CLIP, ViT-VQGAN, I3D) is built by the registry with ``load_weights`` and stamps itself
with its ``name`` and ``version``. :class:`FrameEmbeddingEncoder` (CLIP, ViT-VQGAN) embeds single frames: decoded
square at the network's image size, run in batches, averaged per window (:class:`BatchedFrameMeanState`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from v2meow.features.base import BatchedFrameMeanState, EncoderState, VisualEncoder
from v2meow.pretrained import FrozenBackbone


class PretrainedEncoder(FrozenBackbone, VisualEncoder):
    """A visual encoder over a frozen pretrained network. Its ``name`` and ``version`` (the registry's and the
    identity's) are also its backbone stamp (``NAME``, ``VERSION``)."""

    pretrained = True

    @property
    def NAME(self) -> str:
        return self.name

    @property
    def VERSION(self) -> str:
        return self.version


class FrameEmbeddingEncoder(PretrainedEncoder):
    """A pretrained encoder that embeds frames one by one (``embed_frames``), ``batch_size`` at a time, and
    averages the embeddings over each window."""

    def _sample(self, rate: float, decode_fps: float | None, image_size: int, batch_size: int) -> None:
        """Features at ``rate``; frames decoded at ``decode_fps`` (default: ``rate``), square at ``image_size``."""
        self.rate = float(rate)
        self.decode_fps = self.rate if decode_fps is None else float(decode_fps)
        self.frame_size = (int(image_size), int(image_size))
        self.batch_size = batch_size

    def pixels(self, frames: np.ndarray) -> Tensor:
        """uint8 RGB ``[N, H, W, 3]`` → float ``[N, 3, S, S]`` in [0, 1] at the network's image size (frames
        decoded elsewhere at another size are resized)."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0  # [N, 3, H, W]
        size = self.frame_size[1]
        if x.shape[-2:] != (size, size):
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return x

    def embed_frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB ``[N, H, W, 3]`` → float32 embeddings ``[N, dim]``."""
        raise NotImplementedError

    def begin(self, duration: float) -> EncoderState:
        return BatchedFrameMeanState(self, duration)
