"""The model directory format: ``config.json`` (format, version, the whole config, one entry per part) and one
``<part>.safetensors`` per part; never a pickle, and loading never needs a trainer.

Reading is hardened against damaged or hostile directories: the config's size and JSON are checked, every weight
file must be a ``.safetensors`` file inside the directory whose SHA-256 matches the one recorded, a model whose
config asks for far larger tensors than its files hold is refused before the allocation (:class:`AllocationGuard`),
and weights load strictly (:func:`load_state`). Writing goes through :func:`staged_dir`: a temporary folder beside
the target that replaces it atomically, which the tokenizer directory and training checkpoints use too.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

import v2meow
from v2meow.errors import UserError
from v2meow.io.atomic import publish, sha256_file

FORMAT = "v2meow-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
# Building a model from a directory's config may allocate twice the values its weight files hold plus this
# headroom (non-persistent buffers), and never more than MAX_PARAMETERS (80 GB in fp32): a config.json that asks
# for more is refused before the allocation (see AllocationGuard).
ALLOCATION_HEADROOM = 64 << 20
MAX_PARAMETERS = 20_000_000_000
# A config.json larger than this is not a model config (the largest, with pretrained backbones, is a few KB).
MAX_CONFIG_BYTES = 16 << 20


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def replace_dir(tmp: Path, root: Path) -> None:
    """Publish the finished folder ``tmp`` as ``root``; an existing ``root`` is moved aside first and removed after,
    so ``root`` is at every moment either the old folder or the new one."""
    if root.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old.", dir=root.parent))
        os.replace(root, old / "m")
        publish(tmp, root)
        rmtree(old)
    else:
        publish(tmp, root)


@contextlib.contextmanager
def staged_dir(root: str | os.PathLike) -> Iterator[Path]:
    """Yield a new temporary folder beside ``root`` to fill; on success it replaces ``root`` (:func:`replace_dir`),
    on any error it is removed and ``root`` is left as it was."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        yield tmp
        replace_dir(tmp, root)
    except BaseException:
        rmtree(tmp)
        raise


def write_model_dir(root: str | os.PathLike, config: dict[str, Any], parts: dict[str, nn.Module],
                    dtype: torch.dtype | None = None,
                    part_extras: dict[str, dict[str, Any]] | None = None, base: str | None = None) -> Path:
    """Write ``config.json`` and one safetensors file per part (floating weights cast to ``dtype`` if given);
    the directory is replaced atomically. ``part_extras`` adds fields to a part's entry in ``config.json``.
    ``base`` names the preset whose shipped weights supply the parts left out (``"base"`` in ``config.json``)."""
    root = Path(root)
    with staged_dir(root) as tmp:
        entries: dict[str, Any] = {}
        for name, module in parts.items():
            state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous().clone()
                     for k, v in module.state_dict().items()}
            file = f"{name}.safetensors"
            extra = module.safetensors_metadata() if hasattr(module, "safetensors_metadata") else None
            save_file(state, str(tmp / file), metadata=extra)
            entries[name] = {
                "file": file,
                "bytes": (tmp / file).stat().st_size,
                "sha256": sha256_file(tmp / file),
                "parameters": int(sum(v.numel() for v in state.values())),
                **(part_extras or {}).get(name, {}),
            }
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "v2meow_version": v2meow.__version__,
            "config": config,
            "parts": entries,
            **({"base": base} if base is not None else {}),
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=False))
    return root


def load_parts(root: Path, meta: dict[str, Any], parts: dict[str, nn.Module]) -> None:
    """Load every part's weight file (as ``config.json`` lists it) into ``parts``, strictly."""
    for name, module in parts.items():
        entry = meta["parts"].get(name)
        if entry is None:
            raise UserError(f"Model {root} lists no weights for part {name!r}.")
        file = root / str(entry.get("file", ""))
        if not file.is_file() or file.parent.resolve() != root.resolve():
            raise UserError(f"Model {root} is missing its weight file for {name!r} ({entry.get('file')}).")
        try:
            state = load_file(str(file))
        except (SafetensorError, OSError, ValueError) as e:
            raise UserError(f"Weight file {file} is corrupt or unreadable ({e.__class__.__name__}).") from None
        if name == "semantic_kmeans":
            module.fitted_on = dict(entry.get("fitted_on", {}))
        load_state(module, state, file)
        if hasattr(module, "load_safetensors_metadata"):
            with safe_open(str(file), framework="pt") as f:
                module.load_safetensors_metadata(f.metadata())


def read_model_config(root: Path) -> dict[str, Any]:
    file = root / CONFIG_FILE
    if not file.is_file():
        raise UserError(f"{root} is not a v2meow model directory (no {CONFIG_FILE}).")
    if file.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"{file} is {file.stat().st_size:,} bytes, far more than a model config; it is damaged or "
                        "not a v2meow model.")
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # ValueError: bad UTF-8 or JSON; RecursionError: absurd nesting
        raise UserError(f"{file} is not valid JSON.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{file} is not a v2meow model config.")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{root} uses model format version {meta.get('format_version')}; this v2meow reads "
                        f"version {FORMAT_VERSION}.")
    if not isinstance(meta.get("config"), dict) or not isinstance(meta.get("parts"), dict):
        raise UserError(f"{file} lacks its config or parts.")
    return meta


def check_weight_files(root: Path, meta: dict[str, Any]) -> int:
    """Check every part's weight file before the model is built; return how many values the files hold.

    Each file must be a ``.safetensors`` file inside ``root`` whose SHA-256 is the one ``config.json`` records (so
    a damaged file is caught even where it still parses) and whose header, read without loading a tensor, parses.
    """
    held = 0
    for name, entry in meta["parts"].items():
        if not isinstance(entry, dict):
            raise UserError(f"Model {root} has a malformed entry for part {name!r} in its {CONFIG_FILE}.")
        file = root / str(entry.get("file", ""))
        if file.suffix != ".safetensors":
            raise UserError(f"Model {root} names {entry.get('file')!r} as the weights of {name!r}; v2meow reads "
                            "weights only from .safetensors files.")
        if not file.is_file() or file.parent.resolve() != root.resolve():
            raise UserError(f"Model {root} is missing its weight file for {name!r} ({entry.get('file')}).")
        if isinstance(entry.get("sha256"), str) and sha256_file(file) != entry["sha256"]:
            raise UserError(f"Weight file {file} is corrupt: its SHA-256 differs from the one {CONFIG_FILE} records.")
        try:
            with safe_open(str(file), framework="pt") as f:
                held += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
        except (SafetensorError, OSError, ValueError) as e:
            raise UserError(f"Weight file {file} is corrupt or unreadable ({e.__class__.__name__}).") from None
    return held


_FACTORIES = frozenset({torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.empty_strided})


class AllocationGuard(TorchFunctionMode):
    """While active, refuses any new tensor that would take the values requested so far past ``limit``, before it
    is allocated: building a model from a ``config.json`` that asks for far more than its weight files hold (sizes
    each in range, together absurd) fails in one sentence instead of exhausting memory."""

    def __init__(self, limit: int, root: Path, held: int):
        super().__init__()
        self.limit, self.root, self.held, self.requested = limit, root, held, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FACTORIES:
            size = kwargs.get("size", args[0] if len(args) == 1 or func in (torch.full, torch.empty_strided) else args)
            try:
                self.requested += math.prod(int(n) for n in (size if isinstance(size, (tuple, list)) else (size,)))
            except (TypeError, ValueError):
                pass  # not a size this guard understands: the call itself will say what is wrong
            if self.requested > self.limit:
                raise UserError(f"Model {self.root}'s {CONFIG_FILE} asks for far larger tensors than its weight files "
                                f"hold ({self.held:,} values); it is damaged or not meant for this v2meow.")
        return func(*args, **kwargs)


def load_state(module: nn.Module, state: dict[str, Tensor], file: Path) -> None:
    """Strictly load ``state`` into ``module``, casting dtypes; mismatches are the user's corrupt file."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise UserError(f"Weight file {file} does not match the model's config ({what}).")
    for k, v in own.items():
        if v.shape != state[k].shape and v.numel() > 0:
            raise UserError(f"Weight file {file} does not match the model's config ({k}: {tuple(state[k].shape)} "
                            f"instead of {tuple(v.shape)}).")
        if v.is_floating_point() != state[k].is_floating_point() or state[k].is_complex():
            # float16/bfloat16/float32 cast into each other (fp16 exports); integers never pass for floats
            raise UserError(f"Weight file {file} does not match the model's config ({k}: {state[k].dtype} "
                            f"instead of {v.dtype}).")
        if v.is_floating_point() and not torch.isfinite(state[k].float()).all():
            raise UserError(f"Weight file {file} holds non-finite values in {k}.")
    module.load_state_dict({k: state[k].to(own[k].dtype) for k in own}, strict=True)


