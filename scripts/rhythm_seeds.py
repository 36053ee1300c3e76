"""The periodic-motion rhythm measure of the gate (bench.rhythm, best of N by the visual beats) over several seeds,
for one model: the gate's single-seed figure moves by about its standard error between runs.

    python scripts/rhythm_seeds.py MODEL OUT.json [--seeds 3] [--candidates 4]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import torch

    from bench.rhythm import make_videos, score_model
    from v2meow.pipeline import V2Meow
    from v2meow.soundtrack import model_path

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = V2Meow.from_pretrained(model_path(args.model))
    r = score_model(model, make_videos(args.seconds + 2.0), args.seconds, seeds=args.seeds, candidates=args.candidates)
    Path(args.out).write_text(json.dumps(r, indent=1))
    print(json.dumps({k: v for k, v in r.items() if k not in ("clips", "by_kind")}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
