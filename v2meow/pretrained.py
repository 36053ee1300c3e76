"""Pretrained backbones: where their weights come from, and how they are loaded without the network.

Every pretrained backend (CLIP, I3D, ViT-VQGAN, HuBERT/MERT/w2v-BERT, EnCodec, DAC, CLAP) names its weights
with a ``path``: a local directory (or file), or a Hugging Face hub id that must already be in the user's
hub cache. Nothing is ever downloaded (``local_files_only``), and weights are read from safetensors only
(``use_safetensors=True``; v2meow never unpickles). A backend may instead be built from ``model_config``,
the configuration dict of the same network class, with random weights: the test suite does this with tiny
configurations, and a saved model directory does it too, because it stores every backbone's weights
beside its own (see :mod:`v2meow.pipeline`), so it rebuilds the network from the stored configuration and
never needs ``path`` again.

When weights are missing, the error names what to download and where to put it, in one sentence.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from v2meow.errors import UserError
from v2meow.identity import config_hash, weights_fingerprint

__all__ = [
    "is_hub_id",
    "resolve_local",
    "missing_weights",
    "load_hf_model",
    "config_to_dict",
    "read_json",
    "FrozenBackbone",
    "pretrained_params",
    "stable_config",
]


def is_hub_id(path: str) -> bool:
    """``owner/name`` (no leading ``/``, ``.`` or ``~``, exactly one slash) and not an existing local path."""
    if os.path.exists(path) or path.startswith(("/", ".", "~")) or os.sep != "/" and os.sep in path:
        return False
    parts = path.split("/")
    return len(parts) == 2 and all(parts)


def missing_weights(what: str, path: str, hint: str) -> UserError:
    """The one-sentence error for weights that are not on this machine. ``hint`` says how to get them."""
    return UserError(f"The {what} weights are not on this machine (looked for {path!r}); {hint}.")


def read_weights_file(path: str, weights_file: str, what: str, hint: str) -> tuple[Path, dict[str, Any]]:
    """The converted checkpoint at ``path`` (a safetensors file, or a folder holding ``weights_file``) as
    ``(file, state dict)``; a missing or unreadable file is one :class:`UserError` sentence."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path).expanduser()
    file = p / weights_file if p.is_dir() else p
    if not file.is_file():
        raise missing_weights(what, str(path), hint)
    try:
        return file, load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{file} is not a readable safetensors file ({e.__class__.__name__}).") from None


def hub_hint(path: str | None, default_repo: str, field: str) -> str:
    """How to fetch the weights into the hub cache (``path`` when it is a hub id, else ``default_repo``), or
    where to point ``field`` instead."""
    repo_id = path if path and is_hub_id(path) else default_repo
    return (f"download them once with `hf download {repo_id}` (they go to the Hugging Face cache, where v2meow "
            f"finds them offline) or set {field} to a local directory holding them")


def resolve_local(path: str, what: str, hint: str) -> Path:
    """A local path for ``path``: itself when it exists, else the cached snapshot of a hub id (no network)."""
    expanded = os.path.expanduser(path)
    if os.path.exists(expanded):
        return Path(expanded)
    if is_hub_id(path):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(path, local_files_only=True))
        except Exception:  # not cached (LocalEntryNotFoundError, and whatever an older hub client raises)
            raise missing_weights(what, path, hint) from None
    raise missing_weights(what, path, hint)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file as a dict, or None when it does not exist."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path} is not valid JSON.") from None
    return data if isinstance(data, dict) else None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A transformers config as a plain JSON dict (lists, not tuples), complete (not a diff from defaults)."""
    return json.loads(config.to_json_string(use_diff=False))


def load_hf_model(
    model_cls: type,
    config_cls: type,
    path: str | None,
    model_config: dict[str, Any] | None,
    load_weights: bool,
    what: str,
    hint: str,
    config_from_dict: Any = None,
) -> tuple[nn.Module, Path | None]:
    """Build a transformers model: from ``path`` with its weights, or from ``model_config`` with random ones.

    ``load_weights`` False (a saved model directory supplies the weights) always builds from ``model_config``.
    ``config_from_dict`` (optional) turns a checkpoint's ``config.json`` dict into ``config_cls`` where the
    checkpoint's own class is not in transformers (MERT). Returns the model in eval mode with gradients off,
    and the local directory it was loaded from (None when built from ``model_config``).
    """
    local: Path | None = None
    if load_weights and path:
        local = resolve_local(path, what, hint)
        kwargs: dict[str, Any] = {}
        if config_from_dict is not None:
            raw = read_json(local / "config.json")
            if raw is None:
                raise missing_weights(what, path, hint)
            kwargs["config"] = config_from_dict(raw)
        try:
            model, info = model_cls.from_pretrained(
                str(local), local_files_only=True, use_safetensors=True, dtype=torch.float32,
                output_loading_info=True, **kwargs,
            )
        except (OSError, ValueError) as e:
            if "safetensors" in str(e) or not any(local.glob("*.safetensors")):
                raise UserError(f"{local} holds no safetensors weights for the {what} (v2meow never loads pickled "
                                "weights); download the safetensors files or convert the checkpoint "
                                "(docs/backends.md).") from None
            raise UserError(f"The {what} weights in {local} cannot be loaded ({e.__class__.__name__}: "
                            f"{str(e).splitlines()[0][:200]}).") from None
        missing = [k for k in info.get("missing_keys", []) if "num_batches_tracked" not in k]
        if missing:
            raise UserError(f"The checkpoint in {local} does not fit the {what} network ({len(missing)} weights "
                            f"missing, e.g. {sorted(missing)[0]!r}).")
    elif model_config is not None:
        if not isinstance(model_config, dict):
            raise UserError(f"The {what} model_config must be a mapping of the network's configuration.")
        try:
            config = config_cls.from_dict(dict(model_config))
        except (TypeError, ValueError) as e:
            raise UserError(f"The {what} model_config is not a valid {config_cls.__name__} ({e}).") from None
        model = model_cls(config)
    elif path:
        raise UserError(f"The {what} has no model_config to rebuild it from; this model directory is incomplete.")
    else:
        raise UserError(f"The {what} needs a path to its pretrained weights; {hint}.")
    model.eval()
    model.requires_grad_(False)
    return model, local


class FrozenBackbone(nn.Module):
    """Base of the pretrained adapters: frozen, eval mode, and an identity with a cached weights fingerprint.

    The fingerprint (one pass over the weights) is computed on first use and forgotten whenever weights
    are loaded into the module, so a model directory's weights are what gets stamped.
    """

    NAME = "pretrained"
    VERSION = "1"

    def __init__(self) -> None:
        super().__init__()
        self._fingerprint: str | None = None
        self.register_load_state_dict_post_hook(_forget_fingerprint)

    def train(self, mode: bool = True) -> FrozenBackbone:
        # Frozen feature extractors: dropout and batch-norm statistics must never switch to training.
        return super().train(False)

    def weights_fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self)
        return self._fingerprint

    def stamp(self, settings: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """Identity: name, version, everything in ``extra``, a hash of ``settings`` and the weights fingerprint."""
        return {
            "name": self.NAME,
            "version": self.VERSION,
            **extra,
            "config_hash": config_hash(stable_config(settings)),
            "weights": self.weights_fingerprint(),
        }


def pretrained_params(backbone: FrozenBackbone, path: str | None, config: Any) -> dict[str, Any]:
    """What a pretrained visual encoder adds to its identity: weights source, network config hash, fingerprint."""
    settings = config if isinstance(config, dict) else config_to_dict(config)
    return {"source": path or "random-init", "config_hash": config_hash(stable_config(settings)),
            "weights": backbone.weights_fingerprint()}


# transformers records these in every config (at every level); they do not change what the network computes,
# and some differ between machines (the cache path in _name_or_path) or library versions.
UNSTAMPED_CONFIG_KEYS = ("transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype")


def stable_config(value: Any) -> Any:
    """``value`` with :data:`UNSTAMPED_CONFIG_KEYS` removed from every mapping in it, for identity hashes."""
    if isinstance(value, dict):
        return {k: stable_config(v) for k, v in value.items() if k not in UNSTAMPED_CONFIG_KEYS}
    if isinstance(value, (list, tuple)):
        return [stable_config(v) for v in value]
    return value


def _forget_fingerprint(module: nn.Module, _keys: Any) -> None:
    module._fingerprint = None
