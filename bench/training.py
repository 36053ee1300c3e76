"""Training throughput per stage: tokens/s, and model FLOPs as a share of the machine's matmul throughput.

Anchor, measured in the same process: the FLOP rate of a float32 1024² (CPU) or bf16 8192² (GPU) matrix
multiply loop. A stage's training FLOPs are estimated as 6 x parameters x positions (forward and
backward) — decoder and head parameters per target token, encoder parameters per encoder position;
embeddings and attention scores are not counted. ``utilisation = stage FLOP rate / anchor FLOP rate``:
model FLOPs utilisation against what this machine actually reaches, not a datasheet peak.

    python -m bench.training --preset embedded          # CPU
    python -m bench.training --preset paper --device cuda --batch 8
"""

from __future__ import annotations

import argparse
import time

import torch

from v2meow.config import load_preset
from v2meow.train.loop import build_stage
from v2meow.train.run import resolve_model_streams


def anchor_flops(device: torch.device, dtype: torch.dtype, n: int = 1024, seconds: float = 1.0) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def synthetic_batch(stage: str, cfg, batch: int, seconds: float, device: torch.device) -> tuple[dict, int]:
    """A batch of the stage's shapes with random content; returns it and its target token count."""
    g = torch.Generator().manual_seed(0)
    feats = {}
    streams = cfg.semantic.streams if stage == "semantic" else cfg.coarse.streams
    for s in streams:
        feats[s.name] = torch.randn(batch, max(1, round(seconds * s.rate)), s.dim, generator=g)
    t_s = round(seconds * cfg.semantic.token_rate)
    t_a = round(seconds * cfg.codec.frame_rate)
    out = {"features": feats,
           "semantic": torch.randint(0, cfg.semantic.vocab_size, (batch, t_s), generator=g),
           "acoustic": torch.randint(0, cfg.codec.codebook_size, (batch, cfg.codec.num_levels, t_a), generator=g)}
    if stage == "semantic" and cfg.semantic.joint_dim:
        out["joint"] = torch.randn(batch, cfg.semantic.joint_dim, generator=g)
    tokens = {"semantic": t_s, "coarse": t_a * cfg.coarse.levels, "fine": t_a * cfg.fine.fine_levels}[stage]
    move = {k: ({kk: vv.to(device) for kk, vv in v.items()} if isinstance(v, dict) else v.to(device))
            for k, v in out.items()}
    return move, tokens * batch


def measure(stage: str, cfg, batch: int, device: torch.device, steps: int) -> tuple[float, float, int]:
    """Training tokens/s, model FLOP/s and parameter count of one stage."""
    torch.manual_seed(0)
    module = build_stage(stage, cfg).to(device).train()
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
    seconds = 3.0 if stage == "fine" else 10.0
    b, tokens = synthetic_batch(stage, cfg, batch, seconds, device)
    autocast = device.type == "cuda"
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            _sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = module.loss(b)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    dt = (time.perf_counter() - t0) / steps
    lm = module.lm
    dec = sum(p.numel() for p in lm.decoder.parameters()) + lm.head.weight.numel()
    flops = 6 * dec * tokens
    if lm.has_encoder:
        positions = sum(v.shape[1] for v in b["features"].values())
        if stage == "coarse":
            positions += b["semantic"].shape[1]
        flops += 6 * sum(p.numel() for p in lm.encoder.parameters()) * positions * batch_size(b)
    return tokens / dt, flops / dt, sum(p.numel() for p in module.parameters())


def batch_size(b: dict) -> int:
    return b["semantic"].shape[0]


ASSUMED_DIM = 1024


def bench_config(preset: str):
    """The preset's config with its visual streams resolved. A pretrained encoder that is not on this machine
    is stood in for by a stream of its rate and an assumed width (the input projection is a negligible
    share of a stage's FLOPs); the assumption is printed."""
    from types import SimpleNamespace

    from v2meow.errors import UserError
    from v2meow.pipeline import resolve_streams

    cfg = load_preset(preset)
    try:
        return resolve_model_streams(cfg)
    except UserError as e:
        print(f"({e} Each visual stream is taken as {ASSUMED_DIM}-d at its configured rate.)")
        resolve_streams(cfg, [SimpleNamespace(name=enc.name, dim=ASSUMED_DIM, rate=enc.rate) for enc in cfg.encoders])
        return cfg


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="embedded")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    cfg = bench_config(args.preset)
    # a GPU reaches its matmul peak only on large products (8192: within a few % of the datasheet on an H100/H200)
    anchor = anchor_flops(device, torch.bfloat16 if device.type == "cuda" else torch.float32,
                          n=8192 if device.type == "cuda" else 1024)
    print(f"preset {args.preset} on {device}: anchor matmul {anchor / 1e9:.1f} GFLOP/s "
          f"(batch {args.batch}, crops 10 s / 3 s for stage 3)")
    print(f"{'stage':<10} {'params':>10} {'tokens/s':>10} {'GFLOP/s':>10} {'FLOP/s vs anchor':>17}")
    stages = ("semantic", "coarse") + (("fine",) if cfg.fine.fine_levels > 0 else ())  # no stage 3: none to time
    for stage in stages:
        tps, flops, params = measure(stage, cfg, args.batch, device, args.steps)
        print(f"{stage:<10} {params / 1e6:>9.2f}M {tps:>10.0f} {flops / 1e9:>10.1f} {flops / anchor:>16.1%}")


if __name__ == "__main__":
    main()
