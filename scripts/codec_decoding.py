"""A tokenizer directory whose codec decodes with other frequency-head settings: the same weights, with
``freq_reset_db`` (restart the integrated phase at attacks) and/or a lower ``freq_below_hz`` (the head's first bins
only) changed. The codes, and so every token the stages learnt from, stay the same.

    python scripts/codec_decoding.py runs/codec_lowmlp/tok -o runs/codec_lowmlp/tok_reset6 --reset-db 6
    python scripts/codec_decoding.py runs/codec_lowmlp/tok -o runs/codec_lowmlp/tok_low250 --below-hz 250

The source is a tokenizer directory (export a codec run first: ``v2meow.train.tokenizers.export_tokenizers(RUN,
"v2meow/assets/tokenizers", OUT)`` keeps the shipped semantic tokenizer beside it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="a tokenizer directory whose codec has a frequency head")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--reset-db", type=float, default=None, help="freq_reset_db (0: off)")
    p.add_argument("--below-hz", type=float, default=None, help="freq_below_hz, at most the head's own")
    args = p.parse_args(argv)

    from v2meow.tokenizers.codec.soundstream import SoundStream
    from v2meow.tokenizers.default import load_tokenizers, save_tokenizers

    tok = load_tokenizers(args.source)
    cfg = tok.codec.config
    if cfg.phase_head != "frequency":
        raise SystemExit(f"{args.source}: its codec has no frequency head.")
    change = {}
    if args.reset_db is not None:
        change["freq_reset_db"] = args.reset_db
    if args.below_hz is not None:
        if cfg.freq_below_hz and args.below_hz > cfg.freq_below_hz:
            raise SystemExit(f"The head covers the bins below {cfg.freq_below_hz:g} Hz; it cannot reach higher.")
        change["freq_below_hz"] = args.below_hz
    codec = SoundStream(cfg.replace(**change))
    state = tok.codec.state_dict()
    last = "decoder.freq.2" if cfg.freq_hidden else "decoder.freq"
    keep = codec.state_dict()[f"{last}.bias"].shape[0]
    for key in (f"{last}.weight", f"{last}.bias"):  # the head's first bins, from 0 Hz up
        state[key] = state[key][:keep].clone()
    codec.load_state_dict(state)
    info = tok.info
    extra = {k: info[k] for k in ("semantic_from", "semantic_sources") if k in info}
    out = save_tokenizers(codec.eval(), tok.semantic, args.out, training=info.get("training"),
                          sources=info.get("sources"), coarse_levels=info["coarse_levels"], extra=extra)
    print(f"{out}: {', '.join(f'{k}={v:g}' for k, v in change.items()) or 'no change'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
