"""A model with another joint music-text model or another codec decoder: the stages, tokenizers and everything else
of ``--model``, the joint model of ``--joint`` (a joint training run or export) and/or the codec of ``--codec`` (a
tokenizer directory or a codec run). Written whole, in float16, so it can be evaluated and compared with the shipped
model (``eval_embedded --model OUT``, ``prompt_properties --model OUT``).

    python scripts/swap_parts.py --joint runs/joint_text/run -o runs/joint_text/model
    python scripts/swap_parts.py --codec runs/codec_decoder/decoder_onset -o runs/codec_decoder/model
    python scripts/swap_parts.py --stage semantic=runs/embedded_next/model -o runs/embedded_next/model_s1

``--stage NAME=MODEL`` takes one stage's weights (``semantic``, ``coarse`` or ``fine``) from another exported model of
the same preset and tokenizers, to measure one retrained stage beside the shipped others; the stage's settings
(sampling, guidance) stay those of ``--model``. With ``--blend A`` the stage's weights are ``(1 - A)`` times
``--model``'s plus ``A`` times the other's (a stage trained on from ``--model``'s lies on a line from it: part of
the way along keeps some of what the training bought and less of its drift).

With a joint model trained on its text side alone (``train_parts: text``) its music tower is the model's own, so
every music embedding the stages learnt from is unchanged; with a codec whose decoder alone was trained on
(``train_parts: decoder``, or ``frequency`` for a frequency head added to it) its encoder and codebooks are the
model's own, so every token the stages write decodes as before, through the new decoder. The script says whether
each holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def changed(before: dict, after: dict) -> list[str]:
    """The top-level names of ``after``'s tensors that ``before`` lacks or holds with other values."""
    import torch

    return sorted({k.split(".")[0] for k in after if k not in before or not torch.equal(before[k].float(),
                                                                                        after[k].float())})


def swap(part, state: dict, what: str) -> list[str]:
    """Load ``state`` into ``part`` (same keys and shapes, or exit); returns the top-level names that changed."""
    before = part.state_dict()
    if before.keys() != state.keys() or any(before[k].shape != state[k].shape for k in before):
        raise SystemExit(f"{what} does not have this model's shape.")
    moved = changed(before, state)
    part.load_state_dict(state)
    return moved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded")
    p.add_argument("--joint", help="a joint training run or an exported joint model")
    p.add_argument("--codec", help="a tokenizer directory or a codec training run")
    p.add_argument("--stage", action="append", default=[], metavar="NAME=MODEL",
                   help="take stage NAME (semantic, coarse, fine) from exported model MODEL (repeatable)")
    p.add_argument("--blend", type=float, default=1.0,
                   help="with --stage: how far from --model's weights towards the other's (0..1; 1: the other's)")
    p.add_argument("-o", "--out", required=True)
    args = p.parse_args(argv)
    if not 0.0 <= args.blend <= 1.0:
        p.error("--blend must be in [0, 1]")
    if not (args.joint or args.codec or args.stage):
        p.error("give --joint, --codec or --stage")
    import torch

    from v2meow.pipeline import V2Meow

    model = V2Meow.from_pretrained(args.model)
    said = []
    if args.joint:
        from v2meow.train.joint import load_joint

        joint, meta = load_joint(args.joint)
        moved = swap(model.text, joint.state_dict(), args.joint)
        same = not any(k.startswith("audio") for k in moved)
        said.append(f"joint model from {args.joint} (trained: {meta.get('training', {}).get('train_parts', 'all')}); "
                    f"parts that differ: {', '.join(moved) or 'none'}; music tower "
                    f"{'unchanged: the stages read the same music embeddings' if same else 'CHANGED'}")
    if args.codec:
        from bench.codec import load_codec

        codec, _ = load_codec(args.codec)
        before = model.codec.identity()["codes"]
        if codec.config.to_dict() == model.codec.config.to_dict():
            moved = swap(model.codec, codec.state_dict(), args.codec)
        else:  # a decoder with another head (a frequency head trained on the same codes): the codec whole
            moved = changed(model.codec.state_dict(), codec.state_dict())
            model.codec = codec.to(next(model.codec.parameters()).dtype).eval()
            model.cfg = model.cfg.replace(codec=model.cfg.codec.replace(soundstream=codec.config))
        same = model.codec.identity()["codes"] == before
        said.append(f"codec from {args.codec}; parts that differ: {', '.join(moved) or 'none'}; encoder and "
                    f"codebooks {'unchanged: the stages write the same codes' if same else 'CHANGED'}")
    for spec in args.stage:
        name, _, other_dir = spec.partition("=")
        if name not in ("semantic", "coarse", "fine") or not other_dir or getattr(model, name, None) is None:
            raise SystemExit(f"--stage wants NAME=MODEL with a stage this model has, got {spec!r}.")
        other = V2Meow.from_pretrained(other_dir)
        if (other.codec.identity()["codes"], other.semantic_tokenizer.identity()) != \
                (model.codec.identity()["codes"], model.semantic_tokenizer.identity()):
            raise SystemExit(f"{other_dir} was trained on other tokenizers than {args.model}.")
        # the weights only: the stage's settings (sampling, guidance) stay --model's
        mine, theirs = getattr(model, name).state_dict(), getattr(other, name).state_dict()
        if args.blend < 1.0 and mine.keys() == theirs.keys():
            theirs = {k: torch.lerp(mine[k].float(), theirs[k].float(), args.blend).to(mine[k].dtype)
                      if mine[k].is_floating_point() else theirs[k] for k in mine}
        moved = swap(getattr(model, name), theirs, f"{name} of {other_dir}")
        said.append(f"{name} stage from {other_dir}{f' (blend {args.blend:g})' if args.blend < 1 else ''}; "
                    f"parts that differ: {', '.join(moved) or 'none'}")
    out = model.save_pretrained(args.out, dtype=torch.float16)
    print(f"{out}: " + "; ".join(said))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
