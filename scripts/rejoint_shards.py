"""Put another joint music-text model under a model and its shards: every clip's joint embedding made again.

Stage 1 learns to follow the joint embedding of each clip's music (the stand-in for a prompt), so a retrained joint
model needs the clips embedded again, and stage 1 trained on from them. Everything else in the shards (features,
semantic and acoustic tokens) stays as it is, so this takes minutes where a new extraction takes half an hour.

Writes ``--out-base`` (the base model with the new joint model) and ``--out-shards`` (the shards, each record's
``joint`` and its recorded identity replaced; resumable shard by shard). With ``--tokenizers DIR`` the base also
takes that directory's codec, which must code as the base's codec does (the same encoder and codebooks, a decoder
trained on): each record's codec stamp is checked against the old codec and replaced by the new one's.

    python scripts/rejoint_shards.py --joint runs/joint41/run --base runs/embedded_next/base \\
        --shards data_cache/shards_next --videos data_cache/videos \\
        --out-base runs/embedded_joint41/base --out-shards data_cache/shards_joint41
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--joint", required=True, help="a joint model: a `v2meow train joint` run or export")
    p.add_argument("--base", required=True, help="the model directory the shards were extracted with")
    p.add_argument("--shards", required=True)
    p.add_argument("--videos", required=True, help="the videos the shards were extracted from")
    p.add_argument("--out-base", required=True)
    p.add_argument("--out-shards", required=True)
    p.add_argument("--tokenizers", default=None,
                   help="a tokenizer directory whose codec (same codes, another decoder) the new base takes")
    p.add_argument("--max-shards", type=int, default=0, help="only the first N shards (a quick check; 0: all)")
    args = p.parse_args(argv)

    import torch

    from v2meow.data.shards import iter_shard, read_manifest, shard_complete, write_manifest, write_shard
    from v2meow.io.audio import load_audio
    from v2meow.pipeline import V2Meow
    from v2meow.tokenizers.codec.base import compare_identities
    from v2meow.train.joint import load_joint

    model = V2Meow.from_pretrained(args.base)
    joint, _ = load_joint(args.joint)
    model.text.load_state_dict(joint.state_dict())
    model.text.eval()
    old_codec = model.codec.identity()
    if args.tokenizers:
        from v2meow.tokenizers.default import load_tokenizers

        codec = load_tokenizers(args.tokenizers).codec
        compare_identities(codec.identity(), old_codec, "the base's codec was made with")  # same codes, or refuse
        model.codec.load_state_dict(codec.state_dict())
    if not (Path(args.out_base) / "config.json").is_file():
        model.save_pretrained(args.out_base)
    model = V2Meow.from_pretrained(args.out_base)  # the weights as saved: the embeddings match what it will load
    ident, codec_ident = model.text.identity(), model.codec.identity()
    src, dst = Path(args.shards), Path(args.out_shards)
    manifest = read_manifest(src)
    sr = model.sample_rate
    t0 = time.time()
    for index, name in enumerate(manifest["shards"][: args.max_shards or None]):
        if shard_complete(dst, index):
            continue
        records = []
        for rec in iter_shard(src / name):
            n = int(round(rec.meta["duration"] * sr))
            wav = load_audio(str(Path(args.videos) / rec.meta["source"]), sample_rate=sr, mono=True, start=0.0,
                             duration=rec.meta["duration"])
            wav = np.pad(wav, (0, max(0, n - len(wav))))[:n]
            with torch.no_grad():
                rec.tensors["joint"] = model.embed_audio_segments(torch.from_numpy(wav.astype(np.float32)))
            rec.tensors["joint"] = rec.tensors["joint"].to(torch.float16)
            rec.meta["identities"]["joint"] = ident
            compare_identities(old_codec, rec.meta["identities"]["codec"], f"{rec.key}'s acoustic codes were made with")
            rec.meta["identities"]["codec"] = codec_ident
            records.append(rec)
        write_shard(dst, index, records)
        print(f"\rshard {index + 1}/{len(manifest['shards'])} ({time.time() - t0:.0f} s)", end="", file=sys.stderr,
              flush=True)
    info = dict(manifest["info"])
    info["identities"] = {**info["identities"], "joint": ident, "codec": codec_ident}
    m = write_manifest(dst, info)
    print(f"\n{dst}: {len(m['clips'])} clips, joint model {ident['weights']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
