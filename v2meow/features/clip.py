"""The ``clip`` encoder: CLIP's image tower, one projected embedding per frame (the paper's default).

The paper uses the released ViT-L/14 (``openai/clip-vit-large-patch14``; the sentence-transformers copy it cites
holds the same image tower): 224×224 RGB frames, normalised with CLIP's mean and std, through the vision
transformer and its projection to the 768-d joint image-text space. Features are L2-normalised (CLIP compares
embeddings by cosine) and averaged over each output window when frames are decoded faster than ``rate``.

Frames are decoded straight at the model's input size (``image_size`` square), which squeezes the aspect
ratio instead of CLIP's resize-and-centre-crop: the whole frame is seen, as the music should see it.

Options (``EncoderConfig.options``): ``path`` (local directory or hub id of a ``CLIPModel`` or
``CLIPVisionModelWithProjection`` checkpoint with safetensors weights), ``model_config`` (a
``CLIPVisionConfig`` dict: random weights, for tests; saved models store it), ``decode_fps`` (default: ``rate``),
``batch_size`` (frames per forward pass).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from v2meow.errors import UserError
from v2meow.features.frozen import FrameEmbeddingEncoder
from v2meow.features.registry import register
from v2meow.pretrained import config_to_dict, hub_hint, load_hf_model, pretrained_params

DEFAULT_HUB_ID = "openai/clip-vit-large-patch14"
# CLIP's image normalisation (the same for every OpenAI CLIP checkpoint).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _vision_config_from_dict(raw: dict[str, Any]) -> Any:
    """A ``CLIPVisionConfig`` from a checkpoint's ``config.json`` (full ``CLIPModel`` or vision-only)."""
    from transformers import CLIPVisionConfig

    if raw.get("model_type") == "clip":
        vision = dict(raw.get("vision_config") or {})
        vision.setdefault("projection_dim", raw.get("projection_dim", 512))
        return CLIPVisionConfig.from_dict(vision)
    return CLIPVisionConfig.from_dict(raw)


@register("clip")
class ClipEncoder(FrameEmbeddingEncoder):
    """CLIP image embeddings ``[T, projection_dim]`` (768 for ViT-L/14), one per window of ``1 / rate`` s."""

    def __init__(
        self,
        rate: float = 1.0,
        path: str | None = DEFAULT_HUB_ID,
        model_config: dict[str, Any] | None = None,
        decode_fps: float | None = None,
        batch_size: int = 16,
        load_weights: bool = True,
    ) -> None:
        super().__init__()
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        if batch_size < 1:
            raise UserError(f"clip batch_size must be >= 1, got {batch_size}.")
        self.path = path
        self.model, _ = load_hf_model(
            CLIPVisionModelWithProjection, CLIPVisionConfig, path, model_config, load_weights,
            "CLIP image tower", hub_hint(path, DEFAULT_HUB_ID, "the clip encoder's options.path"),
            config_from_dict=_vision_config_from_dict,
        )
        c = self.model.config
        self._sample(rate, decode_fps, c.image_size, int(batch_size))
        self.dim = int(c.projection_dim)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def resolved_options(self) -> dict[str, Any]:
        return {"path": self.path, "model_config": config_to_dict(self.model.config), "decode_fps": self.decode_fps,
                "batch_size": self.batch_size}

    def params(self) -> dict[str, Any]:
        return {"normalized": True, **pretrained_params(self, self.path, self.model.config)}

    @torch.no_grad()
    def embed_frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB ``[N, H, W, 3]`` at ``frame_size`` → L2-normalised image embeddings float32 ``[N, D]``."""
        x = (self.pixels(frames) - self.mean) / self.std
        emb = self.model(pixel_values=x).image_embeds  # [N, D]
        return torch.nn.functional.normalize(emb.float(), dim=-1).numpy()
