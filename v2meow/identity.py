"""Identity stamps: every backend records what it is in every file it produces, and every consumer compares
stamps before reading (tokens made by one tokenizer are never read as another's). A stamp holds a hash of the
configuration *and* a fingerprint of the weights, because two trainings of one config make different outputs.

This module sits below every backend (features, tokenizers, text, pretrained adapters) so each can stamp
without importing another's package.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from torch import nn

from v2meow.configbase import Config

__all__ = ["config_hash", "weights_fingerprint"]


def config_hash(config: Config | dict[str, Any]) -> str:
    """Short stable hash (12 hex digits) of a config's plain-dict form."""
    data = config.to_dict() if isinstance(config, Config) else config
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@torch.no_grad()
def weights_fingerprint(module: nn.Module) -> str:
    """Short hash (12 hex digits) of every tensor in ``module.state_dict()`` (names, shapes, values).

    Costs one pass over the weights (tens of ms for a few million parameters): cache it when stamping many files.
    """
    h = hashlib.blake2b(digest_size=6)
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
