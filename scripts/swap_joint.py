"""A model with another joint music-text model: the stages, tokenizers and everything else of ``--model``, the joint
model of ``--joint`` (a joint training run or export). Written whole, in float16, so it can be evaluated and
compared with the shipped model (``eval_embedded``, ``prompt_properties --model OUT``).

    python scripts/swap_joint.py --joint runs/joint_text/run -o runs/joint_text/model

With a joint model trained on its text side alone (``train_parts: text``) its music tower is the model's own, so
every music embedding the stages learnt from is unchanged; the script says whether that holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded")
    p.add_argument("--joint", required=True, help="a joint training run or an exported joint model")
    p.add_argument("-o", "--out", required=True)
    args = p.parse_args(argv)
    import torch

    from v2meow.pipeline import V2Meow
    from v2meow.train.joint import load_joint

    model = V2Meow.from_pretrained(args.model)
    joint, meta = load_joint(args.joint)
    before, after = model.text.state_dict(), joint.state_dict()
    if before.keys() != after.keys() or any(before[k].shape != after[k].shape for k in before):
        raise SystemExit(f"{args.joint} is not a joint model of this model's shape.")
    moved = sorted({k.split(".")[0] for k in before if not torch.equal(before[k].float(), after[k].float())})
    model.text.load_state_dict(after)
    out = model.save_pretrained(args.out, dtype=torch.float16)
    music_same = not any(k.startswith("audio") for k in moved)
    print(f"{out}: joint model from {args.joint} (trained: {meta.get('training', {}).get('train_parts', 'all')}); "
          f"parts that differ: {', '.join(moved) or 'none'}; music tower "
          f"{'unchanged: the stages read the same music embeddings' if music_same else 'CHANGED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
