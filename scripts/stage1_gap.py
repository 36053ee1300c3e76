"""Where in a crop does stage 1 read the video? Per-second validation loss, real video against shuffled.

Loads the latest checkpoint of a stage-1 run, cuts every validation clip into whole crops (as validation does)
and prints, for each second of the crop, the mean token loss with the clip's own visual features and with
another clip's (the batch rolled by one), their difference and its standard error over crops.

    python scripts/stage1_gap.py --shards runs/e2e6/shards --run runs/e2e6/run_semantic [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", required=True)
    p.add_argument("--run", required=True, help="a stage-1 run directory (its latest checkpoint is used)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", help="also write the table here")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    from torch.utils.data import DataLoader

    from v2meow.config import V2MeowConfig
    from v2meow.data.dataset import CropDataset, TiledCrops, collate
    from v2meow.data.shards import ShardReader, read_manifest
    from v2meow.errors import UserError
    from v2meow.train.checkpoint import latest_checkpoint, load_checkpoint
    from v2meow.train.loop import TrainConfig, Trainer, batch_to, with_features_shuffled
    from v2meow.train.run import resolve_model_streams

    model_cfg = resolve_model_streams(V2MeowConfig.from_dict(read_manifest(args.shards)["info"]["model_config"]))
    last = latest_checkpoint(args.run)
    if last is None:
        print(f"No checkpoint in {args.run}.", file=sys.stderr)
        return 2
    try:  # the weights alone: a run copied off a training machine without its optimiser state is measured too
        ck = load_checkpoint(last, weights_only=True)
        if ck["state"].get("stage") != "semantic":
            raise UserError(f"it trains stage {ck['state'].get('stage')!r}")
        # the run's own stage-1 config (it may differ from the shards' model, e.g. no joint input)
        model_cfg.semantic = V2MeowConfig.from_dict(ck["state"]["model_config"]).semantic
        trainer = Trainer("semantic", args.shards, model_cfg, TrainConfig(batch_size=args.batch_size), args.run,
                          device=args.device, log=False)
        trainer.stage.load_state_dict(ck["model"])
        trainer.step = int(ck["state"]["step"])
    except (UserError, KeyError, RuntimeError) as e:
        print(f"{last} is not a stage-1 checkpoint of these shards' model ({str(e).splitlines()[0]}).",
              file=sys.stderr)
        return 2
    stage = trainer.stage.eval()
    tiles = TiledCrops(CropDataset(ShardReader(args.shards, split="validation"), trainer.spec, random_crop=False))
    rate = trainer.spec.token_rate
    seconds = int(math.ceil(trainer.spec.seconds))
    acc = torch.zeros(seconds, 4, dtype=torch.float64)  # tokens, real loss, shuffled loss, squared difference
    crops = 0
    with torch.no_grad():
        for batch in DataLoader(tiles, batch_size=args.batch_size, collate_fn=collate):
            batch = batch_to(batch, trainer.device)
            shuffled = with_features_shuffled(batch)
            if shuffled is None:
                continue
            real, shuf = stage.loss(batch)["token_loss"].cpu(), stage.loss(shuffled)["token_loss"].cpu()
            valid = batch["semantic_valid"].bool().cpu()
            for s in range(seconds):
                a, e = int(s * rate), int((s + 1) * rate)
                v = valid[:, a:e].double()
                n = v.sum(1)
                keep = n > 0
                r = (real[:, a:e] * v).sum(1)[keep] / n[keep]
                q = (shuf[:, a:e] * v).sum(1)[keep] / n[keep]
                acc[s] += torch.stack([keep.sum().double(), r.sum(), q.sum(), ((q - r) ** 2).sum()])
            crops += batch["semantic"].shape[0]
    rows = []
    print(f"{crops} validation crops, {args.run} at step {trainer.step}")
    print("second  real    shuffled  gap      ± s.e.")
    for s in range(seconds):
        k, r, q, sq = acc[s].tolist()
        if k < 2:
            continue
        gap = (q - r) / k
        se = math.sqrt(max(sq / k - gap * gap, 0.0) / (k - 1))
        rows.append({"second": s, "crops": int(k), "real": r / k, "shuffled": q / k, "gap": gap, "se": se})
        print(f"{s:6d}  {r / k:.3f}   {q / k:.3f}     {gap:+.4f}  {se:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
