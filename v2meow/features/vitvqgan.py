"""The ``vitvqgan`` encoder: ViT-VQGAN image tokens (Yu et al. 2021), embedded and pooled per frame.

The paper tokenises each frame with a ViT-VQGAN encoder into 1024 codes (a 32×32 grid: 256-pixel images, 8-pixel
patches) from a vocabulary of 8192. Google's weights are not public; the open reimplementation with exactly those
numbers is ``enhancing-transformers`` (thuanz123), ImageNet ``vitvq_base``: a 12-layer ViT encoder of width 768
(12 heads of 64, tanh MLP 3072, fixed 2-D sin-cos positions), a linear map to 32-d, and an l2-normalised codebook
of 8192 × 32. Only its encoder half is needed and written here, with that project's module names.

Codes become features for the stages' encoder as the codebook's own (l2-normalised) vectors, averaged over a
``grid × grid`` split of the code map (default 4×4), so the feature keeps the coarse layout: ``dim = grid² × 32``
(512). Frames are decoded at the model's image size (256×256), values in [0, 1] as it was trained.

Weights: convert the Lightning checkpoint's ``state_dict`` to safetensors once (docs/backends.md). Keys read:
``encoder.to_patch_embedding.0.{weight,bias}``, ``encoder.en_pos_embedding``,
``encoder.transformer.layers.<i>.0.norm.{weight,bias}``, ``...<i>.0.fn.to_qkv.weight``,
``...<i>.0.fn.to_out.{weight,bias}``, ``...<i>.1.norm.*``, ``...<i>.1.fn.net.0.*``, ``...<i>.1.fn.net.2.*``,
``encoder.norm.*``, ``pre_quant.{weight,bias}``, ``quantizer.embedding.weight``; decoder and loss keys are ignored.

Options: ``path`` (the ``.safetensors`` file or a directory holding ``vitvqgan.safetensors``), ``model_config``
(architecture: ``image_size``, ``patch_size``, ``dim``, ``depth``, ``heads``, ``dim_head``, ``mlp_dim``, ``embed_dim``,
``n_embed``; defaults are ``vitvq_base``), ``grid``, ``decode_fps``, ``batch_size``, ``random_init`` (tests).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from v2meow.errors import UserError
from v2meow.features.frozen import FrameEmbeddingEncoder
from v2meow.features.registry import register
from v2meow.identity import config_hash
from v2meow.pretrained import missing_weights, read_weights_file

WEIGHTS_FILE = "vitvqgan.safetensors"
BASE_CONFIG: dict[str, int] = {
    "image_size": 256, "patch_size": 8, "dim": 768, "depth": 12, "heads": 12, "dim_head": 64, "mlp_dim": 3072,
    "embed_dim": 32, "n_embed": 8192,
}
_HINT = ("convert the enhancing-transformers ImageNet ViT-VQGAN checkpoint (imagenet_vitvq_base) to safetensors as "
         "docs/backends.md shows and set the vitvqgan encoder's options.path to that file")


def sincos_2d(dim: int, grid: int) -> Tensor:
    """Fixed 2-D sin-cos positions ``[grid², dim]``: half the channels encode the row, half the column."""

    def one_d(d: int, pos: Tensor) -> Tensor:
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
        out = pos.reshape(-1, 1).double() * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    g = torch.arange(grid, dtype=torch.float64)
    gw, gh = torch.meshgrid(g, g, indexing="xy")  # the reference builds the grid with w first
    return torch.cat([one_d(dim // 2, gw), one_d(dim // 2, gh)], dim=1).float()


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        q, k, v = self.to_qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # each [B, h, N, d]
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _Transformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([_PreNorm(dim, _Attention(dim, heads, dim_head)), _PreNorm(dim, _FeedForward(dim, mlp_dim))])
            for _ in range(depth)
        )

    def forward(self, x: Tensor) -> Tensor:
        for attn, ff in self.layers:
            x = x + attn(x)
            x = x + ff(x)
        return x


class _ViTEncoder(nn.Module):
    def __init__(self, c: dict[str, int]) -> None:
        super().__init__()
        grid = c["image_size"] // c["patch_size"]
        self.to_patch_embedding = nn.Sequential(nn.Conv2d(3, c["dim"], c["patch_size"], stride=c["patch_size"]))
        self.en_pos_embedding = nn.Parameter(sincos_2d(c["dim"], grid)[None], requires_grad=False)
        self.transformer = _Transformer(c["dim"], c["depth"], c["heads"], c["dim_head"], c["mlp_dim"])
        self.norm = nn.LayerNorm(c["dim"])

    def forward(self, img: Tensor) -> Tensor:
        x = self.to_patch_embedding(img).flatten(2).transpose(1, 2)  # [B, N, dim], row-major patches
        return self.norm(self.transformer(x + self.en_pos_embedding))


class _Quantizer(nn.Module):
    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)


class ViTVQEncoder(nn.Module):
    """ViT-VQGAN encoder half: images ``[B, 3, S, S]`` in [0, 1] → code ids ``[B, (S/p)²]`` (row-major)."""

    def __init__(self, config: dict[str, int]) -> None:
        super().__init__()
        self.config = c = dict(config)
        self.encoder = _ViTEncoder(c)
        self.pre_quant = nn.Linear(c["dim"], c["embed_dim"])
        self.quantizer = _Quantizer(c["n_embed"], c["embed_dim"])

    def codebook(self) -> Tensor:
        """The l2-normalised code vectors ``[n_embed, embed_dim]`` (the quantizer compares on the sphere)."""
        return F.normalize(self.quantizer.embedding.weight, dim=-1)

    def codes(self, images: Tensor) -> Tensor:
        z = F.normalize(self.pre_quant(self.encoder(images)), dim=-1)  # [B, N, e]
        # Nearest code on the unit sphere = largest dot product.
        return torch.einsum("bne,ke->bnk", z, self.codebook()).argmax(-1)


def _check_config(c: dict[str, Any]) -> dict[str, int]:
    unknown = sorted(set(c) - set(BASE_CONFIG))
    if unknown:
        raise UserError(f"vitvqgan model_config has unknown key(s) {', '.join(unknown)}.")
    full = {**BASE_CONFIG, **c}
    if not all(isinstance(v, int) and v > 0 for v in full.values()):
        raise UserError("vitvqgan model_config values must be positive integers.")
    if full["image_size"] % full["patch_size"] or full["dim"] % 2 or (full["dim"] // 2) % 2:
        raise UserError("vitvqgan image_size must be a multiple of patch_size, and dim a multiple of 4.")
    return full


@register("vitvqgan")
class VitVqganEncoder(FrameEmbeddingEncoder):
    """Pooled ViT-VQGAN code embeddings ``[T, grid² × embed_dim]`` per window (see the module docstring)."""

    def __init__(
        self,
        rate: float = 1.0,
        path: str | None = None,
        model_config: dict[str, Any] | None = None,
        grid: int = 4,
        decode_fps: float | None = None,
        batch_size: int = 8,
        random_init: bool = False,
        load_weights: bool = True,
    ) -> None:
        super().__init__()
        c = _check_config(model_config or {})
        side = c["image_size"] // c["patch_size"]
        if not (1 <= grid <= side and side % grid == 0):
            raise UserError(f"vitvqgan grid must divide the {side}×{side} code map, got {grid}.")
        self._sample(rate, decode_fps, c["image_size"], max(1, int(batch_size)))
        self.grid = int(grid)
        self.path = path
        self.random_init = bool(random_init)
        self.net = ViTVQEncoder(c)
        self.dim = self.grid * self.grid * c["embed_dim"]
        self.codes_per_frame = side * side
        self.vocab_size = c["n_embed"]
        if load_weights and not random_init:
            if not path:
                raise missing_weights("ViT-VQGAN", "(no path)", _HINT)
            self._load(path)
        self.eval()
        self.requires_grad_(False)

    def _load(self, path: str) -> None:
        file, state = read_weights_file(path, WEIGHTS_FILE, "ViT-VQGAN", _HINT)
        own = self.net.state_dict()
        missing = sorted(set(own) - set(state))
        if missing:
            raise UserError(f"{file} is not a ViT-VQGAN checkpoint of this shape ({len(missing)} weights missing, "
                            f"e.g. {missing[0]!r}).")
        bad = [k for k, v in own.items() if tuple(state[k].shape) != tuple(v.shape)]
        if bad:
            raise UserError(f"{file} does not fit the vitvqgan model_config ({bad[0]}: {tuple(state[bad[0]].shape)} "
                            f"instead of {tuple(own[bad[0]].shape)}).")
        self.net.load_state_dict({k: state[k].float() for k in own})

    def resolved_options(self) -> dict[str, Any]:
        return {"path": self.path, "model_config": dict(self.net.config), "grid": self.grid,
                "decode_fps": self.decode_fps, "batch_size": self.batch_size, "random_init": self.random_init}

    def params(self) -> dict[str, Any]:
        return {"grid": self.grid, "codes_per_frame": self.codes_per_frame, "vocab_size": self.vocab_size,
                "source": "random-init" if self.random_init else self.path,
                "config_hash": config_hash(self.net.config), "weights": self.weights_fingerprint()}

    @torch.no_grad()
    def frame_codes(self, frames: np.ndarray) -> Tensor:
        """uint8 RGB ``[N, H, W, 3]`` → code ids ``[N, side, side]`` in ``[0, vocab_size)``."""
        side = int(math.isqrt(self.codes_per_frame))
        return self.net.codes(self.pixels(frames)).view(-1, side, side)

    @torch.no_grad()
    def embed_frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB ``[N, H, W, 3]`` → pooled code embeddings float32 ``[N, grid² × embed_dim]``."""
        codes = self.frame_codes(frames)  # [N, s, s]
        emb = self.net.codebook()[codes].permute(0, 3, 1, 2)  # [N, e, s, s]
        pooled = F.adaptive_avg_pool2d(emb, self.grid)  # [N, e, g, g]
        return pooled.permute(0, 2, 3, 1).reshape(len(frames), -1).numpy()  # cell-major, e inner
