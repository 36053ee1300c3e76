"""Feature-specific adaptors: every conditioning input becomes part of one encoder stream.

Each visual feature stream (and, in stage 2, the semantic tokens) is projected to the model width by its
own adaptor and tagged with a learned type embedding; the joint music-text embedding (MuLan role) is one
extra position. Streams are concatenated along time. Encoder positions are time-aligned across streams
(an item at time t gets position ``round(t * position_rate)``), so the relative position bias relates
what happens at the same moment in different streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from v2meow.configbase import Config, check

STREAM_KINDS = ("features", "tokens")
UNTIMED = -1  # the position of an item that belongs to no moment (the joint embedding)


@dataclass
class StreamSpec(Config):
    """One conditioning stream: ``features [B, T, dim]`` or ``tokens [B, T]`` (ids < dim), at ``rate`` per second."""

    name: str = ""
    dim: int = 1
    rate: float = 1.0
    kind: str = "features"

    def validate(self) -> None:
        check(bool(self.name), "a conditioning stream needs a name.")
        check(self.kind in STREAM_KINDS, f"stream {self.name}: kind must be one of {STREAM_KINDS}, got {self.kind!r}.")
        check(1 <= self.dim <= 1_000_000, f"stream {self.name}: dim must be in 1..1000000, got {self.dim}.")
        check(0.0 < self.rate <= 1000.0, f"stream {self.name}: rate must be in (0, 1000], got {self.rate}.")


class ConditionInput(nn.Module):
    """Builds the encoder input from named streams and an optional joint embedding.

    ``forward`` returns ``x [B, S, W]``, ``positions [B, S]`` (long) and ``valid [B, S]`` (bool).
    A missing or dropped joint embedding is replaced by a learned null vector, which is what the
    model sees without a prompt and what classifier-free guidance contrasts against.
    """

    def __init__(self, streams: list[StreamSpec], joint_dim: int, width: int):
        super().__init__()
        check(len(streams) > 0 or joint_dim > 0, "the encoder needs at least one conditioning stream.")
        names = [s.name for s in streams]
        check(len(set(names)) == len(names), f"conditioning stream names repeat: {names}.")
        self.streams = list(streams)
        self.joint_dim = joint_dim
        self.position_rate = max([s.rate for s in streams], default=1.0)
        self.adaptors = nn.ModuleDict()
        for s in streams:
            if s.kind == "features":
                # LayerNorm first: pretrained features (CLIP, I3D) and hand-made ones differ in scale
                self.adaptors[s.name] = nn.Sequential(nn.LayerNorm(s.dim), nn.Linear(s.dim, width))
            else:
                self.adaptors[s.name] = nn.Embedding(s.dim, width)
        n_types = len(streams) + (1 if joint_dim > 0 else 0)
        self.type_embedding = nn.Embedding(max(n_types, 1), width)
        if joint_dim > 0:
            self.joint_adaptor = nn.Sequential(nn.LayerNorm(joint_dim), nn.Linear(joint_dim, width))
            self.joint_null = nn.Parameter(torch.zeros(width))

    def forward(
        self,
        streams: dict[str, Tensor],
        valid: dict[str, Tensor] | None = None,
        joint: Tensor | None = None,
        joint_valid: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``streams[name]``: ``[B, T, D]`` or ``[B, T]``; ``valid[name]``: ``[B, T]``; ``joint``: ``[B, D_m]``;
        ``joint_valid``: ``[B]`` (False = dropped, the null vector is used)."""
        xs, ps, vs = [], [], []
        batch = None
        # inputs may come from the CPU in float32: they go to this module's device and precision here
        weight = self.type_embedding.weight
        for i, spec in enumerate(self.streams):
            if spec.name not in streams:
                raise KeyError(f"conditioning stream {spec.name!r} is missing")
            s = streams[spec.name]
            s = s.to(weight.device, torch.long) if spec.kind == "tokens" else s.to(weight.device, weight.dtype)
            h = self.adaptors[spec.name](s)  # [B, T, W]
            batch, t = h.shape[0], h.shape[1]
            h = h + self.type_embedding.weight[i]
            pos = torch.round(torch.arange(t, device=h.device) * (self.position_rate / spec.rate)).long()
            xs.append(h)
            ps.append(pos[None].expand(batch, t))
            v = (valid or {}).get(spec.name)
            vs.append(v.to(h.device, torch.bool) if v is not None else
                      torch.ones(batch, t, dtype=torch.bool, device=h.device))
        if self.joint_dim > 0:
            if batch is None:
                batch = joint.shape[0] if joint is not None else 1
            device = self.joint_null.device
            null = self.joint_null.expand(batch, -1)
            if joint is None:
                j = null
            else:
                j = self.joint_adaptor(joint.to(device, null.dtype))
                if joint_valid is not None:
                    j = torch.where(joint_valid[:, None].to(device, torch.bool), j, null)
            j = (j + self.type_embedding.weight[len(self.streams)])[:, None]
            xs.append(j)
            ps.append(torch.full((batch, 1), UNTIMED, dtype=torch.long, device=device))
            vs.append(torch.ones(batch, 1, dtype=torch.bool, device=device))
        return torch.cat(xs, 1), torch.cat(ps, 1), torch.cat(vs, 1)
