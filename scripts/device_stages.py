"""Train the embedded model's stages 1 and 2 on a lent GPU, in one prepared call: pack here, run there, gate here.

On 2 CPU cores a stage trains a few thousand steps a session (batch 16 and 8); one GPU call trains both stages side
by side, each from the shipped weights, at larger batches for the minutes it is given, and brings back their
weights (fp16) for the release gate here. The shards of the whole 41 h corpus do not fit in what a call carries
(64 MiB with the repository), so ``pack`` rewrites shards with what the two stages read (the video features, the
semantic tokens, the codec's first levels, the joint embedding), compresses them (xz), and takes whole shards in
a seeded random order until its budget; the validation split's shards come first, so the losses there compare.

    python scripts/train_embedded.py prepare                 # here: the shards (data_cache/shards_embedded)
    python scripts/device_stages.py pack                     # here: .pack_stages/ (~30 MB)
    # the device call (run tool), carrying .pack_stages:
    #   bash scripts/device_stages.sh                        # $OUT/{semantic,coarse}_step-N.safetensors, summary
    python scripts/device_stages.py unpack FILES_AT -o runs/device_stages/model   # here: a model directory
    python scripts/release_gate.py ...                       # against the shipped model, as any candidate

``run`` also works on the CPU (``--device cpu``), which is how it is tested.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

PACK = ROOT / ".pack_stages"
SHARDS = ROOT / "data_cache" / "shards_embedded"
SHIPPED = ROOT / "v2meow" / "assets" / "embedded"
STAGES = ("semantic", "coarse")
# Per stage on the GPU: batch, crop (s; 0 = the stage's window), peak learning rate. The CPU runs used 16 / 8 at
# 1e-3 from scratch (scripts/train_embedded.py); these continue from the shipped weights, so the peak is lower.
KEEP = 3  # checkpoints of each stage brought back (two stages: 6 files and the summary, of the 8 a call returns)
GPU = {"semantic": {"batch": 64, "crop": 0.0, "lr": 5e-4}, "coarse": {"batch": 64, "crop": 4.0, "lr": 5e-4}}


def slim(record, levels: int):
    """``record`` with only what stages 1 and 2 read: features, semantic tokens, the first ``levels`` codec levels
    and the joint embedding."""
    keep = {k: v for k, v in record.tensors.items() if k.startswith("features/") or k in ("semantic", "joint")}
    if "acoustic" in record.tensors:
        keep["acoustic"] = record.tensors["acoustic"][:levels].contiguous()
    return type(record)(key=record.key, meta=record.meta, tensors=keep)


def pack(shards: Path, out: Path, budget_mb: float, seed: int, levels: int, wheels: bool = True) -> dict:
    """Slim, compress and copy whole shards of ``shards`` into ``out`` until ``budget_mb`` (validation first); with
    ``wheels``, also the wheels the device lacks (loading a model directory reads audio libraries' bindings)."""
    import numpy as np

    from v2meow.data.shards import iter_shard, read_manifest, write_shard

    manifest = read_manifest(shards)
    split_of = {}
    for c in manifest["clips"]:
        split_of.setdefault(c["shard"], set()).add(c["split"])
    names = list(manifest["shards"])
    val = [n for n in names if "validation" in split_of.get(n, ())]
    train = [n for n in names if n not in val]
    order = val + [train[i] for i in np.random.default_rng(seed).permutation(len(train))]
    if out.exists():
        shutil.rmtree(out)
    (out / "xz").mkdir(parents=True)
    tmp = out / "tmp"
    size, taken, hours = 0, [], {"train": 0.0, "validation": 0.0}
    for name in order:
        index = int(name.split("-")[1].split(".")[0])
        records = [slim(r, levels) for r in iter_shard(shards / name)]
        write_shard(tmp, index, records)
        blob = lzma.compress((tmp / name).read_bytes(), preset=6)
        if size + len(blob) > budget_mb * 1e6:  # shards are alike in size: the next would not fit either
            break
        (out / "xz" / f"{name}.xz").write_bytes(blob)
        shutil.move(str(tmp / f"{name}.json"), out / "xz" / f"{name}.json")
        (tmp / name).unlink()
        size += len(blob)
        taken.append(name)
        for c in json.loads((out / "xz" / f"{name}.json").read_text())["clips"]:
            hours[c["split"]] = hours.get(c["split"], 0.0) + c["duration"] / 3600
    shutil.rmtree(tmp, ignore_errors=True)
    info = {"info": manifest.get("info", {}), "levels": levels, "shards": taken}
    (out / "pack.json").write_text(json.dumps(info, indent=1))
    if wheels:
        from device_codec import download_wheels

        download_wheels(out / "whl", sys.executable)
    return {"shards": len(taken), "of": len(names), "hours": {k: round(v, 3) for k, v in hours.items()},
            "mb": round(size / 1e6, 1)}


def unpack_shards(pack_dir: Path, dest: Path) -> Path:
    """The packed shards, decompressed into ``dest`` with their manifest."""
    from v2meow.data.shards import write_manifest

    info = json.loads((pack_dir / "pack.json").read_text())
    dest.mkdir(parents=True, exist_ok=True)
    for name in info["shards"]:
        (dest / name).write_bytes(lzma.decompress((pack_dir / "xz" / f"{name}.xz").read_bytes()))
        shutil.copyfile(pack_dir / "xz" / f"{name}.json", dest / f"{name}.json")
    write_manifest(dest, info["info"])
    return dest


def write_config(stage: str, steps: int, batch: int, path: Path, probe: bool = False) -> Path:
    import yaml

    from v2meow.train.loop import TrainConfig

    g = GPU[stage]
    cfg = TrainConfig(batch_size=batch, lr=g["lr"], warmup_steps=min(200, max(1, steps // 10)), max_steps=steps,
                      eval_every=max(1, steps // 4) if not probe else steps, eval_batches=8,
                      checkpoint_every=max(1, steps // 4), keep_checkpoints=KEEP,
                      log_every=max(1, min(50, steps // 3)), seed=0, num_workers=0 if probe else 4,
                      crop_seconds=g["crop"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return path


def launch(stage: str, shards: Path, cfg: Path, run: Path, minutes: float, device: str, init: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "v2meow.cli", "train", stage, "--shards", str(shards), "--config", str(cfg),
           "-o", str(run), "--minutes", f"{minutes:.3f}", "--init-from", init, "--device", device, "--quiet"]
    run.parent.mkdir(parents=True, exist_ok=True)
    log = open(run.parent / f"{stage}.stderr", "a")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": path})


def log_rows(run: Path) -> list[dict]:
    path = run / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def run(pack_dir: Path, out: Path, minutes: float, device: str, init: str, stages: list[str],
        batch: dict[str, int], probe: int, max_steps: int | None = None, keep: int = KEEP) -> dict:
    """Unpack, time each stage for ``probe`` steps (side by side, as they will run), size each schedule to the
    minutes left, train both at once, and write each stage's last ``keep`` checkpoints (fp16) and a summary into
    ``out``."""
    import torch
    from device_codec import s_per_step  # the last logged interval's seconds per step (the first holds start-up)
    from safetensors.torch import save_file

    from v2meow.train.checkpoint import load_checkpoint

    t0 = time.time()
    work = out / "work"
    shards = unpack_shards(pack_dir, work / "shards")
    procs = {}
    for s in stages:
        cfg = write_config(s, probe, batch[s], work / f"{s}_probe.yaml", probe=True)
        procs[s] = launch(s, shards, cfg, work / f"{s}_probe", 10.0, device, init)
    for s, p in procs.items():
        if p.wait() != 0:
            raise SystemExit(f"{s}: the timing run failed; see {work / f'{s}.stderr'}")
    rate = {s: s_per_step(work / f"{s}_probe") for s in stages}
    left = max(30.0, minutes * 60 - (time.time() - t0) - 45)  # the last evaluation, checkpoint and export
    steps = {s: min(max(10, int(0.9 * left / rate[s])), max_steps or 10**9) for s in stages}
    print(f"timing: {rate} s/step; {left:.0f} s left: {steps} steps", file=sys.stderr, flush=True)
    procs = {}
    for s in stages:
        cfg = write_config(s, steps[s], batch[s], work / f"{s}.yaml")
        procs[s] = launch(s, shards, cfg, work / s, left / 60, device, init)
    for p in procs.values():
        p.wait()
    summary = {"device": device, "seconds": round(time.time() - t0, 1), "stages": {}}
    if device.startswith("cuda"):
        summary["gpu"] = torch.cuda.get_device_name(0)
    for s in stages:
        rows = log_rows(work / s)
        evals = [{k: v for k, v in r.items() if k.startswith("val") or k == "step"} for r in rows
                 if any(k.startswith("val") for k in r)]
        kept = sorted(p for p in (work / s / "checkpoints").glob("step-*") if (p / "state.json").is_file())
        kept = kept[-keep:]
        summary["stages"][s] = {"s_per_step": rate[s], "schedule_steps": steps[s], "batch": batch[s],
                                "steps": rows[-1].get("step") if rows else 0, "evals": evals,
                                "train_config": json.loads((work / s / "run.json").read_text())["train_config"],
                                "weights": [f"{s}_{p.name}.safetensors" for p in kept]}
        for p in kept:  # a few checkpoints, so that one can be chosen here by what it generates, not by its loss
            ck = load_checkpoint(p, weights_only=True)
            half = {k: v.half().contiguous() for k, v in ck["model"].items()}
            save_file(half, str(out / f"{s}_{p.name}.safetensors"))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    shutil.rmtree(work)
    print(json.dumps(summary, indent=1))
    return summary


def unpack(files: Path, out: Path, base: Path, steps: dict[str, int] | None = None) -> Path:
    """A model directory: ``base`` with the stages' weights a device call brought back (``files``): each stage's
    last checkpoint, or the one at ``steps[stage]``."""
    import torch
    from safetensors.torch import load_file

    from v2meow.modeldir import load_state
    from v2meow.pipeline import V2Meow

    model = V2Meow.from_pretrained(str(base))
    for s in STAGES:
        found = sorted(files.glob(f"{s}_step-*.safetensors"))
        if steps and s in steps:
            found = [p for p in found if p.name == f"{s}_step-{steps[s]:08d}.safetensors"]
            if not found:
                raise SystemExit(f"{files} holds no {s} weights of step {steps[s]}.")
        if found:
            path = found[-1]
            load_state(getattr(model, s), {k: v.float() for k, v in load_file(str(path)).items()}, path)
    return model.save_pretrained(out, dtype=torch.float16)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="here: slimmed, compressed shards the device call carries, in .pack_stages/")
    a.add_argument("--shards", default=str(SHARDS))
    a.add_argument("--out", default=str(PACK))
    a.add_argument("--budget-mb", type=float, default=30.0,
                   help="what the repository (about 27 MB) leaves of a call's 64 MiB, less a margin")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--levels", type=int, default=2, help="codec levels kept (stage 2 reads this many)")
    r = sub.add_parser("run", help="there: train the stages, write their weights to --out")
    r.add_argument("--pack", default=str(PACK))
    r.add_argument("--out", required=True)
    r.add_argument("--minutes", type=float, default=7.0, help="wall time for timing, training and export")
    r.add_argument("--device", default="cuda")
    r.add_argument("--init-from", default=str(SHIPPED))
    r.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    r.add_argument("--batch", type=int, nargs=2, default=[GPU[s]["batch"] for s in STAGES],
                   metavar=("SEMANTIC", "COARSE"))
    r.add_argument("--probe-steps", type=int, default=30, help="steps of the timing run")
    r.add_argument("--max-steps", type=int, default=None, help="at most this many steps per stage")
    r.add_argument("--keep", type=int, default=KEEP, help="checkpoints of each stage brought back (at most KEEP)")
    u = sub.add_parser("unpack", help="here: a model directory from what a run brought back")
    u.add_argument("files")
    u.add_argument("-o", "--out", required=True)
    u.add_argument("--base", default=str(SHIPPED))
    u.add_argument("--step", nargs="+", default=[], metavar="STAGE=N",
                   help="a stage's checkpoint at step N (default: each stage's last)")
    args = p.parse_args(argv)
    if args.cmd == "pack":
        print(json.dumps(pack(Path(args.shards), Path(args.out), args.budget_mb, args.seed, args.levels)))
    elif args.cmd == "run":
        run(Path(args.pack), Path(args.out), args.minutes, args.device, args.init_from, args.stages,
            dict(zip(STAGES, args.batch)), args.probe_steps, args.max_steps, min(args.keep, KEEP))
    else:
        steps = {k: int(v) for k, v in (a.split("=", 1) for a in args.step)}
        print(unpack(Path(args.files), Path(args.out), Path(args.base), steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
