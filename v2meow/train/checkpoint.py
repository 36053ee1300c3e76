"""Training checkpoints in safetensors + JSON (no pickle), written atomically.

A checkpoint is a directory ``step-NNNNNNNN/`` with ``model.safetensors`` (the stage's weights),
``optim.safetensors`` (optimiser tensors, EMA weights), and ``state.json`` (step, data position, optimiser
hyper-parameters, config). It is written under a temporary name and renamed; ``latest`` names the newest.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from v2meow.errors import UserError
from v2meow.modeldir import staged_dir

LATEST = "latest"


def optimizer_to_flat(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and the JSON-able rest."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in state["state"].items():
        for k, v in st.items():
            if isinstance(v, Tensor):
                tensors[f"state/{pid}/{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}/{k}"] = v
    groups = []
    for g in state["param_groups"]:
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()})
    return tensors, {"param_groups": groups, "scalars": scalars}


def _param_key(pid: str) -> int | str:
    """Plain optimisers key state by parameter index, FSDP's full state dicts by parameter name."""
    return int(pid) if pid.isdigit() else pid


def optimizer_from_flat(tensors: dict[str, Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int | str, dict[str, Any]] = {}
    for name, v in tensors.items():
        if not name.startswith("state/"):
            continue
        _, pid, k = name.split("/", 2)
        state.setdefault(_param_key(pid), {})[k] = v
    for name, v in rest.get("scalars", {}).items():
        pid, k = name.split("/", 1)
        state.setdefault(_param_key(pid), {})[k] = v
    groups = []
    for g in rest["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model_state: dict[str, Tensor],
    optim_state: dict[str, Any],
    state: dict[str, Any],
    ema_state: dict[str, Tensor] | None = None,
    keep: int = 2,
) -> Path:
    """Write checkpoint ``step`` atomically, point ``latest`` at it and keep the newest ``keep``."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    final = root / name
    with staged_dir(final) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model_state.items()}, str(tmp / "model.safetensors"))
        tensors, rest = optimizer_to_flat(optim_state)
        if ema_state is not None:
            tensors.update({f"ema/{k}": v.detach().cpu().contiguous() for k, v in ema_state.items()})
        save_file(tensors, str(tmp / "optim.safetensors"))
        (tmp / "state.json").write_text(json.dumps({**state, "optimizer": rest}, indent=1))
    latest_tmp = root / f".{LATEST}.tmp"
    latest_tmp.write_text(name)
    os.replace(latest_tmp, root / LATEST)
    done = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step-*"):  # half-written by a run that was killed (only rank 0 writes here)
        shutil.rmtree(stale, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    root = Path(run_dir) / "checkpoints"
    marker = root / LATEST
    if not marker.is_file():
        return None
    path = root / marker.read_text().strip()
    return path if (path / "state.json").is_file() else None


def load_checkpoint(path: str | os.PathLike, weights_only: bool = False) -> dict[str, Any]:
    """Returns ``model`` (tensors), ``optimizer`` (state dict), ``ema`` (tensors or None) and ``state``.

    ``weights_only`` (for exporting) reads a checkpoint whose ``optim.safetensors`` was left behind, e.g.
    copied off a training machine without it (the optimiser state is twice the weights): ``optimizer`` is
    None, and ``ema`` None unless the optimiser file is there.
    """
    path = Path(path)
    optim_file = path / "optim.safetensors"
    try:
        state = json.loads((path / "state.json").read_text())
        model = load_file(str(path / "model.safetensors"))
        flat = load_file(str(optim_file)) if (not weights_only or optim_file.is_file()) else {}
    except (OSError, ValueError, RecursionError, SafetensorError) as e:
        raise UserError(f"Checkpoint {path} is incomplete or corrupt ({e.__class__.__name__}).") from None
    if not isinstance(state, dict) or not (weights_only or isinstance(state.get("optimizer"), dict)):
        raise UserError(f"Checkpoint {path} is incomplete or corrupt (its state.json lacks the optimiser state).")
    rest = state.pop("optimizer", None)
    ema = {k[4:]: v for k, v in flat.items() if k.startswith("ema/")} or None
    optim = None if weights_only else optimizer_from_flat(flat, rest)
    return {"model": model, "optimizer": optim, "ema": ema, "state": state}


def to_device(state: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in state.items()}
