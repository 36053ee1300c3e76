"""Where a model runs and in what precision: the device a user names, checked before anything is loaded.

``resolve_device`` turns ``--device`` (``cpu``, ``cuda``, ``cuda:1``; None: the first CUDA GPU when torch sees one,
else the CPU) into a :class:`torch.device` this machine has, or a :class:`UserError` saying why not;
``resolve_precision`` does the same for ``--precision`` (``fp32``, ``bf16``). fp16 is not offered: a step's logits
can overflow it, and a NaN among them would be sampled as a token.
"""

from __future__ import annotations

import torch

from v2meow.errors import UserError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def resolve_device(name: str | None) -> torch.device:
    """``name`` as a device of this machine (None: ``cuda`` when available, else ``cpu``)."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(str(name))
    except (RuntimeError, ValueError):
        raise UserError(f"--device {name!r} is not a device name; give cpu, cuda or cuda:N.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: torch sees no CUDA GPU on this machine; leave --device out to run on "
                            "the CPU.")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UserError(f"--device {name}: this machine has {count} CUDA GPU(s), numbered from 0.")
    elif device.type != "cpu":  # Apple's mps lacks the float64 the codec integrates its phase in
        raise UserError(f"--device {name}: v2meow runs on cpu or cuda.")
    return device


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """``name`` (one of :data:`PRECISIONS`) as the dtype the stages compute in on ``device``."""
    if name not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {name!r}.")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"--precision bf16: the GPU {device} does not compute in bfloat16; use fp32.")
    return PRECISIONS[name]


def resolve_placement(device: str | torch.device | None, precision: str) -> tuple[torch.device, torch.dtype]:
    """Both checks at once: ``(device, dtype)`` for ``--device`` and ``--precision`` (:meth:`V2Meow.place`)."""
    where = resolve_device(None if device is None else str(device))
    return where, resolve_precision(precision, where)
